/**
 * `npm run bench -- --suite cluster`: what sharding and replication cost, on Fashion-MNIST
 * (784-d, L2, f32, the default index params), on this one machine.
 *
 * 1. Query fan-out: one JadeNode (a child `jade start` by default, `--node-mode inproc` to host it
 *    in this process) with its own embedded nats-server. For each shard count S in
 *    --fanout-shards (1, 2, 4, 8): create `fanout_<S>`, upsert the same N vectors (consistency
 *    log, batch B, C in flight), wait until a session-consistent count sees all N, then search
 *    Q queries one at a time (p50/p95/p99, QPS) and 8 in flight (QPS), recall@10 against exact
 *    ground truth; drop the collection. Baseline: one raw usearch Index over the same N vectors
 *    in this process (same params), searched with 1 thread.
 * 2. Replicated ingest: 3 clustered nats-servers + 3 jade nodes as child processes on loopback
 *    (like test/cluster.e2e.test.ts). Collections of 3 shards with replicas 1 (consistency log),
 *    replicas 2 (log), replicas 2 (all): acked vec/s, searchable vec/s (session count == N) and
 *    all-replicas-applied vec/s; search p50/p95, QPS c=1 and c=8 and recall on the RF=2 collection.
 *
 * Prints tables and writes bench/results/<timestamp>-cluster.json and latest-cluster.json.
 * Every child process and temp dir is removed on success, error and SIGINT.
 */
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { JadeClient } from "../src/client/client.ts";
import { startEmbeddedNats, NatsServerMissingError, type EmbeddedNats } from "../src/nats/embedded.ts";
import { limits } from "../src/runtime/limits.ts";
import { Harness } from "../test/support/harness.ts";
import {
  contention,
  fmt,
  groundTruth,
  index,
  ingest,
  kv,
  loadAverage,
  loadDataset,
  log,
  machineInfo,
  once,
  onCleanup,
  phases,
  rawUsearch,
  recallOf,
  round,
  searchApi,
  searchBodies as makeSearchBodies,
  searchConcurrency,
  section,
  setTrackedPids,
  snapshot,
  startLocalCluster,
  startNode,
  table,
  upsertBody,
  waitServing,
  warmupQueries,
  writeResults,
  type Contention,
  type IngestResult,
  type NodeMode,
  type Quantization,
  type RawResult,
  type SearchRun,
  type WriteConsistencyLevel,
} from "./common.ts";
import { cpuDelta, cpuMsOf, cpuSnapshot } from "./cpu.ts";
import type { VectorSet } from "./datasets.ts";

export interface ClusterOptions {
  limit: number;
  queries: number;
  fanoutShards: number[];
  quantization: Quantization;
  batch: number;
  concurrency: number;
  nodeMode: NodeMode;
  raw: boolean;
}

const clusterNodes = ["n1", "n2", "n3"] as const;
const clusterShards = 3;
/** Nodes are declared dead after this long without a heartbeat: high, so a loaded 2-core box does not move replicas mid-run. */
const nodeDeadAfterMs = 30_000;

interface FanoutRow {
  shards: number;
  p50_ms: number;
  p95_ms: number;
  p99_ms: number;
  qps_c1: number;
  qps_c8: number;
  c8_p95_ms: number;
  recall_at_10: number;
  ingest_vps: number;
  acked_vps: number;
  /** CPU of every process involved (bench, nats-server, node) per query, in the c=8 run. */
  cpu_ms_per_query_c8: number;
  load_1m_at_start: number;
  /** Cores busy on average during this row's ingest + searches: ours (bench, nats, node) and every other process on the machine. */
  cpu_busy: Contention;
}

interface ReplicatedRow {
  replicas: number;
  consistency: WriteConsistencyLevel;
  acked_vps: number;
  /** First request → a session-consistent count sees all N. */
  ingest_vps: number;
  /** First request → every replica of every shard applied every write (a count with the token's minimum sequence sent to each replica directly). */
  replicated_vps: number;
  upsert_p50_ms: number;
  upsert_p95_ms: number;
  /** CPU per 1000 vectors, from first request to fully replicated. */
  cpu_ms_per_1000_vectors: { nodes: number; nats: number; bench: number; total: number };
  load_1m_at_start: number;
  /** Cores busy on average during the ingest: ours (bench, nats-servers, nodes) and every other process. */
  cpu_busy: Contention;
}

