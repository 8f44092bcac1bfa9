/**
 * `npm run bench`: the JadeVectorDB benchmarks on Fashion-MNIST (784-d, L2).
 *
 *   npx tsx bench/run.ts [--suite core|cluster|nodes|resilience|scale|peers|all] [options]
 *
 * --suite core (the default) measures, through the NATS API of one JadeNode (1 shard by default,
 * like a new collection):
 *   - ingest: upserts of B points (consistency "log"), C requests in flight →
 *     acked_vps (first request → last ack) and ingest_vps (first request → every
 *     point searchable: session-consistent count == N and replica lag 0);
 *   - search: k=10 one request at a time (p50/p95/p99, QPS) and with 8 loops in
 *     flight (QPS); recall@10 against exact ground truth;
 * and, after the node is stopped, the same work on a bare usearch Index in this
 * process (the limit). It prints a comparison with the targets and writes
 * bench/results/<timestamp>-core.json and bench/results/latest-core.json.
 *
 * --suite cluster (bench/cluster.ts): query fan-out cost over 1, 2, 4, 8 shards on one node vs
 * raw usearch, and replicated ingest (RF=1, RF=2) on a 3-node cluster; writes
 * bench/results/<timestamp>-cluster.json and bench/results/latest-cluster.json.
 *
 * --suite nodes (bench/nodes.ts): throughput and CPU per vector and per query on 1, 2, 3 nodes
 *   (all on this machine), and the per-node cost model that predicts 10 nodes; writes
 *   bench/results/<timestamp>-nodes.json, latest-nodes.json and nodes.md with plots.
 *
 * --suite resilience (bench/resilience.ts): failover time after kill -9 of a node (RF=2 and RF=1) and
 * search p95 / QPS during shard migrations vs before, on a 3-node cluster with default node settings;
 * writes bench/results/<timestamp>-resilience.json and bench/results/latest-resilience.json.
 *
 * --suite scale (bench/scale.ts): `jade dev` + `jade import` of 100k and 1M clustered 128-d vectors into
 * 4 shards (--scale-n, --burst-n, --expansion-search): acknowledged rate, ack → searchable, search latency
 * during imports, settled and while snapshots save, memory and disk, against raw usearch building the same
 * shards; writes bench/results/<timestamp>-scale.json, latest-scale.json and scale.md with plots.
 *
 * --suite peers (bench/peers.ts, --dataset fashion-mnist|clustered): JadeVectorDB, raw usearch, hnswlib-node
 * and LanceDB on the same data in one run: build, memory, disk, latency, QPS, recall, an ef sweep;
 * writes bench/results/<timestamp>-peers.json and peers.md with plots.
 *
 * --suite storage (bench/storage.ts, --storage-n, --storage-rounds): disk per live vector while the same ids
 * are overwritten, with the log kept (24 h window), compacted (window 0), and after deleting half;
 * writes bench/results/<timestamp>-storage.json, latest-storage.json and storage.md.
 *
 * --suite backup (bench/backup.ts, --backup-n): backup and restore throughput against re-importing, on
 *   Fashion-MNIST and --backup-n clustered 128-d vectors; search QPS while a backup runs; point-in-time
 *   restore time against the log replayed; disk per vector before and after compaction.
 * --suite observability (bench/observability.ts, --rounds): search latency and QPS with metrics off, on
 *   (scraped every second), and with every request traced, alternating node restarts, beside raw usearch; writes
 *   bench/results/<timestamp>-observability.json and latest-observability.json.
 * --suite security (bench/security.ts, --rounds): search latency, QPS and ingest throughput on an open cluster
 *   and on one with TLS and authentication, alternating, beside raw usearch; writes
 *   bench/results/<timestamp>-security.json and latest-security.json.
 * --suite compression (bench/compression.ts): how far shard-log entries and checkpoint files compress, and
 *   how fast, on Fashion-MNIST and dense 128-d vectors; whether compressing them would pay.
 * --suite txn (bench/txn.ts, --txn-ops, --txn-concurrency, --rounds): transactions of 10 points over 2, 4 and 8
 *   shards beside plain upserts of the same points, and throughput as conflicting transactions grow, on a 3-node
 *   cluster, with raw usearch adds for scale; writes bench/results/<timestamp>-txn.json and latest-txn.json.
 * --suite all: core, cluster, nodes, resilience, peers, storage, backup, observability, security, then scale.
 *
 * Options left out take the suite's default (core / cluster):
 *   --limit N          train vectors (60000 / 20000)
 *   --queries Q        test queries (1000 / 300)
 *   --batch B          points per upsert (1000 / 500)
 *   --concurrency C    upserts in flight (4 / 4)
 *   --node-mode M      inproc|child (inproc / child: the fan-out node)
 *   --shards S         core only (1);  --fanout-shards LIST  cluster only (1,2,4,8)
 *   --quantization Q   f32|f16 (f32);  --no-raw  skip the raw usearch baseline
 */
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Command, Option } from "commander";
import { JadeClient } from "../src/client/client.ts";
import { startEmbeddedNats, NatsServerMissingError, type EmbeddedNats } from "../src/nats/embedded.ts";
import { limits } from "../src/runtime/limits.ts";
import {
  fmt,
  groundTruth,
  index,
  ingest,
  k,
  kv,
  loadDataset,
  log,
  measured,
  once,
  onCleanup,
  phasesJson,
  positiveInt,
  positiveIntList,
  printCpu,
  rawUsearch,
  recallOf,
  resetCleanups,
  round,
  runCleanups,
  searchApi,
  searchBodies as makeSearchBodies,
  searchConcurrency,
  section,
  setTrackedPids,
  snapshot,
  startNode,
  upsertBody,
  waitServing,
  warmupQueries,
  writeResults,
  type NodeMode,
  type Quantization,
  type RawResult,
} from "./common.ts";
import { runCluster } from "./cluster.ts";
import { runNodes } from "./nodes.ts";
import { runResilience } from "./resilience.ts";
import { runScale } from "./scale.ts";
import { runStorage } from "./storage.ts";
import { runBackupBench } from "./backup.ts";
import { runObservability } from "./observability.ts";
import { runSecurity } from "./security.ts";
import { runTxn } from "./txn.ts";
import { runCompression } from "./compression.ts";
import { peersDefaults, runPeers } from "./peers.ts";
import { printSummary as printPeersSummary } from "./peers-report.ts";

