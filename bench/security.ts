/**
 * `npm run bench -- --suite security`: what TLS and authentication cost (issue 13). Two
 * clusters side by side, each a nats-server and a node (a child process): one open, one
 * secured as `jade dev --auth --tls-*` secures it (TLS on every NATS connection, nkey users,
 * certificates made with openssl for this run). Measured in alternating rounds (AB BA…, so
 * the VM's drift falls on both): search latency at concurrency 1 and QPS at 8 on one
 * Fashion-MNIST collection, and ingest throughput into a new collection each round; raw
 * usearch on the same data from the same run beside them.
 */
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { JadeClient } from "../src/client/client.ts";
import { AuthDir } from "../src/nats/auth-dir.ts";
import type { NatsAuth } from "../src/nats/auth.ts";
import { startEmbeddedNats, type ServerTls } from "../src/nats/embedded.ts";
import { makeTestCerts } from "../test/support/certs.ts";
import {
  fmt,
  groundTruth,
  index,
  ingest,
  kv,
  loadDataset,
  log,
  machineInfo,
  onCleanup,
  rawUsearch,
  round,
  searchApi,
  searchBodies,
  searchConcurrency,
  section,
  snapshot,
  startNode,
  table,
  waitServing,
  warmupQueries,
  writeResults,
} from "./common.ts";
import type { VectorSet } from "./datasets.ts";

const collection = "sec";

type Variant = "open" | "TLS + auth";
const variants: readonly Variant[] = ["open", "TLS + auth"];

interface Measurement {
  variant: Variant;
  round: number;
  p50Ms: number;
  p95Ms: number;
  qpsC1: number;
  qpsC8: number;
  ackedVps: number;
  ingestVps: number;
}

export interface SecurityBenchOptions {
  limit: number;
  queries: number;
  rounds: number;
}

interface Cluster {
  variant: Variant;
  client: JadeClient;
}

const mean = (values: readonly number[]) => values.reduce((a, b) => a + b, 0) / values.length;

/** A nats-server and a node, open or secured; the client connects as the admin. */
async function startCluster(variant: Variant, tmp: string): Promise<Cluster> {
  const dir = path.join(tmp, variant === "open" ? "open" : "secure");
  await mkdir(dir, { recursive: true });
  let tls: ServerTls | undefined;
  let authDir: AuthDir | undefined;
  if (variant !== "open") {
    const certs = await makeTestCerts(dir);
    tls = { certFile: certs.serverCertFile, keyFile: certs.serverKeyFile, caFile: certs.caFile };
    authDir = new AuthDir(path.join(dir, "auth"));
    await authDir.init();
  }
  const nats = await startEmbeddedNats({
    dataDir: path.join(dir, "nats"),
    serverName: `jade-bench-${variant === "open" ? "open" : "secure"}`,
    ...(tls ? { tls } : {}),
    ...(authDir ? { authorizationFile: authDir.authorizationFile } : {}),
  });
  onCleanup(() => nats.stop());
  const as = (user: string): NatsAuth | undefined => (tls && authDir ? { tls: { caFile: tls.caFile }, credsFile: authDir.credsFile(user) } : undefined);
  const nodeArgs = tls && authDir ? ["--tls-ca", tls.caFile!, "--creds", authDir.credsFile("node")] : [];
  const node = await startNode("child", nats.url, path.join(dir, "node"), ["--node-id", "sec", ...nodeArgs]);
  onCleanup(() => node.stop());
  const admin = as("admin");
  const client = await JadeClient.connect({ servers: nats.url, name: "jade-bench-security", timeoutMs: 120_000, ...(admin ? { auth: admin } : {}) });
  onCleanup(() => client.close());
  return { variant, client };
}

