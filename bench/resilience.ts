/**
 * `npm run bench -- --suite resilience`: failover time and rebalancing impact on a 3-node cluster
 * (3 clustered nats-servers + 3 `jade start` child processes with DEFAULT node settings — in
 * particular the default --node-dead-after-ms of 8 s; only --stream-replicas 3 as docs/cluster.md
 * recommends on a 3-server NATS cluster).
 *
 * 1. Failover: collections fo_rf2 (3 shards, RF 2) and fo_rf1 (3 shards, RF 1), each with the
 *    first N Fashion-MNIST vectors (default 2,000, consistency all). A search loop fires a few
 *    searches per 100 ms on each (timeoutMs 2000 in the request). A node that is not the
 *    coordinator and holds replicas of both is killed with SIGKILL; measured from the kill:
 *      - fo_rf2: whether any search became incomplete (partial or error), and the time until
 *        searches are complete again (send time of the first complete search after the last
 *        incomplete one; 0 if none was incomplete);
 *      - fo_rf1: the same;
 *      - RF restored: clusterStatus shows every shard of both collections with its full RF, every
 *        replica serving with lag 0 and on a live node.
 *    Then the node is restarted (same --node-id and data dir) and the cluster settles (3 live
 *    nodes, both collections at full RF, no active migration). Repeated --rounds times (3):
 *    median and max, PASS/MISS against 3 s (RF 2) and 10 s (RF 1).
 * 2. Rebalancing impact: collection rb (4 shards, RF 1, default 10,000 vectors). Search p95 and QPS
 *    at concurrency 4 for ~10 s before; then every shard's replica is moved to another node
 *    (client.admin("move")) and the same is measured while at least one migration is active
 *    (client.admin("migrations") polled every 200 ms; only searches that started and ended inside
 *    an active window count). Degradation % of p95 and QPS, PASS/MISS against 10 %.
 *
 * Prints tables and writes bench/results/<timestamp>-resilience.json and latest-resilience.json.
 * Every child process and temp dir is removed on success, error and SIGINT.
 */
import os from "node:os";
import { JadeClient } from "../src/client/client.ts";
import type { SearchResult } from "../src/runtime/schemas.ts";
import type { ClusterStatus } from "../src/runtime/status.ts";
import { Encoding } from "../src/runtime/encoding.ts";
import { subjects } from "../src/runtime/subjects.ts";
import { Harness, waitFor, type ChildNode } from "../test/support/harness.ts";
import {
  contention,
  fmt,
  index,
  ingest,
  kv,
  latencyStats,
  loadAverage,
  loadDataset,
  log,
  machineInfo,
  onCleanup,
  round,
  searchBodies as makeSearchBodies,
  section,
  snapshot,
  table,
  waitServing,
  writeResults,
  type Contention,
} from "./common.ts";
import type { VectorSet } from "./datasets.ts";
import { delay } from "../src/runtime/async.ts";

export interface ResilienceOptions {
  /** Vectors per failover collection. */
  failoverN: number;
  /** Vectors of the rebalance collection. */
  rebalanceN: number;
  rounds: number;
  batch: number;
  concurrency: number;
}

const nodeIds = ["n1", "n2", "n3"] as const;
const searchTimeoutMs = 2_000;
/** Searches fired per collection every tick of the failover loop. */
const searchesPerTick = 2;
const tickMs = 100;
const failoverTargetRf2Ms = 3_000;
const failoverTargetRf1Ms = 10_000;
const rebalanceTargetPct = 10;
const rebalanceConcurrency = 4;
const rebalanceWindowMs = 10_000;
const activeStates = new Set(["planned", "preparing", "catchingUp", "paused", "cutover", "draining", "rollingBack"]);

interface Cluster {
  harness: Harness;
  urls: string[];
  client: JadeClient;
  nodes: Map<string, ChildNode>;
  dataDirs: Map<string, string>;
  pids: () => Record<string, number | undefined>;
  start(id: string): Promise<void>;
}

