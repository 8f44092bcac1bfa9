/**
 * `npm run bench -- --suite nodes`: throughput vs nodes (1, 2, 3 by default) on fashion-mnist,
 * and the per-node cost model that predicts a larger cluster.
 *
 * For each node count n: n nats-servers (one alone for n = 1, a routed cluster otherwise) and
 * n `jade start` child processes on loopback, a collection of n shards (one per node),
 * 1 replica, the log kept on min(n, 3) servers; N points upserted (4 requests in flight),
 * timed until every point is in a graph; then Q searches 8 in flight. CPU time of the
 * nodes and nats-servers (not the bench client) per vector and per query, from /proc.
 *
 * On this machine every node shares the same 2 cores, so throughput cannot grow with n: what
 * the runs measure is what a vector and a query cost as the cluster grows. The model:
 *   write CPU per vector  w(n): one shard applies it, the log keeps min(n, 3) copies, so
 *                               w is flat from 3 nodes on: W(n) = n × cores ÷ w(3);
 *   search CPU per query  q(n) = a + b × (shards − 1): a query visits every shard, b the
 *                               cost of one more (remote) shard, fitted over the runs;
 *                               Q(n) = n × cores ÷ q(n), with shards = n, or a fixed shard
 *                               count and more replicas (then q stays flat and Q is linear).
 *
 * Writes bench/results/<timestamp>-nodes.json, latest-nodes.json and nodes.md with a plot.
 */
import os from "node:os";
import { Harness } from "../test/support/harness.ts";
import {
  fmt,
  groundTruth,
  index,
  ingest,
  kv,
  loadAverage,
  loadDataset,
  log,
  machineInfo,
  onCleanup,
  recallOf,
  resultsDir,
  round,
  searchApi,
  searchBodies,
  searchConcurrency,
  section,
  snapshot,
  startLocalCluster,
  table,
  waitServing,
  warmupQueries,
  writeResults,
  type Quantization,
} from "./common.ts";
import { cpuDelta, cpuMsOf, cpuSnapshot } from "./cpu.ts";
import type { VectorSet } from "./datasets.ts";
import { barChart, lineChart, writeReport } from "./plot.ts";

export interface NodesOptions {
  limit: number;
  queries: number;
  nodes: number[];
  quantization: Quantization;
  batch: number;
  concurrency: number;
}

/** JetStream keeps a shard log on at most this many servers (the CLI's default stream replicas). */
const streamReplicasMax = 3;
/** High, so a loaded 2-core box never declares a node dead mid-run. */
const nodeDeadAfterMs = 30_000;
/** The cluster size the model predicts. */
const predictNodes = 10;

interface NodesRow {
  nodes: number;
  shards: number;
  stream_replicas: number;
  acked_vps: number;
  searchable_vps: number;
  indexed_vps: number;
  qps_c8: number;
  p50_ms_c8: number;
  p95_ms_c8: number;
  recall_at_10: number;
  /** CPU of the nodes and nats-servers, first request → every point in a graph. */
  cpu_ms_per_vector: number;
  /** CPU of the nodes and nats-servers during the c=8 searches. */
  cpu_ms_per_query: number;
  /** The same, split: the jade nodes' share and the nats-servers' share. */
  cpu_ms_per_query_split: { nodes: number; nats: number };
}

/** CPU of the nodes and nats-servers (not this bench process). */
const serverPrefixes = ["node_", "nats"] as const;

