import { mkdtempSync } from "node:fs";
import { startEmbeddedNats } from "../src/nats/embedded.ts";
import { JadeNode } from "../src/node.ts";
import { JadeClient } from "../src/client/client.ts";
import { loadDataset } from "../bench/common.ts";
const ds = await loadDataset(20_000, 1000);
const nats = await startEmbeddedNats({ dataDir: mkdtempSync("/tmp/kx/p-") });
const node = await JadeNode.start({ servers: [nats.url], dataDir: mkdtempSync("/tmp/kx/d-") });
const client = await JadeClient.connect({ servers: nats.url });
const d = ds.train.dimension;
await client.createCollection({ name: "f", dimension: d, metric: "l2", shards: 1, replicas: 1 });
for (let i = 0; i < ds.train.count; i += 1000) {
  const ids = Array.from({ length: 1000 }, (_, j) => `p${i + j}`);
  await client.upsertColumns("f", { ids, vectors: ds.train.data.slice(i * d, (i + 1000) * d), consistency: "log" });
}
await client.count("f", { consistency: "strong" });
const q = (i: number) => ds.queries.data.slice((i % 1000) * d, ((i % 1000) + 1) * d);
for (let i = 0; i < 500; i++) await client.search("f", { vector: q(i), k: 10 });
const { Session } = await import("node:inspector/promises");
const s = new Session(); s.connect();
await s.post("Profiler.enable"); await s.post("Profiler.setSamplingInterval", { interval: 100 }); await s.post("Profiler.start");
const t = performance.now();
const lat: number[] = [];
for (let i = 0; i < 3000; i++) { const a = performance.now(); await client.search("f", { vector: q(i), k: 10 }); lat.push(performance.now() - a); }
const el = performance.now() - t;
const { profile } = await s.post("Profiler.stop");
const fs = await import("node:fs");
fs.writeFileSync("/tmp/kx/search.cpuprofile", JSON.stringify(profile));
lat.sort((a, b) => a - b);
console.log({ qps: 3000 / (el / 1000), p50: lat[1500], p95: lat[2850] });
await client.close(); await node.stop(); await nats.kill();
