/**
 * `npm run bench -- --suite txn`: what transactions cost (issue 14, decision 013), on a 3-node
 * cluster (3 nats-servers, 3 `jade start` children, RF 1) with Fashion-MNIST vectors:
 *   - transactions of 10 points spread over exactly 2, 4 and 8 shards, `--txn-concurrency` in
 *     flight: transactions/s and latency, and the same 10 points sent as one plain upsert,
 *     alternating the two in rounds (AB BA…) so the VM's drift falls on both;
 *   - contention, on 4 shards: committed transactions/s, conflicts and latency as the share of
 *     transactions that also write one hot id grows (they wait for its lock, in turn, and get
 *     `conflict` when the wait passes their 2 s timeout);
 *   - raw usearch adding the same vectors 10 at a time in this process, for scale.
 * Writes bench/results/<timestamp>-txn.json and latest-txn.json.
 */
import os from "node:os";
import { Index, MetricKind, ScalarKind } from "usearch";
import type { JadeClient } from "../src/client/client.ts";
import { resolveSharding } from "../src/runtime/sharding/index.ts";
import type { CollectionConfig } from "../src/runtime/schemas.ts";
import { Harness } from "../test/support/harness.ts";
import { fmt, index, kv, latencyStats, loadAverage, loadDataset, log, machineInfo, onCleanup, round, section, startLocalCluster, table, waitServing, writeResults } from "./common.ts";
import type { VectorSet } from "./datasets.ts";

export interface TxnBenchOptions {
  limit: number;
  /** Operations per measured run. */
  ops: number;
  concurrency: number;
  rounds: number;
}

const pointsPerTxn = 10;
const shardCounts = [2, 4, 8] as const;
/** One hot id: every two transactions in flight that write it contend (with several, those in flight at once drew different ones, and never met). */
const hotIds = 1;
const hotShares = [0, 0.1, 0.25, 0.5, 1] as const;

interface Run {
  opsPerSec: number;
  p50Ms: number;
  p95Ms: number;
  conflicts: number;
}

type Op = (n: number) => Promise<"ok" | "conflict">;

/** `ops` operations, `concurrency` in flight; conflicts are counted, any other error ends the run. */
async function measure(ops: number, concurrency: number, op: Op): Promise<Run> {
  const latencies: number[] = [];
  let next = 0;
  let conflicts = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let n = next++; n < ops; n = next++) {
        const t = performance.now();
        if ((await op(n)) === "conflict") conflicts++;
        else latencies.push(performance.now() - t);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const stats = latencyStats(latencies);
  return { opsPerSec: (ops - conflicts) / seconds, p50Ms: stats.p50, p95Ms: stats.p95, conflicts };
}

/** Ids for operation n of a run: 10 of them, over exactly `shards` shards of the collection (as even as 10 allows). */
function idsOver(config: CollectionConfig, shards: number, prefix: string): string[] {
  const sharding = resolveSharding(config);
  const wanted = Array.from({ length: shards }, (_, s) => Math.floor(pointsPerTxn / shards) + (s < pointsPerTxn % shards ? 1 : 0));
  const ids: string[] = [];
  for (let i = 0; ids.length < pointsPerTxn; i++) {
    const id = `${prefix}-${i}`;
    const shard = sharding.shardOf(id, [], 0);
    if (shard < shards && wanted[shard]! > 0) {
      wanted[shard]!--;
      ids.push(id);
    }
  }
  return ids;
}

function pointsOf(train: VectorSet, ids: string[], n: number) {
  return ids.map((id, j) => {
    const row = (n * pointsPerTxn + j) % train.count;
    return { id, vector: Array.from(train.data.subarray(row * train.dimension, (row + 1) * train.dimension)), payload: { n } };
  });
}

const isConflict = (err: unknown) => (err as { code?: string }).code === "conflict";

async function sideBySide(client: JadeClient, train: VectorSet, opts: TxnBenchOptions) {
  const rows: Record<string, unknown>[] = [];
  for (const shards of shardCounts) {
    const name = `txn_s${shards}`;
    const config = await client.createCollection({ name, dimension: train.dimension, metric: "l2", shards: 8, replicas: 1, index });
    await waitServing(client, name);
    const runs: Record<"transaction" | "upsert", Run[]> = { transaction: [], upsert: [] };
    for (let r = 0; r < opts.rounds; r++) {
      const order = r % 2 === 0 ? (["transaction", "upsert"] as const) : (["upsert", "transaction"] as const);
      for (const kind of order) {
        const op: Op = async (n) => {
          const points = pointsOf(train, idsOver(config, shards, `${kind[0]}${r}-${n}`), n);
          if (kind === "upsert") await client.upsert(name, { points });
          else await client.transaction(name, { ops: [{ op: "upsert", points }] });
          return "ok";
        };
        runs[kind].push(await measure(opts.ops, opts.concurrency, op));
      }
    }
    const mean = (rs: Run[], key: keyof Run) => rs.reduce((a, r) => a + r[key], 0) / rs.length;
    const row = {
      shards,
      txn_per_s: round(mean(runs.transaction, "opsPerSec"), 1),
      txn_p50_ms: round(mean(runs.transaction, "p50Ms"), 2),
      txn_p95_ms: round(mean(runs.transaction, "p95Ms"), 2),
      upsert_per_s: round(mean(runs.upsert, "opsPerSec"), 1),
      upsert_p50_ms: round(mean(runs.upsert, "p50Ms"), 2),
      upsert_p95_ms: round(mean(runs.upsert, "p95Ms"), 2),
    };
    log(`  ${shards} shards: transactions ${fmt(row.txn_per_s, 1)}/s p95 ${fmt(row.txn_p95_ms, 1)} ms · upserts ${fmt(row.upsert_per_s, 1)}/s p95 ${fmt(row.upsert_p95_ms, 1)} ms`);
    rows.push(row);
  }
  return rows;
}