// ---------------------------------------------------------------------------------------------
// Options

const collection = "bench";

const program = new Command()
  .name("bench")
  .description("JadeVectorDB benchmarks on Fashion-MNIST (core: ours vs raw usearch; cluster: fan-out and replicated ingest)")
  .addOption(new Option("--suite <suite>", "which benchmark to run").choices(["core", "cluster", "nodes", "resilience", "scale", "peers", "storage", "backup", "observability", "security", "compression", "txn", "all"]).default("core"))
  .addOption(new Option("--dataset <name>", "peers: data set").choices(["fashion-mnist", "clustered"]).default("fashion-mnist"))
  .option("--scale-n <n>", "scale: vectors of the sustained import", positiveInt, 1_000_000)
  .option("--burst-n <n>", "scale: vectors of the burst import", positiveInt, 100_000)
  .option("--expansion-search <n>", "scale: the collection's expansionSearch", positiveInt, 64)
  .option("--limit <n>", "train vectors to ingest, max 60000 (default: core 60000, cluster 20000)", positiveInt)
  .option("--queries <q>", "test vectors to search, max 10000 (default: core 1000, cluster 300)", positiveInt)
  .option("--shards <s>", "core: shards of the collection", positiveInt, 1)
  .option("--fanout-shards <list>", "cluster: shard counts of the fan-out runs", positiveIntList, [1, 2, 4, 8])
  .option("--nodes <list>", "nodes: node counts of the scaling runs", positiveIntList, [1, 2, 3])
  .addOption(new Option("--quantization <q>", "index quantization").choices(["f32", "f16"]).default("f32"))
  .option("--batch <b>", "points per upsert request (default: core 1000, cluster 500)", positiveInt)
  .option("--concurrency <c>", "upsert requests in flight", positiveInt, 4)
  .addOption(new Option("--node-mode <mode>", "run the node in this process or as a child process (default: core inproc, cluster child)").choices(["inproc", "child"]))
  .option("--no-raw", "skip the raw usearch baseline")
  .option("--storage-n <n>", "storage: ids overwritten each round", positiveInt, 100_000)
  .option("--storage-rounds <r>", "storage: times every id is written", positiveInt, 5)
  .option("--backup-n <n>", "backup: clustered 128-d vectors of the large data set", positiveInt, 1_000_000)
  .option("--txn-ops <n>", "txn: operations per measured run", positiveInt, 300)
  .option("--txn-concurrency <n>", "txn: operations in flight", positiveInt, 4)
  .option("--rounds <r>", "resilience: failover rounds; observability, security: rounds of each variant", positiveInt, 3)
  .option("--failover-n <n>", "resilience: vectors per failover collection", positiveInt, 2_000)
  .option("--rebalance-n <n>", "resilience: vectors of the rebalance collection", positiveInt, 10_000)
  .showHelpAfterError();