async function startCluster(): Promise<Cluster> {
  const harness = new Harness();
  onCleanup(() => harness.close());
  const servers = await harness.natsCluster(3);
  const urls = servers.map((s) => s.url);
  const nodes = new Map<string, ChildNode>();
  const dataDirs = new Map<string, string>();
  const start = async (id: string) => {
    const i = nodeIds.indexOf(id as (typeof nodeIds)[number]);
    const order = [...urls.slice(i), ...urls.slice(0, i)].join(",");
    let data = dataDirs.get(id);
    if (data === undefined) {
      data = await harness.tempDir(`jade-res-${id}-`);
      dataDirs.set(id, data);
    }
    // Default node settings: no --node-dead-after-ms (8 s), no --selection, no --workers.
    nodes.set(id, await harness.spawnJade(["start", "--nats", order, "--node-id", id, "--data", data, "--stream-replicas", "3"]));
  };
  await Promise.all(nodeIds.map(start));
  const client = await JadeClient.connect({ servers: urls, name: "jade-bench-resilience", timeoutMs: 60_000 });
  onCleanup(() => client.close());
  const pids = () => {
    const p: Record<string, number | undefined> = { bench: process.pid };
    servers.forEach((s, i) => (p[`nats${i + 1}`] = s.process.pid));
    for (const [id, n] of nodes) if (n.process.exitCode === null && n.process.signalCode === null) p[`node_${id}`] = n.process.pid;
    return p;
  };
  kv("nats-servers", servers.map((s) => `${s.url} (pid ${s.process.pid})`).join(", "));
  kv("nodes", [...nodes].map(([id, n]) => `${id} pid ${n.process.pid}`).join(", ") + " (defaults; --stream-replicas 3)");
  await waitFor(
    async () => {
      const status = await client.clusterStatus();
      return status.coordinator !== null && status.nodes.filter((n) => n.live).length === 3;
    },
    { what: "3 live nodes and a coordinator", timeoutMs: 60_000 },
  );
  return { harness, urls, client, nodes, dataDirs, pids, start };
}

/** Every shard has its full RF, all replicas serving with lag 0 on live nodes. */
function fullRf(status: ClusterStatus, collection: string): boolean {
  const c = status.collections.find((x) => x.name === collection);
  if (!c) return false;
  const live = new Set(status.nodes.filter((n) => n.live).map((n) => n.id));
  return c.shards.every((s) => s.replicas.length >= Math.max(1, c.replicas) && s.replicas.every((r) => r.state === "serving" && r.lag === 0 && live.has(r.node)));
}

interface MigrationInfo {
  id: string;
  state: string;
  transfer: { collection: string; shard: number; from: string | null; to: string; reason: string; createdAt: string };
}

async function migrations(client: JadeClient): Promise<MigrationInfo[]> {
  return (await client.admin<{ migrations: MigrationInfo[] }>("migrations")).migrations;
}

/** Active (non-terminal) migrations of these collections. */
async function activeMigrations(client: JadeClient, collections: readonly string[]): Promise<number> {
  return (await migrations(client)).filter((m) => activeStates.has(m.state) && collections.includes(m.transfer.collection)).length;
}

function placementLine(status: ClusterStatus, collection: string): string {
  const c = status.collections.find((x) => x.name === collection);
  return c?.shards.map((s) => `${s.shard}→${s.replicas.map((r) => r.node).join("+")}`).join(" ") ?? "?";
}

/**
 * 3 live nodes, full RF, no active migration of these collections, continuously for `stableMs`
 * (a restarted node triggers a rebalance a moment after it joins: wait for that too).
 */
async function settle(cl: Cluster, collections: string[], timeoutMs = 120_000, stableMs = 5_000): Promise<void> {
  let since: number | undefined;
  await waitFor(
    async () => {
      const status = await cl.client.clusterStatus();
      const ok =
        status.coordinator !== null &&
        status.nodes.filter((n) => n.live).length === 3 &&
        collections.every((c) => fullRf(status, c)) &&
        (await activeMigrations(cl.client, collections)) === 0;
      if (!ok) {
        since = undefined;
        return false;
      }
      since ??= performance.now();
      return performance.now() - since >= stableMs;
    },
    { what: `the cluster to settle (3 live nodes, full RF of ${collections.join(", ")}, no migration, for ${stableMs / 1000} s)`, timeoutMs, intervalMs: 250 },
  );
}