function load1m(): number {
  return round(os.loadavg()[0]!, 2);
}

async function searchPhases(client: JadeClient, collection: string, bodies: Uint8Array[], label: string, pids: Record<string, number | undefined>) {
  await searchApi(client, collection, bodies.slice(0, warmupQueries), 1, `${label} warm-up`);
  const c1 = await searchApi(client, collection, bodies, 1, `${label} c=1`);
  const before = cpuSnapshot(pids);
  const c8 = await searchApi(client, collection, bodies, searchConcurrency, `${label} c=${searchConcurrency}`);
  const cpu = cpuDelta(before, cpuSnapshot(pids));
  const cpuMs = Object.values(cpu).reduce((s, c) => s + c.mainMs + c.otherMs, 0);
  return { c1, c8, cpuMsPerQuery: cpuMs / bodies.length };
}

function latencyLine(run: SearchRun): string {
  return `p50 ${fmt(run.latencies.p50, 2)} ms, p95 ${fmt(run.latencies.p95, 2)}, p99 ${fmt(run.latencies.p99, 2)}, max ${fmt(run.latencies.max, 1)} ms; ${fmt(run.qps)} QPS`;
}

function ingestLine(ing: IngestResult): string {
  return (
    `acked ${fmt(ing.ackedVps)} vec/s (${fmt(ing.ackedSeconds, 1)} s), searchable ${fmt(ing.ingestVps)} vec/s (${fmt(ing.searchableSeconds, 1)} s)` +
    (ing.replicatedVps === undefined ? "" : `, all replicas ${fmt(ing.replicatedVps)} vec/s (${fmt(ing.replicatedSeconds!, 1)} s)`)
  );
}

// ---------------------------------------------------------------------------------------------
// 1. Fan-out on one node

async function fanout(opts: ClusterOptions, train: VectorSet, bodies: Uint8Array[], truth: bigint[][]): Promise<FanoutRow[] | undefined> {
  section(`fan-out: one node (${opts.nodeMode}), shards ${opts.fanoutShards.join(", ")}`);
  const tmp = await mkdtemp(path.join(os.tmpdir(), "jade-bench-fanout-"));
  onCleanup(() => rm(tmp, { recursive: true, force: true }));
  let nats: EmbeddedNats;
  try {
    nats = await startEmbeddedNats({ dataDir: path.join(tmp, "nats"), serverName: "jade-bench-fanout" });
  } catch (err) {
    if (err instanceof NatsServerMissingError) {
      process.stderr.write(`error: ${err.message}\n`);
      process.exitCode = 2;
      return undefined;
    }
    throw err;
  }
  onCleanup(() => nats.stop());
  await mkdir(path.join(tmp, "node"), { recursive: true });
  const node = await startNode(opts.nodeMode, nats.url, path.join(tmp, "node"));
  const stopNode = once(() => node.stop());
  onCleanup(stopNode);
  kv("nats-server", `${nats.url} (pid ${nats.process.pid})`);
  kv("node", opts.nodeMode === "child" ? `child process pid ${node.pid} (bin/jade.mjs start, one index worker per core)` : "in this process (one index worker per core)");
  const pids = { bench: process.pid, nats: nats.process.pid, node: node.pid };
  setTrackedPids(pids);

  const client = await JadeClient.connect({ servers: nats.url, name: "jade-bench-fanout", timeoutMs: 120_000 });
  const close = once(() => client.close());
  onCleanup(close);

  const rows: FanoutRow[] = [];
  for (const shards of opts.fanoutShards) {
    const collection = `fanout_${shards}`;
    log(`  ${collection}:`);
    const load = load1m();
    const busy = contention(pids);
    await client.createCollection({
      name: collection,
      dimension: train.dimension,
      metric: "l2",
      shards,
      index: { ...index, quantization: opts.quantization },
      snapshot,
    });
    await waitServing(client, collection);
    const ing = await ingest(client, train, { collection, batch: opts.batch, concurrency: opts.concurrency, consistency: "log", label: `S=${shards} ` });
    kv("ingest", ingestLine(ing));
    const s = await searchPhases(client, collection, bodies, `S=${shards}`, pids);
    const recall = recallOf(s.c1.found, truth);
    kv("search c=1", latencyLine(s.c1));
    kv(`search c=${searchConcurrency}`, latencyLine(s.c8));
    const cpuBusy = busy();
    kv("recall@10", `${fmt(recall, 4)}; CPU ${fmt(s.cpuMsPerQuery, 2)} ms/query at c=${searchConcurrency} (bench + nats + node)`);
    kv("cores busy", `ours ${fmt(cpuBusy.ours_cores, 2)}, other processes ${fmt(cpuBusy.others_cores, 2)} (of ${os.cpus().length})`);
    rows.push({
      shards,
      p50_ms: round(s.c1.latencies.p50, 3),
      p95_ms: round(s.c1.latencies.p95, 3),
      p99_ms: round(s.c1.latencies.p99, 3),
      qps_c1: round(s.c1.qps, 1),
      qps_c8: round(s.c8.qps, 1),
      c8_p95_ms: round(s.c8.latencies.p95, 3),
      recall_at_10: round(recall, 4),
      ingest_vps: round(ing.ingestVps, 1),
      acked_vps: round(ing.ackedVps, 1),
      cpu_ms_per_query_c8: round(s.cpuMsPerQuery, 3),
      load_1m_at_start: load,
      cpu_busy: cpuBusy,
    });
    await client.dropCollection(collection);
  }
  await close();
  await stopNode();
  await nats.stop();
  setTrackedPids({ bench: process.pid });
  return rows;
}

