/**
 * Where the time goes, stage by stage, on the write and search paths: each stage timed in
 * isolation on this process's main thread (the index worker's stages too, called in-process),
 * the NATS and worker round trips against a real nats-server and a real index worker. The
 * figures in docs/performance.md come from here.
 *
 *   npx tsx bench/profile-paths.ts [--dimension 128|784] [--batch 1000] [--shards 4] [--vectors 20000]
 *
 * Data: fashion-mnist (784-d) or, for other dimensions, deterministic clustered vectors.
 * Each stage reports the median of `--repeat` runs, per point (write) or per query (search).
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Worker } from "node:worker_threads";
import { Command } from "commander";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, headers } from "@nats-io/transport-node";
import { Index, MetricKind, ScalarKind } from "usearch";
import { IndexPool } from "../src/actors/vector-index/pool.ts";
import { ShardIndex } from "../src/actors/vector-index/shard-index.ts";
import { parse } from "../src/runtime/checks.ts";
import { columnsOf, float32Of, parseUpsert } from "../src/runtime/columns.ts";
import { decodeBody, encodeBody, Encoding, encodingHeader, float32Bytes } from "../src/runtime/encoding.ts";
import { decodeEntry, encodeEntry, EntryKind } from "../src/runtime/log-entry.ts";
import { SearchRequest, UpsertRequest } from "../src/runtime/schemas.ts";
import { spaceOf } from "../src/runtime/vectors.ts";
import { startEmbeddedNats } from "../src/nats/embedded.ts";
import { JadeNode } from "../src/node.ts";
import { JadeClient } from "../src/client/client.ts";
import { pino } from "pino";
import { readIdxImages } from "./datasets.ts";

const opts = new Command()
  .option("--dimension <d>", "128 (clustered) or 784 (fashion-mnist)", (v) => Number(v), 128)
  .option("--batch <n>", "points per upsert request", (v) => Number(v), 1000)
  .option("--shards <n>", "shards the writer splits a request over", (v) => Number(v), 4)
  .option("--vectors <n>", "vectors indexed for the apply and search stages", (v) => Number(v), 20_000)
  .option("--repeat <n>", "runs per stage (the median is reported)", (v) => Number(v), 5)
  .parse(process.argv)
  .opts<{ dimension: number; batch: number; shards: number; vectors: number; repeat: number }>();

const dim = opts.dimension;
const space = { dimension: dim, metric: "l2" as const, quantization: "f32" as const };
const indexConfig = { dimension: dim, metric: "l2" as const, index: { connectivity: 16, expansionAdd: 128, expansionSearch: 64, quantization: "f32" as const } };

async function dataset(count: number): Promise<Float32Array> {
  if (dim === 784) return (await readIdxImages("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")).data.slice(0, count * dim);
  // Deterministic clusters: 64 centres in [0, 10)^d, points within ±1 of one.
  let seed = 7;
  const random = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const centres = Array.from({ length: 64 }, () => Float32Array.from({ length: dim }, () => random() * 10));
  const data = new Float32Array(count * dim);
  for (let i = 0; i < count; i++) {
    const c = centres[Math.floor(random() * 64)]!;
    for (let j = 0; j < dim; j++) data[i * dim + j] = c[j]! + (random() - 0.5) * 2;
  }
  return data;
}

const rows: { stage: string; us: number; unit: string }[] = [];

/** Median wall time of `fn` over the repeats, reported per unit. */
async function stage<T>(name: string, units: number, unit: string, fn: () => T | Promise<T>, repeat = opts.repeat): Promise<T> {
  let value!: T;
  const times: number[] = [];
  for (let r = 0; r < repeat; r++) {
    const t0 = performance.now();
    value = await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const us = (times[Math.floor(times.length / 2)]! * 1000) / units;
  rows.push({ stage: name, us, unit });
  process.stdout.write(`  ${name.padEnd(58)} ${us.toFixed(2).padStart(10)} µs/${unit}\n`);
  return value;
}

const data = await dataset(Math.max(opts.vectors, opts.batch) + 1000);
const batch = opts.batch;
const ids = Array.from({ length: batch }, (_, i) => String(i));
const points = ids.map((id, i) => ({ id, vector: Array.from(data.subarray(i * dim, (i + 1) * dim)) }));
const config = { name: "p", dimension: dim, metric: "l2" as const, shards: opts.shards, replicas: 1, sharding: "hash" as const, index: indexConfig.index, snapshot: { everyEntries: 1000, intervalMs: 30000 }, retention: { pointInTimeMs: 0 }, createdAt: "", uid: "u" };

process.stdout.write(`\n== write path: one upsert of ${batch} points × ${dim}, ${opts.shards} shards (per point) ==\n`);
const jsonBody = await stage("client: JSON.stringify({points})", batch, "point", () => Buffer.from(JSON.stringify({ points })));
await stage("gateway: JSON decode + zod + pack into columns, checked", batch, "point", () => {
  const raw = decodeBody(jsonBody, Encoding.Json);
  return columnsOf(parse(UpsertRequest, raw).points, space);
});
const columnsBody = await stage("client (SDK): msgpack columns, float32 bytes", batch, "point", () =>
  encodeBody({ ids, vectors: float32Bytes(data.subarray(0, batch * dim)) }, Encoding.Msgpack),
);
process.stdout.write(`  (body: JSON ${(jsonBody.byteLength / 1e6).toFixed(2)} MB, msgpack ${(columnsBody.byteLength / 1e6).toFixed(2)} MB)\n`);
const parsed = await stage("gateway: msgpack decode + zod + columns, checked", batch, "point", () => parseUpsert(decodeBody(columnsBody, Encoding.Msgpack), space));
const { resolveSharding } = await import("../src/runtime/sharding/index.ts");
const sharding = resolveSharding(config);
await stage("writer: shard of each point (murmur3 of the id)", batch, "point", () => parsed.columns.ids.map((id, i) => sharding.shardOf(id, parsed.columns.vectors, i * dim)));

/** The writer's grouping, as writer.ts does it, exposed through one upsert's entries. */
const entries = await stage("writer: group by shard + encodeEntry (msgpack)", batch, "point", () => {
  const byShard = new Map<number, number[]>();
  parsed.columns.ids.forEach((id, i) => {
    const s = sharding.shardOf(id, parsed.columns.vectors, i * dim);
    const list = byShard.get(s);
    if (list) list.push(i);
    else byShard.set(s, [i]);
  });
  return [...byShard.values()].map((rowsOfShard) => {
    const vectors = new Float32Array(rowsOfShard.length * dim);
    rowsOfShard.forEach((r, n) => vectors.set(parsed.columns.vectors.subarray(r * dim, (r + 1) * dim), n * dim));
    return encodeEntry({ kind: EntryKind.Upsert, ids: rowsOfShard.map((r) => parsed.columns.ids[r]!), dimension: dim, vectors });
  });
});

const dir = await mkdtemp(path.join(os.tmpdir(), "jade-profile-"));
const nats = await startEmbeddedNats({ dataDir: path.join(dir, "nats") });
const nc = await connect({ servers: nats.url, noAsyncTraces: true });
try {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: "P", subjects: ["p.>"] });
  const js = jetstream(nc);
  let n = 0;
  await stage("JetStream: publish + ack of the request's entries (parallel)", batch, "point", () => Promise.all(entries.map((e, s) => js.publish(`p.${s}`, e, { msgID: `m${n++}` }))));

  process.stdout.write(`\n== replica: apply ${opts.vectors} vectors in entries of ${Math.ceil(batch / opts.shards)} (per vector) ==\n`);
  const perEntry = Math.ceil(batch / opts.shards);
  const records = Array.from({ length: Math.ceil(opts.vectors / perEntry) }, (_, e) => {
    const from = e * perEntry;
    const to = Math.min(opts.vectors, from + perEntry);
    const entryIds = Array.from({ length: to - from }, (_, i) => `v${from + i}`);
    return { seq: e + 1, data: encodeEntry({ kind: EntryKind.Upsert, ids: entryIds, dimension: dim, vectors: data.slice(from * dim, to * dim) }) };
  });
  await stage("decodeEntry (msgpack → ids, aligned float32)", opts.vectors, "vector", () => records.forEach((r) => decodeEntry(r.data)), 3);
  const shard = await stage("ShardIndex.apply: into the fresh buffer (searchable)", opts.vectors, "vector", () => {
    const s = new ShardIndex(indexConfig, { freshBytesMax: 1 << 30 });
    s.apply(records);
    return s;
  }, 1);
  await stage("graph absorb, 1 thread (usearch add + bookkeeping)", opts.vectors, "vector", () => {
    while (shard.absorb(performance.now() + 50, 1));
  }, 1);
  const parallel = new ShardIndex(indexConfig, { freshBytesMax: 1 << 30 });
  parallel.apply(records);
  await stage(`graph absorb, ${os.availableParallelism()} threads`, opts.vectors, "vector", () => {
    while (parallel.absorb(performance.now() + 50, os.availableParallelism()));
  }, 1);
  const raw1 = new Index({ dimensions: dim, metric: MetricKind.L2sq, quantization: ScalarKind.F32, connectivity: 16, expansion_add: 128, expansion_search: 64, multi: false });
  await stage("raw usearch add, 1 thread", opts.vectors, "vector", () => {
    for (let from = 0; from < opts.vectors; from += 1000) {
      const to = Math.min(opts.vectors, from + 1000);
      raw1.add(BigUint64Array.from({ length: to - from }, (_, i) => BigInt(from + i)), data.slice(from * dim, to * dim), 1);
    }
  }, 1);
  const raw = new Index({ dimensions: dim, metric: MetricKind.L2sq, quantization: ScalarKind.F32, connectivity: 16, expansion_add: 128, expansion_search: 64, multi: false });
  await stage(`raw usearch add, ${os.availableParallelism()} threads (the limit)`, opts.vectors, "vector", () => {
    for (let from = 0; from < opts.vectors; from += 1000) {
      const to = Math.min(opts.vectors, from + 1000);
      raw.add(BigUint64Array.from({ length: to - from }, (_, i) => BigInt(from + i)), data.slice(from * dim, to * dim), os.availableParallelism());
    }
  }, 1);

  process.stdout.write(`\n== search path, k=10 over ${opts.vectors} vectors (per query) ==\n`);
  const q = 500;
  const queries = Array.from({ length: q }, (_, i) => data.slice((opts.vectors + i) * dim, (opts.vectors + i + 1) * dim));
  const jsonQueries = queries.map((v) => Buffer.from(JSON.stringify({ vector: Array.from(v), k: 10 })));
  await stage("gateway: JSON decode + zod + float32 + check", q, "query", () => jsonQueries.map((b) => float32Of(parse(SearchRequest, decodeBody(b, Encoding.Json)).vector)));
  const binQueries = await stage("client (SDK): msgpack, float32 bytes", q, "query", () => queries.map((v) => encodeBody({ vector: float32Bytes(v), k: 10 }, Encoding.Msgpack)));
  await stage("gateway: msgpack decode + zod + float32 + check", q, "query", () => binQueries.map((b) => float32Of(parse(SearchRequest, decodeBody(b, Encoding.Msgpack)).vector)));
  // The responder on a connection of its own, as a node is.
  const responder = await connect({ servers: nats.url, noAsyncTraces: true });
  responder.subscribe("echo", { callback: (_err, msg) => void msg.respond(msg.data) });
  await responder.flush();
  const h = headers();
  h.set(encodingHeader, Encoding.Msgpack);
  await stage("NATS request/reply through nats-server (echo, one at a time)", q, "query", async () => {
    for (const b of binQueries) await nc.request("echo", b, { timeout: 5_000, headers: h });
  });
  await responder.close();
  await stage("ShardIndex.search (graph + empty fresh buffer)", q, "query", () => queries.map((v) => shard.search({ vector: v, k: 10, withPayload: false, withVectors: false })));
  await stage("raw usearch search, 1 thread", q, "query", () => queries.map((v) => raw.search(v, 10, 1)));
  await workerRoundTrips(queries, records);
  const hits = shard.search({ vector: queries[0]!, k: 10, withPayload: false, withVectors: false });
  await stage("gateway: reply, msgpack", q, "query", () => queries.map(() => encodeBody({ ok: true, result: { hits, partial: false, shards: { total: 1, answered: 1 } } }, Encoding.Msgpack)));
  await endToEnd(nats.url, dir, queries);
} finally {
  await nc.close();
  await nats.stop();
  await rm(dir, { recursive: true, force: true });
}