// ---------------------------------------------------------------------------------------------
// 1. Failover

interface Sample {
  collection: string;
  sentMs: number;
  doneMs: number;
  complete: boolean;
  why?: string;
}

interface RoundResult {
  round: number;
  victim: string;
  coordinator: string;
  rf2_ever_incomplete: boolean;
  rf2_incomplete_searches: number;
  rf2_complete_again_ms: number | null;
  rf1_ever_incomplete: boolean;
  rf1_incomplete_searches: number;
  rf1_complete_again_ms: number | null;
  rf_restored_ms: number | null;
  searches_after_kill: number;
  max_search_ms_after_kill: number;
  incomplete_reasons: Record<string, number>;
  placement_before: Record<string, string>;
  placement_after: Record<string, string>;
}

/** Time from the kill until searches of `collection` were complete again (null: never, within the observation). */
function recovery(samples: Sample[], collection: string, killMs: number) {
  const after = samples.filter((s) => s.collection === collection && s.sentMs >= killMs).sort((a, b) => a.sentMs - b.sentMs);
  // Searches sent before the kill but answered after it count too (they saw the failure).
  const straddling = samples.filter((s) => s.collection === collection && s.sentMs < killMs && s.doneMs >= killMs && !s.complete);
  const incomplete = [...straddling, ...after.filter((s) => !s.complete)];
  if (incomplete.length === 0) return { ever: false, count: 0, ms: 0 as number | null };
  const lastBad = Math.max(...incomplete.map((s) => s.sentMs));
  const nextGood = after.find((s) => s.sentMs > lastBad && s.complete);
  return { ever: true, count: incomplete.length, ms: nextGood ? Math.max(0, nextGood.sentMs - killMs) : null };
}