export async function runSecurity(opts: SecurityBenchOptions): Promise<void> {
  const startedAt = new Date();
  section("What TLS and authentication cost");
  kv("machine", JSON.stringify(machineInfo()));
  const { train, queries } = await loadDataset(opts.limit, opts.queries);
  kv("dataset", `fashion-mnist ${fmt(train.count)} × ${train.dimension}, ${fmt(queries.count)} queries, k 10, 1 shard`);
  kv("variants", `${variants.join(" vs ")}, ${opts.rounds} rounds, alternating`);
  const bodies = searchBodies(queries);
  const tmp = await mkdtemp(path.join(os.tmpdir(), "jade-bench-sec-"));
  onCleanup(() => rm(tmp, { recursive: true, force: true }));

  const clusters: Cluster[] = [];
  for (const variant of variants) {
    const cluster = await startCluster(variant, tmp);
    await cluster.client.createCollection({ name: collection, dimension: train.dimension, metric: "l2", shards: 1, index, snapshot });
    await waitServing(cluster.client, collection, 30_000);
    await ingest(cluster.client, train, { collection, batch: 1000, concurrency: 4, consistency: "log" });
    await waitServing(cluster.client, collection, 120_000);
    clusters.push(cluster);
  }

  const measurements: Measurement[] = [];
  for (let r = 1; r <= opts.rounds; r++) {
    for (const cluster of r % 2 === 1 ? clusters : [...clusters].reverse()) {
      const m = await measure(cluster, r, bodies, train);
      measurements.push(m);
      log(`  round ${r} ${m.variant}: c=1 p50 ${fmt(m.p50Ms, 2)} ms p95 ${fmt(m.p95Ms, 2)} ms ${fmt(m.qpsC1)} q/s; c=${searchConcurrency} ${fmt(m.qpsC8)} q/s; ingest ${fmt(m.ackedVps)} vec/s acknowledged`);
    }
  }

  section("raw usearch, same data, this process");
  const raw = await rawUsearch(train, queries, "f32", groundTruth(train, queries), os.availableParallelism());
  kv("raw usearch", `c=1 p50 ${fmt(raw.latencies.p50, 3)} ms p95 ${fmt(raw.latencies.p95, 3)} ms, ${fmt(raw.qps)} q/s one at a time`);

  section("summary (mean over rounds)");
  const summary = variants.map((variant) => {
    const ms = measurements.filter((m) => m.variant === variant);
    const avg = (pick: (m: Measurement) => number) => mean(ms.map(pick));
    return { variant, p50Ms: avg((m) => m.p50Ms), p95Ms: avg((m) => m.p95Ms), qpsC1: avg((m) => m.qpsC1), qpsC8: avg((m) => m.qpsC8), ackedVps: avg((m) => m.ackedVps), ingestVps: avg((m) => m.ingestVps) };
  });
  const [open, secure] = summary as [(typeof summary)[number], (typeof summary)[number]];
  const cost = {
    p95Pct: (secure.p95Ms / open.p95Ms - 1) * 100,
    qpsC1Pct: (1 - secure.qpsC1 / open.qpsC1) * 100,
    qpsC8Pct: (1 - secure.qpsC8 / open.qpsC8) * 100,
    ingestPct: (1 - secure.ackedVps / open.ackedVps) * 100,
  };
  table(
    ["variant", "p50 ms", "p95 ms", "QPS c=1", `QPS c=${searchConcurrency}`, "ingest acked vec/s", "ingest searchable vec/s"],
    [
      ...summary.map((s) => [s.variant, fmt(s.p50Ms, 3), fmt(s.p95Ms, 3), fmt(s.qpsC1), fmt(s.qpsC8), fmt(s.ackedVps), fmt(s.ingestVps)]),
      ["raw usearch", fmt(raw.latencies.p50, 3), fmt(raw.latencies.p95, 3), fmt(raw.qps), "—", "—", "—"],
    ],
  );
  kv("TLS + auth cost", `p95 ${fmt(cost.p95Pct, 1)} %, QPS c=1 ${fmt(cost.qpsC1Pct, 1)} %, QPS c=${searchConcurrency} ${fmt(cost.qpsC8Pct, 1)} %, ingest ${fmt(cost.ingestPct, 1)} %`);
  const files = await writeResults("security", startedAt, {
    startedAt: startedAt.toISOString(),
    machine: machineInfo(),
    dataset: { name: "fashion-mnist", n: train.count, queries: queries.count },
    measurements,
    summary,
    cost: Object.fromEntries(Object.entries(cost).map(([k, v]) => [k, round(v, 2)])),
    raw: { p50Ms: raw.latencies.p50, p95Ms: raw.latencies.p95, qps: raw.qps },
  });
  kv("results", files.join(", "));
}

async function measure(cluster: Cluster, roundNo: number, bodies: Uint8Array[], train: VectorSet): Promise<Measurement> {
  const { client, variant } = cluster;
  await searchApi(client, collection, bodies.slice(0, warmupQueries * 10), 1, "warm-up");
  const c1 = await searchApi(client, collection, bodies, 1, `${variant} c=1`);
  const c8 = await searchApi(client, collection, [...bodies, ...bodies, ...bodies], searchConcurrency, `${variant} c=${searchConcurrency}`);
  // A new collection each round: ingest into an empty shard every time.
  const target = `ingest_${roundNo}`;
  await client.createCollection({ name: target, dimension: train.dimension, metric: "l2", shards: 1, index, snapshot });
  await waitServing(client, target, 30_000);
  const ingested = await ingest(client, train, { collection: target, batch: 1000, concurrency: 4, consistency: "log", label: `${variant} ingest` });
  await client.dropCollection(target);
  return { variant, round: roundNo, p50Ms: c1.latencies.p50, p95Ms: c1.latencies.p95, qpsC1: c1.qps, qpsC8: c8.qps, ackedVps: ingested.ackedVps, ingestVps: ingested.ingestVps };
}