// ---------------------------------------------------------------------------------------------
// 2. Replicated ingest on a 3-node cluster

interface ReplicatedResult {
  rows: ReplicatedRow[];
  rf2Search: { p50_ms: number; p95_ms: number; p99_ms: number; qps_c1: number; qps_c8: number; c8_p95_ms: number; recall_at_10: number; cpu_busy: Contention };
}

async function replicated(opts: ClusterOptions, train: VectorSet, bodies: Uint8Array[], truth: bigint[][]): Promise<ReplicatedResult> {
  section(`replicated ingest: 3 nats-servers + 3 jade nodes (child processes), ${clusterShards} shards`);
  const harness = new Harness();
  onCleanup(() => harness.close());
  const cluster = await startLocalCluster(harness, clusterNodes.length, { streamReplicas: 3, nodeDeadAfterMs, clientName: "jade-bench-cluster" });
  const { client, closeClient: close } = cluster;
  const pids: Record<string, number | undefined> = { bench: process.pid, ...cluster.pids };
  kv("nats-servers", cluster.urls.map((url, i) => `${url} (pid ${pids[`nats${i + 1}`]})`).join(", "));
  kv("nodes", clusterNodes.map((id) => `${id} pid ${pids[`node_${id}`]}`).join(", ") + ` (--stream-replicas 3, --node-dead-after-ms ${nodeDeadAfterMs})`);

  const runs: { replicas: number; consistency: WriteConsistencyLevel; search: boolean }[] = [
    { replicas: 1, consistency: "log", search: false },
    { replicas: 2, consistency: "log", search: true },
    { replicas: 2, consistency: "all", search: false },
  ];
  const rows: ReplicatedRow[] = [];
  let rf2Search: ReplicatedResult["rf2Search"] | undefined;
  for (const run of runs) {
    const collection = `rf${run.replicas}_${run.consistency}`;
    log(`  ${collection} (shards ${clusterShards}, replicas ${run.replicas}, consistency ${run.consistency}):`);
    const load = load1m();
    await client.createCollection({
      name: collection,
      dimension: train.dimension,
      metric: "l2",
      shards: clusterShards,
      replicas: run.replicas,
      index: { ...index, quantization: opts.quantization },
      snapshot,
    });
    await waitServing(client, collection);
    const placement = (await client.clusterStatus()).collections.find((c) => c.name === collection);
    kv("placement", placement?.shards.map((s) => `shard ${s.shard} → ${s.replicas.map((r) => r.node).join("+")}`).join(", ") ?? "?");
    const before = cpuSnapshot(pids);
    const busy = contention(pids);
    const ing = await ingest(client, train, {
      collection,
      batch: opts.batch,
      concurrency: opts.concurrency,
      consistency: run.consistency,
      waitAllReplicas: true,
      label: `RF${run.replicas}/${run.consistency} `,
    });
    const cpuBusy = busy();
    const cpu = cpuDelta(before, cpuSnapshot(pids));
    const per1000 = (ms: number) => round((ms * 1000) / train.count, 1);
    const cpuRow = { nodes: per1000(cpuMsOf(cpu, "node_")), nats: per1000(cpuMsOf(cpu, "nats")), bench: per1000(cpuMsOf(cpu, "bench")), total: 0 };
    cpuRow.total = round(cpuRow.nodes + cpuRow.nats + cpuRow.bench, 1);
    kv("ingest", ingestLine(ing));
    kv("upsert request", `p50 ${fmt(ing.requestMs.p50, 0)} ms, p95 ${fmt(ing.requestMs.p95, 0)} ms, max ${fmt(ing.requestMs.max, 0)} ms`);
    kv("CPU per 1000 vectors", `nodes ${fmt(cpuRow.nodes)} ms, nats ${fmt(cpuRow.nats)} ms, bench ${fmt(cpuRow.bench)} ms`);
    kv("cores busy", `ours ${fmt(cpuBusy.ours_cores, 2)}, other processes ${fmt(cpuBusy.others_cores, 2)} (of ${os.cpus().length})`);
    rows.push({
      replicas: run.replicas,
      consistency: run.consistency,
      acked_vps: round(ing.ackedVps, 1),
      ingest_vps: round(ing.ingestVps, 1),
      replicated_vps: round(ing.replicatedVps ?? ing.ingestVps, 1),
      upsert_p50_ms: round(ing.requestMs.p50, 1),
      upsert_p95_ms: round(ing.requestMs.p95, 1),
      cpu_ms_per_1000_vectors: cpuRow,
      load_1m_at_start: load,
      cpu_busy: cpuBusy,
    });
    if (run.search) {
      const searchBusy = contention(pids);
      const s = await searchPhases(client, collection, bodies, `RF${run.replicas}`, pids);
      const recall = recallOf(s.c1.found, truth);
      kv("search c=1", latencyLine(s.c1));
      kv(`search c=${searchConcurrency}`, latencyLine(s.c8));
      kv("recall@10", fmt(recall, 4));
      rf2Search = {
        p50_ms: round(s.c1.latencies.p50, 3),
        p95_ms: round(s.c1.latencies.p95, 3),
        p99_ms: round(s.c1.latencies.p99, 3),
        qps_c1: round(s.c1.qps, 1),
        qps_c8: round(s.c8.qps, 1),
        c8_p95_ms: round(s.c8.latencies.p95, 3),
        recall_at_10: round(recall, 4),
        cpu_busy: searchBusy(),
      };
      kv("cores busy", `ours ${fmt(rf2Search.cpu_busy.ours_cores, 2)}, other processes ${fmt(rf2Search.cpu_busy.others_cores, 2)} (of ${os.cpus().length})`);
    }
    await client.dropCollection(collection);
  }
  await close();
  await harness.close();
  return { rows, rf2Search: rf2Search! };
}