async function failoverRound(cl: Cluster, round: number, bodies: Uint8Array[]): Promise<RoundResult> {
  const { client } = cl;
  const status = await client.clusterStatus();
  const coordinator = status.coordinator!;
  const holders = (c: string) => new Set(status.collections.find((x) => x.name === c)?.shards.flatMap((s) => s.replicas.map((r) => r.node)) ?? []);
  const rf2 = holders("fo_rf2");
  const rf1 = holders("fo_rf1");
  const victim = nodeIds.find((id) => id !== coordinator && rf2.has(id) && rf1.has(id));
  if (!victim) throw new Error(`no non-coordinator node holds replicas of both collections: ${placementLine(status, "fo_rf2")} / ${placementLine(status, "fo_rf1")}`);
  const placement_before = { fo_rf2: placementLine(status, "fo_rf2"), fo_rf1: placementLine(status, "fo_rf1") };
  log(`  round ${round}: coordinator ${coordinator}, killing ${victim}; fo_rf2 ${placement_before.fo_rf2}; fo_rf1 ${placement_before.fo_rf1}`);

  const samples: Sample[] = [];
  let running = true;
  let q = 0;
  const inflight = new Set<Promise<void>>();
  const fire = (collection: string) => {
    const body = bodies[q++ % bodies.length]!;
    const sentMs = performance.now();
    const p = client
      .requestRaw(subjects.collection(collection, "search"), body, searchTimeoutMs + 500, undefined, Encoding.Msgpack)
      .then((reply) => {
        const doneMs = performance.now();
        if (!reply.ok) samples.push({ collection, sentMs, doneMs, complete: false, why: reply.error.code });
        else {
          const r = reply.result as SearchResult;
          samples.push({ collection, sentMs, doneMs, complete: !r.partial, ...(r.partial ? { why: "partial" } : {}) });
        }
      })
      .finally(() => inflight.delete(p));
    inflight.add(p);
  };
  const loop = (async () => {
    while (running) {
      for (let i = 0; i < searchesPerTick; i++) {
        fire("fo_rf2");
        fire("fo_rf1");
      }
      await delay(tickMs);
    }
  })();

  await delay(1_500); // baseline searches before the kill
  const killMs = performance.now();
  await cl.nodes.get(victim)!.kill9();

  // Poll the status until the RF is restored.
  let rfRestoredMs: number | null = null;
  const deadline = killMs + 90_000;
  while (performance.now() < deadline) {
    const s = await client.clusterStatus().catch(() => undefined);
    if (s && s.nodes.find((n) => n.id === victim)?.live !== true && fullRf(s, "fo_rf2") && fullRf(s, "fo_rf1")) {
      rfRestoredMs = performance.now() - killMs;
      break;
    }
    await delay(200);
  }
  // Keep searching a little longer, so "complete again" is followed by complete searches.
  const rf1Now = () => recovery(samples, "fo_rf1", killMs);
  const rf2Now = () => recovery(samples, "fo_rf2", killMs);
  await waitFor(() => rf1Now().ms !== null && rf2Now().ms !== null, { timeoutMs: 30_000, intervalMs: 200 }).catch(() => undefined);
  await delay(2_000);
  running = false;
  await loop;
  await Promise.all([...inflight]);

  const r2 = rf2Now();
  const r1 = rf1Now();
  const after = samples.filter((s) => s.sentMs >= killMs);
  const reasons: Record<string, number> = {};
  for (const s of samples) if (!s.complete && s.doneMs >= killMs) reasons[`${s.collection}:${s.why}`] = (reasons[`${s.collection}:${s.why}`] ?? 0) + 1;
  const placement_after_status = await client.clusterStatus();
  const result: RoundResult = {
    round,
    victim,
    coordinator,
    rf2_ever_incomplete: r2.ever,
    rf2_incomplete_searches: r2.count,
    rf2_complete_again_ms: r2.ms === null ? null : Math.round(r2.ms),
    rf1_ever_incomplete: r1.ever,
    rf1_incomplete_searches: r1.count,
    rf1_complete_again_ms: r1.ms === null ? null : Math.round(r1.ms),
    rf_restored_ms: rfRestoredMs === null ? null : Math.round(rfRestoredMs),
    searches_after_kill: after.length,
    max_search_ms_after_kill: Math.round(Math.max(0, ...after.map((s) => s.doneMs - s.sentMs))),
    incomplete_reasons: reasons,
    placement_before,
    placement_after: { fo_rf2: placementLine(placement_after_status, "fo_rf2"), fo_rf1: placementLine(placement_after_status, "fo_rf1") },
  };
  const ms = (x: number | null) => (x === null ? "never" : `${fmt(x / 1000, 2)} s`);
  kv(`  fo_rf2`, `${r2.ever ? `${r2.count} incomplete, complete again after ${ms(result.rf2_complete_again_ms)}` : "never incomplete"}`);
  kv(`  fo_rf1`, `${r1.ever ? `${r1.count} incomplete, complete again after ${ms(result.rf1_complete_again_ms)}` : "never incomplete"}`);
  kv(`  RF restored`, `${ms(result.rf_restored_ms)}; placement now fo_rf2 ${result.placement_after.fo_rf2}, fo_rf1 ${result.placement_after.fo_rf1}`);
  kv(`  incomplete reasons`, JSON.stringify(reasons));

  // Restart the node (same id and data dir) and let the cluster settle.
  const restartAt = performance.now();
  await cl.start(victim);
  await settle(cl, ["fo_rf2", "fo_rf1"]);
  kv(`  restart + settle`, `${fmt((performance.now() - restartAt) / 1000, 1)} s incl. 5 s stable; placement fo_rf2 ${placementLine(await client.clusterStatus(), "fo_rf2")} (node ${victim} pid ${cl.nodes.get(victim)!.process.pid})`);
  return result;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

// ---------------------------------------------------------------------------------------------
// 2. Rebalancing impact

interface Window {
  p50_ms: number;
  p95_ms: number;
  p99_ms: number;
  qps: number;
  searches: number;
  seconds: number;
  errors: number;
  partial: number;
  cpu_busy: Contention;
}

/** Runs `concurrency` search loops until `stop()` is true; keeps searches for which `counts(start, end)`. */
async function searchWindow(
  client: JadeClient,
  collection: string,
  bodies: Uint8Array[],
  stop: () => boolean,
  counts: (start: number, end: number) => boolean,
  countedSeconds: () => number,
  pids: Record<string, number | undefined>,
): Promise<Window> {
  const subject = subjects.collection(collection, "search");
  const samples: number[] = [];
  let errors = 0;
  let partial = 0;
  let q = 0;
  const busy = contention(pids);
  const loop = async () => {
    while (!stop()) {
      const body = bodies[q++ % bodies.length]!;
      const t0 = performance.now();
      const reply = await client.requestRaw(subject, body, 30_000, undefined, Encoding.Msgpack);
      const t1 = performance.now();
      if (!counts(t0, t1)) continue;
      if (!reply.ok) errors++;
      else if ((reply.result as SearchResult).partial) partial++;
      samples.push(t1 - t0);
    }
  };
  await Promise.all(Array.from({ length: rebalanceConcurrency }, loop));
  const cpu = busy();
  const l = latencyStats(samples);
  const seconds = countedSeconds();
  return { p50_ms: round(l.p50, 2), p95_ms: round(l.p95, 2), p99_ms: round(l.p99, 2), qps: round(samples.length / seconds, 1), searches: samples.length, seconds: round(seconds, 2), errors, partial, cpu_busy: cpu };
}

async function rebalance(cl: Cluster, train: VectorSet, bodies: Uint8Array[], opts: ResilienceOptions) {
  const { client } = cl;
  const collection = "rb";
  const n = Math.min(opts.rebalanceN, train.count);
  section(`rebalancing impact: ${collection} (4 shards, RF 1, ${fmt(n)} vectors), search c=${rebalanceConcurrency}`);
  await client.createCollection({ name: collection, dimension: train.dimension, metric: "l2", shards: 4, replicas: 1, index, snapshot });
  await waitServing(client, collection);
  const sub: VectorSet = { count: n, dimension: train.dimension, data: train.data.subarray(0, n * train.dimension) };
  const ing = await ingest(client, sub, { collection, batch: opts.batch, concurrency: opts.concurrency, consistency: "log", waitAllReplicas: true, label: "rb " });
  kv("ingest", `${fmt(ing.ingestVps)} vec/s searchable`);
  await settle(cl, [collection]);
  // Warm-up.
  const warm = performance.now();
  await searchWindow(client, collection, bodies, () => performance.now() - warm > 1_000, () => true, () => 1, cl.pids());

  // Active windows, from polling the migrations. The poll runs through both windows, so its own
  // load (an admin request every 200 ms) weighs on "before" as much as on "during".
  let active = false;
  let activeSince = 0;
  let activeTotal = 0;
  const intervals: [number, number][] = [];
  let everActive = false;
  let polling = true;
  let activeSeen = 0;
  const poller = (async () => {
    while (polling) {
      const now = performance.now();
      const count = await activeMigrations(client, [collection]).catch(() => (active ? 1 : 0));
      const t = performance.now();
      if (count > 0 && !active) {
        active = true;
        everActive = true;
        activeSince = t;
      } else if (count === 0 && active) {
        active = false;
        intervals.push([activeSince, now]);
        activeTotal += now - activeSince;
      }
      activeSeen = Math.max(activeSeen, count);
      await delay(200);
    }
    if (active) {
      intervals.push([activeSince, performance.now()]);
      activeTotal += performance.now() - activeSince;
    }
  })();
  const t0 = performance.now();
  const before = await searchWindow(client, collection, bodies, () => performance.now() - t0 > rebalanceWindowMs, () => true, () => (performance.now() - t0) / 1000, cl.pids());
  kv("before", `p50 ${fmt(before.p50_ms, 2)} ms, p95 ${fmt(before.p95_ms, 2)} ms, QPS ${fmt(before.qps)} (${before.searches} searches)`);

  // Plan the moves: each shard's replica to the next node.
  const status = await client.clusterStatus();
  const placementBefore = placementLine(status, collection);
  const c = status.collections.find((x) => x.name === collection)!;
  const moves: { shard: number; from: string; to: string }[] = [];
  for (const s of c.shards) {
    const from = s.replicas[0]!.node;
    const to = nodeIds[(nodeIds.indexOf(from as (typeof nodeIds)[number]) + 1) % nodeIds.length]!;
    moves.push({ shard: s.shard, from, to });
  }
  const firstIssue = performance.now();
  for (const m of moves) await client.admin("move", { collection, ...m });
  kv("moves", moves.map((m) => `${m.shard}: ${m.from}→${m.to}`).join(", ") + ` (issued in ${fmt(performance.now() - firstIssue)} ms)`);
  const inActive = (a: number, b: number) => active && a >= activeSince && b >= a;
  const activeSoFar = () => activeTotal + (active ? performance.now() - activeSince : 0);
  const during = await searchWindow(
    client,
    collection,
    bodies,
    () => (everActive && !active) || activeSoFar() > rebalanceWindowMs || performance.now() - firstIssue > 120_000,
    inActive,
    () => Math.max(0.001, activeSoFar() / 1000),
    cl.pids(),
  );
  // Wait for the migrations to finish, timing them.
  await waitFor(async () => (await activeMigrations(client, [collection])) === 0, { timeoutMs: 180_000, intervalMs: 200 });
  polling = false;
  await poller;
  const migrationSeconds = (performance.now() - firstIssue) / 1000;
  await settle(cl, [collection]);
  const placementAfter = placementLine(await client.clusterStatus(), collection);
  kv("during", `p50 ${fmt(during.p50_ms, 2)} ms, p95 ${fmt(during.p95_ms, 2)} ms, QPS ${fmt(during.qps)} (${during.searches} searches in ${fmt(during.seconds, 1)} s with a migration active; errors ${during.errors}, partial ${during.partial})`);
  kv("migrations", `all done ${fmt(migrationSeconds, 1)} s after the first move; at most ${activeSeen} non-terminal (incl. planned) at once; placement ${placementBefore} → ${placementAfter}`);
  const p95Pct = (100 * (during.p95_ms - before.p95_ms)) / before.p95_ms;
  const qpsPct = (100 * (before.qps - during.qps)) / before.qps;
  await client.dropCollection(collection);
  return {
    collection,
    shards: 4,
    replicas: 1,
    n,
    concurrency: rebalanceConcurrency,
    moves,
    placement_before: placementBefore,
    placement_after: placementAfter,
    migrations_total_s: round(migrationSeconds, 2),
    max_active_migrations: activeSeen,
    before,
    during,
    p95_degradation_pct: round(p95Pct, 1),
    qps_degradation_pct: round(qpsPct, 1),
    p95_pass: p95Pct <= rebalanceTargetPct,
    qps_pass: qpsPct <= rebalanceTargetPct,
    measured_while_active_s: during.seconds,
  };
}

// ---------------------------------------------------------------------------------------------
// The suite

export async function runResilience(opts: ResilienceOptions): Promise<void> {
  const startedAt = new Date();
  const loadAtStart = loadAverage();
  section("JadeVectorDB resilience benchmark");
  kv("started_at", startedAt.toISOString());
  kv("machine", `${os.cpus().length} cpus (${os.cpus()[0]?.model ?? "?"}), ${fmt(os.totalmem() / 2 ** 30, 1)} GiB, node ${process.version}, ${os.platform()}-${os.arch()}`);
  kv("load average", `${loadAtStart.join(" ")} at start (other processes share these ${os.cpus().length} cores)`);
  const { train, queries } = await loadDataset(Math.max(opts.failoverN, opts.rebalanceN), 200);
  const bodies = makeSearchBodies(queries);
  const bodiesTimed = bodies.map((b) => Buffer.from(b.toString().replace(/}$/, `,"timeoutMs":${searchTimeoutMs}}`)));
  kv("dataset", `fashion-mnist 784-d, l2; failover collections ${fmt(opts.failoverN)} vectors, rebalance ${fmt(opts.rebalanceN)}; ${queries.count} test queries`);

  section("cluster: 3 nats-servers + 3 jade nodes (child processes, default node settings)");
  const cl = await startCluster();
  const { client } = cl;

  section(`failover: fo_rf2 (3 shards, RF 2) + fo_rf1 (3 shards, RF 1), ${fmt(opts.failoverN)} vectors each, consistency all`);
  const sub: VectorSet = { count: Math.min(opts.failoverN, train.count), dimension: train.dimension, data: train.data.subarray(0, opts.failoverN * train.dimension) };
  for (const [name, replicas] of [["fo_rf2", 2], ["fo_rf1", 1]] as const) {
    await client.createCollection({ name, dimension: train.dimension, metric: "l2", shards: 3, replicas, index, snapshot });
    await waitServing(client, name);
    const ing = await ingest(client, sub, { collection: name, batch: opts.batch, concurrency: opts.concurrency, consistency: "all", waitAllReplicas: true, label: `${name} ` });
    kv(name, `${fmt(ing.ingestVps)} vec/s searchable; placement ${placementLine(await client.clusterStatus(), name)}`);
  }
  await settle(cl, ["fo_rf2", "fo_rf1"]);
  kv("search loop", `${searchesPerTick} searches per ${tickMs} ms on each collection, k 10, timeoutMs ${searchTimeoutMs}`);
  const rounds: RoundResult[] = [];
  const failoverBusy = contention(cl.pids());
  for (let r = 1; r <= opts.rounds; r++) rounds.push(await failoverRound(cl, r, bodiesTimed));
  const failoverCpu = failoverBusy();
  await client.dropCollection("fo_rf2");
  await client.dropCollection("fo_rf1");

  const staleBefore = (await migrations(client)).filter((m) => activeStates.has(m.state));
  if (staleBefore.length > 0) kv("active migrations", `${staleBefore.length} still active after the fo_* collections were dropped: ${staleBefore.map((m) => `${m.id} ${m.state}`).join(", ")}`);
  const reb = await rebalance(cl, train, bodies, opts);
  const staleAfter = (await migrations(client)).filter((m) => activeStates.has(m.state));
  const loadAtEnd = loadAverage();

  // ----- tables -----
  const s = (x: number | null) => (x === null ? "never" : fmt(x / 1000, 2));
  section(`failover: kill -9 of a non-coordinator node (default --node-dead-after-ms 8000), ${opts.rounds} rounds`);
  table(
    ["round", "victim", "coord", "RF2 incomplete?", "RF2 complete s", "RF1 incomplete?", "RF1 complete s", "full RF s", "max search ms"],
    rounds.map((r) => [
      String(r.round),
      r.victim,
      r.coordinator,
      r.rf2_ever_incomplete ? `yes (${r.rf2_incomplete_searches})` : "no",
      s(r.rf2_complete_again_ms),
      r.rf1_ever_incomplete ? `yes (${r.rf1_incomplete_searches})` : "no",
      s(r.rf1_complete_again_ms),
      s(r.rf_restored_ms),
      fmt(r.max_search_ms_after_kill),
    ]),
  );
  const stat = (xs: (number | null)[]) => {
    const never = xs.some((x) => x === null);
    const v = xs.filter((x): x is number => x !== null);
    return { median_ms: never ? null : median(v), max_ms: never ? null : Math.max(...v), never };
  };
  const rf2 = stat(rounds.map((r) => r.rf2_complete_again_ms));
  const rf1 = stat(rounds.map((r) => r.rf1_complete_again_ms));
  const rfr = stat(rounds.map((r) => r.rf_restored_ms));
  const targets = [
    { name: "RF=2 searches complete again < 3 s (max)", pass: rf2.max_ms !== null && rf2.max_ms < failoverTargetRf2Ms, detail: `median ${s(rf2.median_ms)} s, max ${s(rf2.max_ms)} s` },
    { name: "RF=1 searches complete again < 10 s (max)", pass: rf1.max_ms !== null && rf1.max_ms < failoverTargetRf1Ms, detail: `median ${s(rf1.median_ms)} s, max ${s(rf1.max_ms)} s` },
    { name: `rebalance: search p95 degradation < ${rebalanceTargetPct} %`, pass: reb.p95_pass, detail: `${fmt(reb.before.p95_ms, 2)} → ${fmt(reb.during.p95_ms, 2)} ms (${reb.p95_degradation_pct >= 0 ? "+" : ""}${fmt(reb.p95_degradation_pct, 1)} %)` },
    { name: `rebalance: QPS degradation < ${rebalanceTargetPct} %`, pass: reb.qps_pass, detail: `${fmt(reb.before.qps)} → ${fmt(reb.during.qps)} (${reb.qps_degradation_pct >= 0 ? "−" : "+"}${fmt(Math.abs(reb.qps_degradation_pct), 1)} %)` },
  ];
  table(
    ["metric", "median s", "max s", "target"],
    [
      ["RF=2 complete again", s(rf2.median_ms), s(rf2.max_ms), "< 3 s"],
      ["RF=1 complete again", s(rf1.median_ms), s(rf1.max_ms), "< 10 s"],
      ["full RF restored", s(rfr.median_ms), s(rfr.max_ms), "—"],
    ],
  );
  kv("cores busy (failover)", `(pids at the start; restarted nodes not counted) ours ${fmt(failoverCpu.ours_cores, 2)}, other processes ${fmt(failoverCpu.others_cores, 2)} (of ${os.cpus().length})`);

  section(`rebalancing impact: ${reb.collection} ${reb.shards} shards RF ${reb.replicas}, ${fmt(reb.n)} vectors, search c=${rebalanceConcurrency}`);
  table(
    ["window", "seconds", "searches", "p50 ms", "p95 ms", "p99 ms", "QPS", "errors", "partial", "others' cores"],
    [
      ["before", fmt(reb.before.seconds, 1), String(reb.before.searches), fmt(reb.before.p50_ms, 2), fmt(reb.before.p95_ms, 2), fmt(reb.before.p99_ms, 2), fmt(reb.before.qps), String(reb.before.errors), String(reb.before.partial), fmt(reb.before.cpu_busy.others_cores, 2)],
      ["migration active", fmt(reb.during.seconds, 1), String(reb.during.searches), fmt(reb.during.p50_ms, 2), fmt(reb.during.p95_ms, 2), fmt(reb.during.p99_ms, 2), fmt(reb.during.qps), String(reb.during.errors), String(reb.during.partial), fmt(reb.during.cpu_busy.others_cores, 2)],
      ["degradation", "", "", "", `${fmt(reb.p95_degradation_pct, 1)} %`, "", `${fmt(reb.qps_degradation_pct, 1)} %`, "", "", ""],
    ],
  );
  kv("migrations", `${reb.moves.length} moves, all done in ${fmt(reb.migrations_total_s, 1)} s, at most ${reb.max_active_migrations} non-terminal (incl. planned) at once`);

  section("targets");
  for (const t of targets) log(`  ${t.pass ? "PASS" : "MISS"}  ${t.name.padEnd(46)} ${t.detail}`);
  kv("load average", `${loadAtStart.join(" ")} at start, ${loadAtEnd.join(" ")} at end (1, 5, 15 min)`);

  const result = {
    suite: "resilience",
    started_at: startedAt.toISOString(),
    finished_at: new Date().toISOString(),
    dataset: "fashion-mnist-784-euclidean",
    cluster: { nodes: 3, nats_servers: 3, stream_replicas: 3, node_settings: "defaults (node-dead-after-ms 8000)" },
    machine: machineInfo(),
    load_average: { at_start: loadAtStart, at_end: loadAtEnd },
    failover: {
      n: sub.count,
      shards: 3,
      ingest_consistency: "all",
      search: { per_tick_per_collection: searchesPerTick, tick_ms: tickMs, timeout_ms: searchTimeoutMs, k: 10 },
      rounds,
      rf2_complete_again: rf2,
      rf1_complete_again: rf1,
      rf_restored: rfr,
      cpu_busy: failoverCpu,
    },
    rebalance: reb,
    migrations_still_active_after_drop: staleBefore,
    migrations_still_active_at_end: staleAfter,
    targets: Object.fromEntries(targets.map((t) => [t.name, t.pass ? "pass" : "miss"])),
  };
  const files = await writeResults("resilience", startedAt, result);
  section("written");
  for (const f of files) log(`  ${f}`);
  await client.close().catch(() => undefined);
  await cl.harness.close();
}