interface CliOptions {
  suite: Suite | "all";
  dataset: "fashion-mnist" | "clustered";
  scaleN: number;
  burstN: number;
  storageN: number;
  storageRounds: number;
  backupN: number;
  expansionSearch: number;
  rounds: number;
  txnOps: number;
  txnConcurrency: number;
  failoverN: number;
  rebalanceN: number;
  limit?: number;
  queries?: number;
  shards: number;
  fanoutShards: number[];
  nodes: number[];
  quantization: Quantization;
  batch?: number;
  concurrency: number;
  nodeMode?: NodeMode;
  raw: boolean;
}

interface Options {
  limit: number;
  queries: number;
  shards: number;
  quantization: Quantization;
  batch: number;
  concurrency: number;
  nodeMode: NodeMode;
  raw: boolean;
}

// ---------------------------------------------------------------------------------------------
// Core suite

async function runCore(opts: Options): Promise<void> {
  const startedAt = new Date();
  const loadAtStart = os.loadavg().map((x) => fmt(x, 2)).join(" ");

  section("JadeVectorDB core benchmark");
  kv("started_at", startedAt.toISOString());
  kv("machine", `${os.cpus().length} cpus (${os.cpus()[0]?.model ?? "?"}), ${fmt(os.totalmem() / 2 ** 30, 1)} GiB, node ${process.version}, ${os.platform()}-${os.arch()}`);

  const { train, queries, trainTotal } = await loadDataset(opts.limit, opts.queries);
  const n = train.count;
  const q = queries.count;

  kv("dataset", `fashion-mnist ${fmt(n)} train × ${train.dimension} (of ${fmt(trainTotal)}), ${fmt(q)} test queries, pixels/255 float32, metric l2`);
  kv("collection", `shards ${opts.shards}, index connectivity ${index.connectivity} expansionAdd ${index.expansionAdd} expansionSearch ${index.expansionSearch} quantization ${opts.quantization}`);
  kv("snapshots", `everyEntries ${fmt(snapshot.everyEntries)}, intervalMs ${fmt(snapshot.intervalMs)} (set high so snapshots stay out of the measurement)`);
  kv("ingest", `batch ${opts.batch} points/request, ${opts.concurrency} requests in flight, consistency log`);
  kv("search", `k ${k}, ${warmupQueries} warm-up queries, then concurrency 1 (latency, recall) and ${searchConcurrency} (QPS)`);
  kv("node_mode", opts.nodeMode === "inproc" ? "inproc (node, nats client and bench share this process's main thread)" : "child (node in its own process: bin/jade.mjs start)");

  section("ground truth (usearch exactSearch, l2sq, all threads)");
  const gtStarted = performance.now();
  const truth = groundTruth(train, queries);
  kv("time", `${fmt((performance.now() - gtStarted) / 1000, 1)} s`);

  // Query bodies are built once, outside the timed loops.
  const searchBodies = makeSearchBodies(queries);

  const tmp = await mkdtemp(path.join(os.tmpdir(), "jade-bench-"));
  onCleanup(() => rm(tmp, { recursive: true, force: true }));

  section(`JadeVectorDB (${opts.nodeMode})`);
  let nats: EmbeddedNats;
  try {
    nats = await startEmbeddedNats({ dataDir: path.join(tmp, "nats"), serverName: "jade-bench" });
  } catch (err) {
    if (err instanceof NatsServerMissingError) {
      process.stderr.write(`error: ${err.message}\n`);
      process.exitCode = 2;
      return;
    }
    throw err;
  }
  onCleanup(() => nats.stop());
  kv("nats-server", `${nats.url} (pid ${nats.process.pid}), store in ${tmp}`);
  let trackedPids: Record<string, number | undefined> = { bench: process.pid, nats: nats.process.pid };
  setTrackedPids(trackedPids);

  await mkdir(path.join(tmp, "node"), { recursive: true });
  const node = await startNode(opts.nodeMode, nats.url, path.join(tmp, "node"));
  if (node.pid !== undefined) trackedPids = { ...trackedPids, node: node.pid };
  setTrackedPids(trackedPids);
  const stopNode = once(() => node.stop());
  onCleanup(stopNode);
  const client = await JadeClient.connect({ servers: nats.url, name: "jade-bench", timeoutMs: 120_000 });
  const closeClient = once(() => client.close());
  onCleanup(closeClient);

  await client.createCollection({
    name: collection,
    dimension: train.dimension,
    metric: "l2",
    shards: opts.shards,
    index: { ...index, quantization: opts.quantization },
    snapshot,
  });
  // Wait until every shard's replica serves (an empty collection).
  await waitServing(client, collection, 30_000);

  const firstBody = upsertBody(train, 0, Math.min(n, opts.batch)).byteLength;
  if (firstBody > limits.natsPayloadBytesMax) {
    throw new Error(`an upsert of ${opts.batch} points is ${fmt(firstBody)} bytes, over the ${fmt(limits.natsPayloadBytesMax)}-byte limit: lower --batch`);
  }

  log("  ingest:");
  const ing = await measured("ingest", n, "vectors", () => ingest(client, train, { collection, batch: opts.batch, concurrency: opts.concurrency, consistency: "log" }));
  kv("acked", `${fmt(ing.ackedSeconds, 2)} s → ${fmt(ing.ackedVps)} vec/s`);
  kv("searchable", `${fmt(ing.searchableSeconds, 2)} s → ${fmt(ing.ingestVps)} vec/s (applied: found by the fresh buffer's exact scan)`);
  kv("indexed", `${fmt(ing.indexedSeconds, 2)} s → ${fmt(ing.indexedVps)} vec/s (every graph absorbed every point)`);
  kv("upsert request", `mean ${fmt(ing.requestMs.mean, 1)} ms, p50 ${fmt(ing.requestMs.p50, 1)}, p95 ${fmt(ing.requestMs.p95, 1)}, max ${fmt(ing.requestMs.max, 1)} ms; body ${fmt(ing.bodyBytesMean / 1e6, 2)} MB`);
  kv("client JSON build", `${fmt(ing.buildMs)} ms total (inside the timed window)`);
  kv("session token", JSON.stringify(ing.token));

  log("  search:");
  // Warm up (not measured).
  await searchApi(client, collection, searchBodies.slice(0, warmupQueries), 1, "warm-up");
  const c1 = await measured("search c=1", q, "queries", () => searchApi(client, collection, searchBodies, 1, "search c=1"));
  const c8 = await measured(`search c=${searchConcurrency}`, q, "queries", () =>
    searchApi(client, collection, searchBodies, searchConcurrency, `search c=${searchConcurrency}`),
  );
  const recall = recallOf(c1.found, truth);
  const recallC8 = recallOf(c8.found, truth);
  kv("c=1 latency", `p50 ${fmt(c1.latencies.p50, 3)} ms, p95 ${fmt(c1.latencies.p95, 3)}, p99 ${fmt(c1.latencies.p99, 3)}, max ${fmt(c1.latencies.max, 2)} ms`);
  kv("c=1 QPS", fmt(c1.qps));
  kv(`c=${searchConcurrency} latency`, `p50 ${fmt(c8.latencies.p50, 3)} ms, p95 ${fmt(c8.latencies.p95, 3)}, p99 ${fmt(c8.latencies.p99, 3)} ms`);
  kv(`c=${searchConcurrency} QPS`, fmt(c8.qps));
  kv("recall@10", `${fmt(recall, 4)} (c=${searchConcurrency}: ${fmt(recallC8, 4)})`);

  await closeClient();
  await stopNode();
  await nats.stop();

  let raw: RawResult | undefined;
  // The limit: raw usearch on every core (the "2 threads" on this machine).
  const rawThreads = os.availableParallelism();
  if (opts.raw) {
    section(`raw usearch (same process, node stopped; add threads ${rawThreads}, search threads 1, then all ${rawThreads} batched)`);
    setTrackedPids({ bench: process.pid });
    raw = await rawUsearch(train, queries, opts.quantization, truth, rawThreads);
    kv("build", `${fmt(raw.buildSeconds, 2)} s → ${fmt(raw.ingestVps)} vec/s`);
    kv("latency", `p50 ${fmt(raw.latencies.p50, 3)} ms, p95 ${fmt(raw.latencies.p95, 3)}, p99 ${fmt(raw.latencies.p99, 3)} ms`);
    kv("QPS (c=1)", fmt(raw.qps));
    kv("recall@10", fmt(raw.recall, 4));
  }

  printCpu();
  kv("load average", `${os.loadavg().map((x) => fmt(x, 2)).join(" ")} now; ${loadAtStart} at start (other processes share these ${os.cpus().length} cores)`);

  // ----- comparison -----
  section("results: ours vs raw usearch");
  const rows: [string, string, string, string][] = [];
  const num = (x: number | undefined, d = 0) => (x === undefined || Number.isNaN(x) ? "—" : fmt(x, d));
  rows.push(["ingest vec/s (acked)", num(ing.ackedVps), "", ""]);
  rows.push(["ingest vec/s (searchable)", num(ing.ingestVps), "", ""]);
  rows.push(["ingest vec/s (indexed)", num(ing.indexedVps), num(raw?.ingestVps), raw ? `${fmt((100 * ing.indexedVps) / raw.ingestVps, 1)} % of raw` : ""]);
  rows.push(["search p50 ms (c=1)", num(c1.latencies.p50, 3), num(raw?.latencies.p50, 3), raw ? `+${fmt(c1.latencies.p50 - raw.latencies.p50, 3)} ms` : ""]);
  rows.push(["search p95 ms (c=1)", num(c1.latencies.p95, 3), num(raw?.latencies.p95, 3), raw ? `+${fmt(c1.latencies.p95 - raw.latencies.p95, 3)} ms` : ""]);
  rows.push(["search p99 ms (c=1)", num(c1.latencies.p99, 3), num(raw?.latencies.p99, 3), raw ? `+${fmt(c1.latencies.p99 - raw.latencies.p99, 3)} ms` : ""]);
  rows.push(["QPS c=1", num(c1.qps), num(raw?.qps), raw ? `${fmt((100 * c1.qps) / raw.qps, 1)} % of raw` : ""]);
  rows.push([`QPS c=${searchConcurrency}`, num(c8.qps), num(raw?.qpsAllThreads), raw ? `${fmt((100 * c8.qps) / raw.qpsAllThreads, 1)} % of raw (all threads)` : ""]);
  rows.push(["recall@10", num(recall, 4), num(raw?.recall, 4), raw ? `${recall - raw.recall >= 0 ? "+" : ""}${fmt(recall - raw.recall, 4)}` : ""]);
  const widths = [28, 12, 12, 20];
  const line = (cells: readonly string[]) => "  " + cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  log(line(["metric", "ours", "raw", "delta"]));
  log("  " + "-".repeat(widths.reduce((s, w) => s + w + 2, -2)));
  for (const row of rows) log(line(row));

  const targets: { name: string; pass: boolean | undefined; detail: string }[] = [
    {
      name: "recall@10 within 0.005 of raw",
      pass: raw ? Math.abs(recall - raw.recall) <= 0.005 : undefined,
      detail: raw ? `|${fmt(recall, 4)} − ${fmt(raw.recall, 4)}| = ${fmt(Math.abs(recall - raw.recall), 4)}` : "no raw run",
    },
    {
      name: "indexed ≥ 80% of raw build",
      pass: raw ? ing.indexedVps >= 0.8 * raw.ingestVps : undefined,
      detail: raw ? `${fmt(ing.indexedVps)} vs ≥ ${fmt(0.8 * raw.ingestVps)} (${fmt((100 * ing.indexedVps) / raw.ingestVps, 1)} %)` : "no raw run",
    },
    {
      name: "search p95 ≤ raw p95 + 1 ms",
      pass: raw ? c1.latencies.p95 <= raw.latencies.p95 + 1 : undefined,
      detail: raw ? `${fmt(c1.latencies.p95, 3)} ms vs ≤ ${fmt(raw.latencies.p95 + 1, 3)} ms` : "no raw run",
    },
    {
      name: `QPS c=${searchConcurrency} ≥ 60% of raw (all threads)`,
      pass: raw ? c8.qps >= 0.6 * raw.qpsAllThreads : undefined,
      detail: raw ? `${fmt(c8.qps)} vs ≥ ${fmt(0.6 * raw.qpsAllThreads)} (${fmt((100 * c8.qps) / raw.qpsAllThreads, 1)} %)` : "no raw run",
    },
  ];
  section("targets");
  for (const t of targets) log(`  ${t.pass === undefined ? "SKIP" : t.pass ? "PASS" : "MISS"}  ${t.name.padEnd(32)} ${t.detail}`);

  const result = {
    started_at: startedAt.toISOString(),
    finished_at: new Date().toISOString(),
    dataset: "fashion-mnist-784-euclidean",
    n,
    queries: q,
    shards: opts.shards,
    quantization: opts.quantization,
    batch: opts.batch,
    concurrency: opts.concurrency,
    node_mode: opts.nodeMode,
    index,
    snapshot,
    machine: { cpus: os.cpus().length, load_at_start: loadAtStart, cpu_model: os.cpus()[0]?.model ?? null, node: process.version, platform: `${os.platform()}-${os.arch()}` },
    acked_vps: round(ing.ackedVps, 1),
    ingest_vps: round(ing.ingestVps, 1),
    indexed_vps: round(ing.indexedVps, 1),
    raw_ingest_vps: raw ? round(raw.ingestVps, 1) : null,
    raw_add_threads: rawThreads,
    raw_qps_all_threads: raw ? round(raw.qpsAllThreads, 1) : null,
    upsert_request_ms: { p50: round(ing.requestMs.p50, 2), p95: round(ing.requestMs.p95, 2), max: round(ing.requestMs.max, 2) },
    upsert_body_bytes_mean: Math.round(ing.bodyBytesMean),
    search_p50_ms: round(c1.latencies.p50, 3),
    search_p95_ms: round(c1.latencies.p95, 3),
    search_p99_ms: round(c1.latencies.p99, 3),
    search_c8_p50_ms: round(c8.latencies.p50, 3),
    search_c8_p95_ms: round(c8.latencies.p95, 3),
    raw_search_p50_ms: raw ? round(raw.latencies.p50, 3) : null,
    raw_search_p95_ms: raw ? round(raw.latencies.p95, 3) : null,
    raw_search_p99_ms: raw ? round(raw.latencies.p99, 3) : null,
    qps_c1: round(c1.qps, 1),
    qps_c8: round(c8.qps, 1),
    raw_qps: raw ? round(raw.qps, 1) : null,
    recall_at_10: round(recall, 4),
    recall_at_10_c8: round(recallC8, 4),
    raw_recall_at_10: raw ? round(raw.recall, 4) : null,
    load_average: { at_start: loadAtStart, at_end: os.loadavg().map((x) => round(x, 2)) },
    cpu_ms_per_1000_units: phasesJson(),
    targets: Object.fromEntries(targets.map((t) => [t.name, t.pass === undefined ? "skip" : t.pass ? "pass" : "miss"])),
  };
  const files = await writeResults("core", startedAt, result);
  section("written");
  for (const f of files) log(`  ${f}`);
}