// ---------------------------------------------------------------------------------------------
// The suite

export async function runCluster(opts: ClusterOptions): Promise<void> {
  const startedAt = new Date();
  const loadAtStart = loadAverage();
  phases.length = 0;
  setTrackedPids({ bench: process.pid });

  section("JadeVectorDB cluster benchmark");
  kv("started_at", startedAt.toISOString());
  kv("machine", `${os.cpus().length} cpus (${os.cpus()[0]?.model ?? "?"}), ${fmt(os.totalmem() / 2 ** 30, 1)} GiB, node ${process.version}, ${os.platform()}-${os.arch()}`);
  kv("load average", `${loadAtStart.join(" ")} at start (other processes share these ${os.cpus().length} cores)`);

  const { train, queries, trainTotal } = await loadDataset(opts.limit, opts.queries);
  kv("dataset", `fashion-mnist ${fmt(train.count)} train × ${train.dimension} (of ${fmt(trainTotal)}), ${fmt(queries.count)} test queries, metric l2`);
  kv("collections", `index connectivity ${index.connectivity} expansionAdd ${index.expansionAdd} expansionSearch ${index.expansionSearch} quantization ${opts.quantization}`);
  kv("ingest", `batch ${opts.batch} points/request, ${opts.concurrency} requests in flight`);
  kv("search", `k 10, ${warmupQueries} warm-up queries, then concurrency 1 (latency, recall) and ${searchConcurrency} (QPS)`);

  const firstBody = upsertBody(train, 0, Math.min(train.count, opts.batch)).byteLength;
  if (firstBody > limits.natsPayloadBytesMax) {
    throw new Error(`an upsert of ${opts.batch} points is ${fmt(firstBody)} bytes, over the ${fmt(limits.natsPayloadBytesMax)}-byte limit: lower --batch`);
  }

  section("ground truth (usearch exactSearch, l2sq, all threads)");
  const gtStarted = performance.now();
  const truth = groundTruth(train, queries);
  kv("time", `${fmt((performance.now() - gtStarted) / 1000, 1)} s`);
  const bodies = makeSearchBodies(queries);

  let raw: RawResult | undefined;
  let rawCpuBusy: Contention | undefined;
  if (opts.raw) {
    const threads = os.availableParallelism();
    section(`raw usearch (this process, before any node starts; add threads ${threads}, search threads 1)`);
    const rawBusy = contention({ bench: process.pid });
    raw = await rawUsearch(train, queries, opts.quantization, truth, threads);
    rawCpuBusy = rawBusy();
    kv("build", `${fmt(raw.buildSeconds, 2)} s → ${fmt(raw.ingestVps)} vec/s`);
    kv("search", `p50 ${fmt(raw.latencies.p50, 3)} ms, p95 ${fmt(raw.latencies.p95, 3)}, p99 ${fmt(raw.latencies.p99, 3)} ms; ${fmt(raw.qps)} QPS`);
    kv("recall@10", fmt(raw.recall, 4));
    kv("cores busy", `ours ${fmt(rawCpuBusy!.ours_cores, 2)}, other processes ${fmt(rawCpuBusy!.others_cores, 2)} (of ${os.cpus().length})`);
  }

  const fan = await fanout(opts, train, bodies, truth);
  if (fan === undefined) return;
  const rep = await replicated(opts, train, bodies, truth);
  const loadAtEnd = loadAverage();

  // ----- tables -----
  section(`fan-out: one node (${opts.nodeMode}), N=${fmt(train.count)}, Q=${fmt(queries.count)} vs raw usearch`);
  const fanRows = fan.map((r) => [
    String(r.shards),
    fmt(r.p50_ms, 2),
    fmt(r.p95_ms, 2),
    fmt(r.p99_ms, 2),
    fmt(r.qps_c1),
    fmt(r.qps_c8),
    fmt(r.c8_p95_ms, 2),
    fmt(r.recall_at_10, 4),
    fmt(r.ingest_vps),
    fmt(r.cpu_ms_per_query_c8, 2),
    raw ? `+${fmt(r.p95_ms - raw.latencies.p95, 2)}` : "—",
    fmt(r.cpu_busy.others_cores, 2),
  ]);
  if (raw) fanRows.push(["raw", fmt(raw.latencies.p50, 2), fmt(raw.latencies.p95, 2), fmt(raw.latencies.p99, 2), fmt(raw.qps), "—", "—", fmt(raw.recall, 4), fmt(raw.ingestVps), "—", "0", fmt(rawCpuBusy?.others_cores ?? NaN, 2)]);
  table(["shards", "p50 ms", "p95 ms", "p99 ms", "QPS c=1", `QPS c=${searchConcurrency}`, `p95 c=${searchConcurrency}`, "recall@10", "ingest vec/s", "CPU ms/q c8", "p95 vs raw", "others' cores"], fanRows);
  log(`  (raw: one usearch Index in this process, search threads 1; its ingest is a ${raw?.addThreads ?? "?"}-thread build, not comparable to the API's)`);

  section(`replicated ingest: 3 nodes, ${clusterShards} shards, N=${fmt(train.count)}, batch ${opts.batch}, ${opts.concurrency} in flight`);
  table(
    ["replicas", "consistency", "acked vec/s", "searchable vec/s", "all replicas vec/s", "upsert p50 ms", "upsert p95 ms", "CPU ms/1000 vec", "others' cores"],
    rep.rows.map((r) => [
      String(r.replicas),
      r.consistency,
      fmt(r.acked_vps),
      fmt(r.ingest_vps),
      fmt(r.replicated_vps),
      fmt(r.upsert_p50_ms),
      fmt(r.upsert_p95_ms),
      fmt(r.cpu_ms_per_1000_vectors.total),
      fmt(r.cpu_busy.others_cores, 2),
    ]),
  );
  log("  (searchable: a session-consistent count through the API sees all N; all replicas: each replica, asked directly with the session token's sequence, applied every write;");
  log("   CPU: nodes + nats-servers + bench, first request → all replicas applied)");

  section(`search on the RF=2 collection (3 nodes, ${clusterShards} shards)`);
  const s = rep.rf2Search;
  table(
    ["p50 ms", "p95 ms", "p99 ms", "QPS c=1", `QPS c=${searchConcurrency}`, `p95 c=${searchConcurrency}`, "recall@10", "others' cores"],
    [[fmt(s.p50_ms, 2), fmt(s.p95_ms, 2), fmt(s.p99_ms, 2), fmt(s.qps_c1), fmt(s.qps_c8), fmt(s.c8_p95_ms, 2), fmt(s.recall_at_10, 4), fmt(s.cpu_busy.others_cores, 2)]],
  );
  log("  (others' cores: CPU of every other process on the machine during the measurement, in cores busy on average — contention from other jobs)");
  kv("load average", `${loadAtStart.join(" ")} at start, ${loadAtEnd.join(" ")} at end (1, 5, 15 min)`);

  const othersMax = Math.max(
    rawCpuBusy?.others_cores ?? 0,
    ...fan.map((r) => r.cpu_busy.others_cores),
    ...rep.rows.map((r) => r.cpu_busy.others_cores),
    rep.rf2Search.cpu_busy.others_cores,
  );
  const note =
    othersMax >= 0.25
      ? `other processes kept up to ${fmt(othersMax, 2)} of ${os.cpus().length} cores busy during the measurements (see cpu_busy.others_cores per row): figures are lower and noisier than on an idle machine`
      : "machine otherwise idle during the measurements";
  kv("contention", note);

  const result = {
    suite: "cluster",
    started_at: startedAt.toISOString(),
    finished_at: new Date().toISOString(),
    dataset: "fashion-mnist-784-euclidean",
    n: train.count,
    queries: queries.count,
    quantization: opts.quantization,
    index,
    snapshot,
    batch: opts.batch,
    concurrency: opts.concurrency,
    search_concurrency: searchConcurrency,
    fanout_node_mode: opts.nodeMode,
    cluster: { nodes: clusterNodes.length, nats_servers: 3, shards: clusterShards, stream_replicas: 3, node_dead_after_ms: nodeDeadAfterMs },
    machine: machineInfo(),
    load_average: { at_start: loadAtStart, at_end: loadAtEnd },
    contention_note: note,
    fanout: fan,
    raw: raw
      ? {
          p50_ms: round(raw.latencies.p50, 3),
          p95_ms: round(raw.latencies.p95, 3),
          p99_ms: round(raw.latencies.p99, 3),
          qps: round(raw.qps, 1),
          recall_at_10: round(raw.recall, 4),
          build_vps: round(raw.ingestVps, 1),
          add_threads: raw.addThreads,
          search_threads: 1,
          cpu_busy: rawCpuBusy,
        }
      : null,
    replicated: rep.rows,
    rf2_search: rep.rf2Search,
  };
  const files = await writeResults("cluster", startedAt, result);
  section("written");
  for (const f of files) log(`  ${f}`);
}