/** The main thread ↔ index worker round trips: a bare postMessage echo, and a search through the pool (comlink, batched). */
async function workerRoundTrips(queries: Float32Array[], records: { seq: number; data: Uint8Array }[]): Promise<void> {
  const echo = new Worker(`const { parentPort } = require("node:worker_threads"); parentPort.on("message", (m) => parentPort.postMessage(m));`, { eval: true });
  try {
    await stage("worker round trip: bare postMessage (the floor)", queries.length, "query", async () => {
      for (const v of queries) await new Promise((resolve) => (echo.once("message", resolve), echo.postMessage(v)));
    });
  } finally {
    await echo.terminate();
  }
  const pool = await IndexPool.start({ workers: 1 });
  try {
    const index = pool.pin("profile/0");
    await index.open(indexConfig);
    await index.apply(records.slice(0, 4));
    // Searched once absorbed: an absorbing worker makes a search wait for its current slice.
    while ((await index.stats()).pendingRows > 0) await new Promise((r) => setTimeout(r, 20));
    await stage("IndexPool.search: comlink round trip + a small shard's search", queries.length, "query", async () => {
      for (const v of queries) await index.search({ vector: v, k: 10, withPayload: false, withVectors: false });
    });
  } finally {
    await pool.close();
  }
}

/** The whole path: the SDK's search through a node in this process (1 shard), one query at a time. */
async function endToEnd(url: string, root: string, queries: Float32Array[]): Promise<void> {
  const node = await JadeNode.start({ servers: [url], dataDir: path.join(root, "node"), log: pino({ level: "warn" }) });
  const client = await JadeClient.connect({ servers: url });
  try {
    await client.createCollection({ name: "e2e", dimension: dim, metric: "l2", shards: 1, index: indexConfig.index });
    for (let from = 0; from < Math.min(opts.vectors, 10_000); from += 1000) {
      const to = Math.min(opts.vectors, from + 1000);
      await client.upsertColumns("e2e", { ids: Array.from({ length: to - from }, (_, i) => `e${from + i}`), vectors: data.slice(from * dim, to * dim), consistency: "all" });
    }
    for (;;) {
      const c = (await client.clusterStatus()).collections.find((x) => x.name === "e2e");
      if (c?.shards.every((s) => s.replicas.every((r) => r.pending === 0))) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await stage("end to end: JadeClient.search via nats-server and a node (1 shard)", queries.length, "query", async () => {
      for (const v of queries) await client.search("e2e", { vector: v, k: 10 });
    });
  } finally {
    await client.close();
    await node.stop();
  }

}

process.stdout.write(`\n${JSON.stringify({ dimension: dim, batch, shards: opts.shards, vectors: opts.vectors, machine: `${os.cpus().length} × ${os.cpus()[0]?.model}`, load: os.loadavg(), stages: rows }, null, 1)}\n`);
process.exit(0);