// ---------------------------------------------------------------------------------------------
// Dispatch

type Suite = "core" | "cluster" | "nodes" | "resilience" | "scale" | "peers" | "storage" | "backup" | "observability" | "security" | "compression" | "txn";

function suiteOptions(cli: CliOptions, suite: Suite): Options {
  const core = suite === "core";
  return {
    limit: cli.limit ?? (core ? 60_000 : 20_000),
    queries: cli.queries ?? (core ? 1_000 : 300),
    shards: cli.shards,
    quantization: cli.quantization,
    batch: cli.batch ?? (core ? 1_000 : 500),
    concurrency: cli.concurrency,
    nodeMode: cli.nodeMode ?? (core ? "inproc" : "child"),
    raw: cli.raw,
  };
}

async function main(): Promise<void> {
  const cli = program.parse(process.argv).opts<CliOptions>();
  const suites: Suite[] = cli.suite === "all" ? ["core", "cluster", "nodes", "resilience", "peers", "storage", "backup", "observability", "security", "scale"] : [cli.suite];
  for (const suite of suites) {
    const opts = suiteOptions(cli, suite);
    try {
      if (suite === "core") await runCore(opts);
      else if (suite === "cluster") await runCluster({ ...opts, fanoutShards: cli.fanoutShards });
      else if (suite === "nodes") await runNodes({ ...opts, nodes: cli.nodes });
      else if (suite === "peers") {
        const { result, files } = await runPeers({ ...peersDefaults, dataset: cli.dataset, limit: cli.limit, queries: cli.queries ?? peersDefaults.queries });
        printPeersSummary(result);
        for (const f of files) log(`  ${f}`);
      } else if (suite === "scale") {
        const scale = { n: cli.scaleN, burstN: Math.min(cli.burstN, cli.scaleN), shards: cli.shards === 1 ? 4 : cli.shards, queries: cli.queries ?? 1_000 };
        await runScale({ ...scale, quantization: cli.quantization, expansionSearch: cli.expansionSearch, raw: cli.raw });
      } else if (suite === "storage") await runStorage({ n: cli.storageN, rounds: cli.storageRounds });
      else if (suite === "backup") await runBackupBench({ n: cli.backupN, shards: cli.shards === 1 ? 4 : cli.shards });
      else if (suite === "observability") await runObservability({ limit: cli.limit ?? 20_000, queries: cli.queries ?? 2_000, rounds: cli.rounds });
      else if (suite === "compression") await runCompression({ limit: cli.limit ?? 20_000 });
      else if (suite === "security") await runSecurity({ limit: cli.limit ?? 20_000, queries: cli.queries ?? 2_000, rounds: cli.rounds });
      else if (suite === "txn") await runTxn({ limit: cli.limit ?? 20_000, ops: cli.txnOps, concurrency: cli.txnConcurrency, rounds: cli.rounds });
      else await runResilience({ failoverN: cli.failoverN, rebalanceN: cli.rebalanceN, rounds: cli.rounds, batch: cli.batch ?? 500, concurrency: cli.concurrency });
    } finally {
      await runCleanups();
      resetCleanups();
    }
    if (process.exitCode) return;
  }
}

try {
  await main();
} catch (err) {
  process.stderr.write(`\nbench failed: ${(err as Error)?.stack ?? err}\n`);
  process.exitCode = 1;
} finally {
  await runCleanups();
}
// Lingering handles (NATS reconnect timers, workers) must not keep a finished benchmark alive.
process.exit(process.exitCode ?? 0);