async function runOne(n: number, opts: NodesOptions, train: VectorSet, bodies: Uint8Array[], truth: bigint[][]): Promise<NodesRow> {
  const streamReplicas = Math.min(n, streamReplicasMax);
  section(`${n} node${n > 1 ? "s" : ""}: ${n} nats-server${n > 1 ? "s" : ""}, ${n} shard${n > 1 ? "s" : ""}, log on ${streamReplicas}`);
  const harness = new Harness();
  onCleanup(() => harness.close());
  try {
    const { pids, client, closeClient } = await startLocalCluster(harness, n, { streamReplicas, nodeDeadAfterMs, clientName: "jade-bench-nodes" });
    const collection = `nodes_${n}`;
    await client.createCollection({ name: collection, dimension: train.dimension, metric: "l2", shards: n, index: { ...index, quantization: opts.quantization }, snapshot });
    await waitServing(client, collection);
    const writeCpu = cpuSnapshot(pids);
    const ing = await ingest(client, train, { collection, batch: opts.batch, concurrency: opts.concurrency, consistency: "log", label: `n=${n} ` });
    const cpuPerVector = cpuMsOf(cpuDelta(writeCpu, cpuSnapshot(pids)), ...serverPrefixes) / train.count;
    await searchApi(client, collection, bodies.slice(0, warmupQueries), 1, `n=${n} warm-up`);
    const readCpu = cpuSnapshot(pids);
    const run = await searchApi(client, collection, bodies, searchConcurrency, `n=${n} c=${searchConcurrency}`);
    const readDelta = cpuDelta(readCpu, cpuSnapshot(pids));
    const cpuPerQuery = cpuMsOf(readDelta, ...serverPrefixes) / bodies.length;
    const row: NodesRow = {
      nodes: n,
      shards: n,
      stream_replicas: streamReplicas,
      acked_vps: round(ing.ackedVps, 1),
      searchable_vps: round(ing.ingestVps, 1),
      indexed_vps: round(ing.indexedVps, 1),
      qps_c8: round(run.qps, 1),
      p50_ms_c8: round(run.latencies.p50, 3),
      p95_ms_c8: round(run.latencies.p95, 3),
      recall_at_10: round(recallOf(run.found, truth), 4),
      cpu_ms_per_vector: round(cpuPerVector, 3),
      cpu_ms_per_query: round(cpuPerQuery, 3),
      cpu_ms_per_query_split: { nodes: round(cpuMsOf(readDelta, "node_") / bodies.length, 3), nats: round(cpuMsOf(readDelta, "nats") / bodies.length, 3) },
    };
    kv("ingest", `acked ${fmt(row.acked_vps)} vec/s, searchable ${fmt(row.searchable_vps)}, indexed ${fmt(row.indexed_vps)}; CPU ${fmt(row.cpu_ms_per_vector, 3)} ms/vector`);
    kv(`search c=${searchConcurrency}`, `${fmt(row.qps_c8)} QPS, p50 ${fmt(row.p50_ms_c8, 2)} p95 ${fmt(row.p95_ms_c8, 2)} ms, recall ${fmt(row.recall_at_10, 4)}; CPU ${fmt(row.cpu_ms_per_query, 3)} ms/query (nodes ${fmt(row.cpu_ms_per_query_split.nodes, 3)}, nats ${fmt(row.cpu_ms_per_query_split.nats, 3)})`);
    await closeClient();
    return row;
  } finally {
    await harness.close();
  }
}

/** Least-squares line through (x, y): y = a + b x. */
function fitLine(points: readonly { x: number; y: number }[]): { a: number; b: number } {
  const n = points.length;
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  const sxx = points.reduce((s, p) => s + (p.x - mx) ** 2, 0);
  const b = sxx === 0 ? 0 : points.reduce((s, p) => s + (p.x - mx) * (p.y - my), 0) / sxx;
  return { a: my - b * mx, b };
}

/** The cost model of the header, from the measured rows; cores = this machine's per node. */
function costModel(rows: readonly NodesRow[], cores: number) {
  const write = rows.reduce((best, r) => (r.stream_replicas > best.stream_replicas || (r.stream_replicas === best.stream_replicas && r.nodes > best.nodes) ? r : best));
  const query = fitLine(rows.map((r) => ({ x: r.shards - 1, y: r.cpu_ms_per_query })));
  const qAt = (shards: number) => query.a + query.b * (shards - 1);
  return {
    cores_per_node: cores,
    write_cpu_ms_per_vector: write.cpu_ms_per_vector,
    write_cpu_from_nodes: write.nodes,
    query_cpu_ms_first_shard: round(query.a, 3),
    query_cpu_ms_per_extra_shard: round(query.b, 3),
    predicted: {
      nodes: predictNodes,
      write_vps: round((predictNodes * cores * 1000) / write.cpu_ms_per_vector, 0),
      qps_one_shard_per_node: round((predictNodes * cores * 1000) / qAt(predictNodes), 0),
      qps_three_shards_replicated: round((predictNodes * cores * 1000) / qAt(3), 0),
    },
  };
}