/** On 4 shards: a share of the transactions also writes one of `hotIds` ids, so those contend. */
async function contention(client: JadeClient, train: VectorSet, opts: TxnBenchOptions) {
  const name = "txn_hot";
  const config = await client.createCollection({ name, dimension: train.dimension, metric: "l2", shards: 8, replicas: 1, index });
  await waitServing(client, name);
  const rows: Record<string, unknown>[] = [];
  for (const share of hotShares) {
    const op: Op = async (n) => {
      const ids = idsOver(config, 4, `h${share}-${n}`);
      // Every 1/share-th transaction (spread evenly) swaps one of its ids for a hot one.
      const hot = Math.floor((n + 1) * share) > Math.floor(n * share);
      if (hot) ids[0] = `hot-${n % hotIds}`;
      try {
        await client.transaction(name, { ops: [{ op: "upsert", points: pointsOf(train, ids, n) }], timeoutMs: 2_000 });
        return "ok";
      } catch (err) {
        if (isConflict(err)) return "conflict";
        throw err;
      }
    };
    const run = await measure(opts.ops, opts.concurrency, op);
    const row = { hot_share: share, committed_per_s: round(run.opsPerSec, 1), conflicts: run.conflicts, conflict_share: round(run.conflicts / opts.ops, 3), p95_ms: round(run.p95Ms, 2) };
    log(`  hot share ${share}: ${fmt(row.committed_per_s, 1)} committed/s, ${row.conflicts} conflicts of ${opts.ops}, p95 ${fmt(row.p95_ms, 1)} ms`);
    rows.push(row);
  }
  return rows;
}

/** Raw usearch adding the same vectors 10 at a time (one thread): what an index insert costs without a database around it. */
function rawAdds(train: VectorSet, ops: number): { adds_per_s: number; points_per_s: number } {
  const raw = new Index({ dimensions: train.dimension, metric: MetricKind.L2sq, quantization: ScalarKind.F32, connectivity: index.connectivity, expansion_add: index.expansionAdd, expansion_search: index.expansionSearch, multi: false });
  const started = performance.now();
  for (let n = 0; n < ops; n++) {
    const keys = new BigUint64Array(pointsPerTxn).map((_, j) => BigInt(n * pointsPerTxn + j));
    const from = ((n * pointsPerTxn) % (train.count - pointsPerTxn)) * train.dimension;
    raw.add(keys, train.data.slice(from, from + pointsPerTxn * train.dimension), 1);
  }
  const seconds = (performance.now() - started) / 1000;
  return { adds_per_s: round(ops / seconds, 1), points_per_s: round((ops * pointsPerTxn) / seconds, 1) };
}

export async function runTxn(opts: TxnBenchOptions): Promise<void> {
  const startedAt = new Date();
  section("JadeVectorDB transactions benchmark");
  kv("started_at", startedAt.toISOString());
  kv("machine", `${os.cpus().length} cpus, load average ${loadAverage().join(" ")} at start`);
  const { train } = await loadDataset(opts.limit, 1);
  kv("data", `fashion-mnist ${fmt(train.count)} × ${train.dimension}; ${pointsPerTxn} points per operation, ${opts.ops} operations per run, ${opts.concurrency} in flight, ${opts.rounds} rounds`);

  const harness = new Harness();
  onCleanup(() => harness.close());
  const cluster = await startLocalCluster(harness, 3, { streamReplicas: 1, nodeDeadAfterMs: 10_000, clientName: "jade-bench-txn" });
  kv("cluster", `3 nats-servers, 3 nodes (child processes); collections of 8 shards, RF 1, consistency log`);

  section("transactions beside plain upserts of the same 10 points");
  const sides = await sideBySide(cluster.client, train, opts);
  table(
    ["shards", "txn/s", "txn p50 ms", "txn p95 ms", "upsert/s", "upsert p50 ms", "upsert p95 ms"],
    sides.map((r) => [r.shards, r.txn_per_s, r.txn_p50_ms, r.txn_p95_ms, r.upsert_per_s, r.upsert_p50_ms, r.upsert_p95_ms].map((v) => String(v))),
  );

  section(`contention: 4-shard transactions, a share of them also writing ${hotIds === 1 ? "one hot id" : `one of ${hotIds} hot ids`}`);
  const hot = await contention(cluster.client, train, opts);

  section("raw usearch: the same vectors added 10 at a time, one thread, this process");
  const raw = rawAdds(train, opts.ops * 4);
  kv("raw usearch", `${fmt(raw.adds_per_s)} adds/s of 10 points (${fmt(raw.points_per_s)} points/s)`);

  const files = await writeResults("txn", startedAt, { started_at: startedAt.toISOString(), machine: machineInfo(), options: opts, side_by_side: sides, contention: hot, raw_usearch: raw });
  kv("results", files.join(", "));
  await cluster.closeClient();
}