export async function runNodes(opts: NodesOptions): Promise<void> {
  const startedAt = new Date();
  const loadAtStart = loadAverage();
  section("JadeVectorDB node scaling");
  const { train, queries } = await loadDataset(opts.limit, opts.queries);
  kv("dataset", `fashion-mnist ${fmt(train.count)} × ${train.dimension}, ${fmt(queries.count)} queries, k 10`);
  kv("machine", `${os.cpus().length} cores shared by every node and nats-server of a run`);
  const truth = groundTruth(train, queries);
  const bodies = searchBodies(queries);
  const rows: NodesRow[] = [];
  for (const n of opts.nodes) rows.push(await runOne(n, opts, train, bodies, truth));

  const cores = os.availableParallelism();
  const model = costModel(rows, cores);
  section("throughput and cost per operation vs nodes");
  table(
    ["nodes", "shards", "log copies", "acked vec/s", "indexed vec/s", "CPU ms/vector", `QPS c=${searchConcurrency}`, "p95 ms", "CPU ms/query", "recall@10"],
    rows.map((r) => [String(r.nodes), String(r.shards), String(r.stream_replicas), fmt(r.acked_vps), fmt(r.indexed_vps), fmt(r.cpu_ms_per_vector, 3), fmt(r.qps_c8), fmt(r.p95_ms_c8, 2), fmt(r.cpu_ms_per_query, 3), fmt(r.recall_at_10, 4)]),
  );
  const p = model.predicted;
  log(`  model: a vector costs ${fmt(model.write_cpu_ms_per_vector, 3)} ms of CPU (from ${model.write_cpu_from_nodes} nodes on), a query ${fmt(model.query_cpu_ms_first_shard, 3)} ms + ${fmt(model.query_cpu_ms_per_extra_shard, 3)} ms per extra shard`);
  log(`  predicted at ${p.nodes} nodes × ${cores} cores: writes ${fmt(p.write_vps)} vec/s; searches ${fmt(p.qps_one_shard_per_node)} QPS with ${p.nodes} shards, ${fmt(p.qps_three_shards_replicated)} QPS with 3 shards and replicas on every node`);

  const result = {
    suite: "nodes",
    started_at: startedAt.toISOString(),
    finished_at: new Date().toISOString(),
    dataset: "fashion-mnist-784-euclidean",
    n: train.count,
    queries: queries.count,
    quantization: opts.quantization,
    index,
    batch: opts.batch,
    concurrency: opts.concurrency,
    machine: machineInfo(),
    load_average: { at_start: loadAtStart, at_end: loadAverage() },
    rows,
    model,
  };
  const files = await writeResults("nodes", startedAt, result);
  files.push(...(await writeReport(resultsDir, "nodes", await report(rows, model, startedAt))));
  section("written");
  for (const f of files) log(`  ${f}`);
}

async function report(rows: readonly NodesRow[], model: ReturnType<typeof costModel>, startedAt: Date) {
  const p = model.predicted;
  const throughput = rows.flatMap((r) => [
    { nodes: r.nodes, metric: "indexed vec/s", value: r.indexed_vps },
    { nodes: r.nodes, metric: `QPS c=${searchConcurrency}`, value: r.qps_c8 },
  ]);
  const cost = rows.flatMap((r) => [
    { nodes: String(r.nodes), metric: "CPU ms per vector", value: r.cpu_ms_per_vector },
    { nodes: String(r.nodes), metric: "CPU ms per query", value: r.cpu_ms_per_query },
  ]);
  const header = "| nodes | shards | log copies | acked vec/s | indexed vec/s | CPU ms/vector | QPS c=8 | p95 ms | CPU ms/query | recall@10 |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |";
  const lines = rows.map((r) => `| ${r.nodes} | ${r.shards} | ${r.stream_replicas} | ${fmt(r.acked_vps)} | ${fmt(r.indexed_vps)} | ${fmt(r.cpu_ms_per_vector, 3)} | ${fmt(r.qps_c8)} | ${fmt(r.p95_ms_c8, 2)} | ${fmt(r.cpu_ms_per_query, 3)} | ${fmt(r.recall_at_10, 4)} |`);
  return {
    title: "Node scaling",
    sections: [
      {
        heading: "Measured",
        markdown: [
          `Run ${startedAt.toISOString()}: fashion-mnist, n shards over n nodes (1 replica), every node and nats-server a process on the same ${model.cores_per_node} cores. Throughput cannot grow with nodes here; the cost of an operation can be read as the cluster grows.`,
          "",
          header,
          ...lines,
        ].join("\n"),
        charts: [
          { file: "nodes-throughput.svg", title: "Throughput vs nodes (one 2-core machine)", svg: await lineChart({ title: "Throughput vs nodes, all on one 2-core machine", x: { field: "nodes", title: "nodes" }, y: { field: "value", title: "per second" }, series: "metric", data: throughput }) },
          { file: "nodes-cost.svg", title: "CPU per operation vs nodes", svg: await barChart({ title: "CPU per operation vs nodes (nodes + nats-servers)", category: { field: "nodes", title: "nodes" }, value: { field: "value", title: "CPU ms" }, group: "metric", data: cost }) },
        ],
      },
      {
        heading: `Model: ${p.nodes} nodes of ${model.cores_per_node} cores`,
        markdown: [
          `- A vector costs **${fmt(model.write_cpu_ms_per_vector, 3)} ms** of CPU in the cluster (measured at ${model.write_cpu_from_nodes} nodes, where the log's copies stop growing): writes scale with nodes, **${fmt(p.write_vps)} vec/s** at ${p.nodes} nodes.`,
          `- A query costs **${fmt(model.query_cpu_ms_first_shard, 3)} ms + ${fmt(model.query_cpu_ms_per_extra_shard, 3)} ms per extra shard** (least squares over the runs). With one shard per node a query visits all ${p.nodes}: **${fmt(p.qps_one_shard_per_node)} QPS**; with 3 shards and replicas spread over every node a query's cost stays flat and QPS grows with nodes: **${fmt(p.qps_three_shards_replicated)} QPS**.`,
          "- Assumes the network is not the bottleneck (loopback here) and cores are not shared with anything else.",
        ].join("\n"),
      },
    ],
  };
}
