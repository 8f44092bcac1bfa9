/**
 * Prometheus metrics at /metrics: what a real node exports after real traffic (requests
 * over NATS and HTTP, replicas, shard logs, the coordinator, workers), the scrape-time
 * gauges from controlled figures (migrations, jobs, replicas that go away), and the naming
 * conventions every metric follows.
 */
import { spawnSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import YAML from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NodeMetrics, type MetricSources, type ReplicaSample } from "../src/actors/metrics/node-metrics.ts";
import type { JadeClient } from "../src/client/client.ts";
import type { JadeNode } from "../src/node.ts";
import { Harness, randomPoints, waitFor } from "./support/harness.ts";

const harness = new Harness();
let client: JadeClient;
let node: JadeNode;

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The exposition format's sample lines (no escaped quotes in our label values). */
function parse(text: string): Sample[] {
  return text
    .split("\n")
    .filter((line) => line !== "" && !line.startsWith("#"))
    .map((line) => {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (!m) throw new Error(`not a sample line: ${line}`);
      const labels = Object.fromEntries([...(m[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1]!, l[2]!]));
      return { name: m[1]!, labels, value: Number(m[3]) };
    });
}

function pick(samples: Sample[], name: string, labels: Record<string, string> = {}): Sample[] {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = pick(samples, name, labels);
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${found.length} samples`);
  return found[0]?.value;
}

async function scrape(url = node.httpUrl!): Promise<Sample[]> {
  const res = await fetch(`${url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return parse(await res.text());
}

beforeAll(async () => {
  const nats = await harness.nats();
  node = await harness.node([nats.url], { http: { port: 0, host: "127.0.0.1" }, workers: 2, memoryTrimIntervalMs: 200 });
  client = await harness.client(nats.url);
});
afterAll(() => harness.close());

describe("a node's /metrics", () => {
  it("counts requests per transport, operation and outcome, with their latency", async () => {
    await client.createCollection({ name: "m", dimension: 4, metric: "l2", shards: 2 });
    const points = randomPoints(50, 4, 3).map((vector, i) => ({ id: `m${i}`, vector }));
    await client.upsert("m", { points, consistency: "all" });
    await client.delete("m", { ids: ["m0", "m1"], consistency: "all" });
    for (let i = 0; i < 7; i++) await client.search("m", { vector: points[i]!.vector, k: 3 });
    for (let i = 0; i < 3; i++) await fetch(`${node.httpUrl}/v1/collections/m/search`, { method: "POST", body: JSON.stringify({ vector: [1, 2, 3, 4], k: 2 }) });
    await fetch(`${node.httpUrl}/v1/collections/m/search`, { method: "POST", body: JSON.stringify({ vector: [1, 2], k: 2 }) });

    const samples = await scrape();
    expect(value(samples, "jade_requests_total", { transport: "nats", op: "search", code: "ok" })).toBe(7);
    expect(value(samples, "jade_requests_total", { transport: "http", op: "search", code: "ok" })).toBe(3);
    expect(value(samples, "jade_requests_total", { transport: "http", op: "search", code: "dimension_mismatch" })).toBe(1);
    expect(value(samples, "jade_requests_total", { transport: "nats", op: "collections.create", code: "ok" })).toBe(1);
    expect(value(samples, "jade_request_duration_seconds_count", { transport: "nats", op: "search" })).toBe(7);
    expect(value(samples, "jade_request_duration_seconds_bucket", { transport: "nats", op: "search", le: "+Inf" })).toBe(7);
    expect(value(samples, "jade_request_duration_seconds_sum", { transport: "nats", op: "search" })).toBeGreaterThan(0);
    expect(value(samples, "jade_points_written_total", { op: "upsert" })).toBe(50);
    expect(value(samples, "jade_points_written_total", { op: "delete" })).toBe(2);
    // Every sample carries the node.
    expect(samples.every((s) => s.labels["node"] === node.nodeId)).toBe(true);
  });

  it("shows each replica, the shard logs, the coordinator, NATS and the index workers", async () => {
    const samples = await waitFor(async () => {
      const s = await scrape();
      // The shard logs come from the leader's retention pass (every 5 s).
      return pick(s, "jade_shard_log_last_sequence", { collection: "m" }).length === 2 && s;
    });
    for (const shard of ["0", "1"]) {
      const labels = { collection: "m", shard };
      expect(value(samples, "jade_replica_state", { ...labels, state: "serving" })).toBe(1);
      expect(value(samples, "jade_replica_state", { ...labels, state: "failed" })).toBe(0);
      expect(value(samples, "jade_replica_lag_entries", labels)).toBe(0);
      expect(value(samples, "jade_replica_applied_sequence", labels)).toBe(value(samples, "jade_shard_log_last_sequence", labels));
      expect(value(samples, "jade_replica_index_memory_bytes", labels)).toBeGreaterThan(0);
      expect(value(samples, "jade_shard_log_bytes", labels)).toBeGreaterThan(0);
    }
    const pointsHeld = pick(samples, "jade_replica_points", { collection: "m" }).reduce((n, s) => n + s.value, 0);
    expect(pointsHeld).toBe(48);
    expect(value(samples, "jade_replicas")).toBe(2);
    expect(value(samples, "jade_coordinator_leader")).toBe(1);
    expect(value(samples, "jade_coordinator_epoch")).toBeGreaterThan(0);
    expect(value(samples, "jade_nats_connected")).toBe(1);
    expect(value(samples, "jade_nats_disconnects_total")).toBe(0);
    const workers = pick(samples, "jade_index_worker_utilization_ratio");
    expect(workers.map((w) => w.labels["worker"]).sort()).toEqual(["0", "1"]);
    for (const w of workers) expect(w.value).toBeGreaterThanOrEqual(0), expect(w.value).toBeLessThanOrEqual(1);
    expect(value(samples, "nodejs_eventloop_lag_seconds")).toBeGreaterThanOrEqual(0);
    expect(value(samples, "jade_disk_free_bytes")).toBeGreaterThan(0);
    expect(value(samples, "jade_disk_size_bytes")).toBeGreaterThanOrEqual(value(samples, "jade_disk_free_bytes")!);
    // The node hands freed native memory back (glibc here: CI and the machine are Debian).
    const trims = await waitFor(async () => {
      const s = await scrape();
      return value(s, "jade_native_memory_trims_total")! >= 2 && s;
    });
    expect(value(trims, "jade_native_memory_trim_seconds_total")).toBeGreaterThan(0);
    expect(value(trims, "jade_native_memory_trimmed_bytes_total")).toBeGreaterThanOrEqual(0);
    // A dropped collection's series are gone at the next scrape.
    await client.dropCollection("m");
    await waitFor(async () => pick(await scrape(), "jade_replica_points", { collection: "m" }).length === 0);
  });

  it("serves none when metrics are off", async () => {
    const quiet = await harness.node([(await harness.nats()).url], { http: { port: 0, host: "127.0.0.1" }, metrics: false });
    expect((await fetch(`${quiet.httpUrl}/metrics`)).status).toBe(404);
  });
});

describe("alerts and the Grafana dashboard", () => {
  const deploy = new URL("../deploy/", import.meta.url);

  /** Every metric name a real node exports, with a histogram's series names. */
  async function exportedNames(): Promise<Set<string>> {
    const text = await (await fetch(`${node.httpUrl}/metrics`)).text();
    const names = new Set<string>(["up"]);
    for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      names.add(name!);
      if (type === "histogram") for (const suffix of ["_bucket", "_sum", "_count"]) names.add(`${name}${suffix}`);
    }
    return names;
  }

  /** Metric names in a PromQL expression: identifiers outside label matchers and strings, minus PromQL's own words. */
  function metricsIn(expr: string): string[] {
    const bare = expr.replace(/\{[^}]*\}/g, "").replace(/"[^"]*"/g, "").replace(/\[[^\]]*\]/g, "");
    const words = new Set(["sum", "max", "min", "by", "and", "or", "rate", "increase", "delta", "changes", "histogram_quantile", "vector", "le", "node", "collection", "shard", "op", "code", "state", "kind", "transport"]);
    return [...bare.matchAll(/[a-zA-Z_][a-zA-Z0-9_]*/g)].map((m) => m[0]).filter((w) => !words.has(w));
  }

  it("promtool accepts the rules, and their unit tests pass", () => {
    for (const args of [["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"]]) {
      const run = spawnSync("promtool", args, { cwd: new URL("prometheus/", deploy), encoding: "utf8", timeout: 60_000 });
      expect(run.error, "promtool is Debian's prometheus package: scripts/setup.sh installs it").toBeUndefined();
      expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0);
    }
  });

  it("every alert and every dashboard query names metrics a node exports", async () => {
    const names = await exportedNames();
    const rules = YAML.parse(await readFile(new URL("prometheus/alerts.yml", deploy), "utf8")) as { groups: { rules: { alert: string; expr: string }[] }[] };
    const alerts = rules.groups.flatMap((g) => g.rules);
    expect(alerts.map((r) => r.alert).sort()).toEqual(["JadeDiskLow", "JadeErrorRateHigh", "JadeNoCoordinator", "JadeNodeDown", "JadeReplicaNotServing", "JadeReplicationLagHigh", "JadeSearchLatencyHigh", "JadeShardLogNotPurged"]);
    const dashboard = JSON.parse(await readFile(new URL("grafana/jadevectordb.json", deploy), "utf8")) as { panels: { title: string; targets?: { expr: string }[] }[] };
    const queries = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel ${p.title}`, expr: t.expr })));
    expect(queries.length).toBeGreaterThan(20);
    const unknown = [...alerts.map((r) => ({ where: `alert ${r.alert}`, expr: r.expr })), ...queries].flatMap(({ where, expr }) => metricsIn(expr).filter((m) => !names.has(m)).map((m) => `${where}: ${m}`));
    expect(unknown).toEqual([]);
  });
});

describe("scrape-time figures", () => {
  const replica = (shard: number, state: ReplicaSample["state"]): ReplicaSample => ({
    collection: "c",
    shard,
    state,
    appliedSeq: 90,
    lastSeq: 100,
    points: 10,
    pending: 1,
    transferredBytes: 4_096,
    indexMemoryBytes: undefined,
  });
  const figures = {
    replicas: [replica(0, "serving"), replica(1, "lagging")],
    migrations: [{ id: "c/0/1", collection: "c", shard: 0, state: "catchingUp", appliedSeq: 30, targetSeq: 120, bytesCopied: 1_000, copyGoalBytes: 4_000, etaMs: 2_500 }],
    jobs: [
      { kind: "backup" as const, bytesDone: 10, bytesTotal: 40 },
      { kind: "backup" as const, bytesDone: 5, bytesTotal: 60 },
    ],
    leader: true,
  };
  const sources: MetricSources = {
    nodeId: "n1",
    replicas: async () => figures.replicas,
    pointsWritten: () => ({ upserted: 5, deleted: 1 }),
    nats: () => ({ connected: false, disconnects: 2, reconnects: 1, slowConsumers: 3 }),
    logLinesDropped: () => 4,
    coordinator: () => ({ leader: figures.leader, epoch: figures.leader ? 7 : null }),
    shardLogs: async () => [],
    migrations: () => (figures.leader ? figures.migrations : []),
    workers: () => [0.25],
    jobs: () => figures.jobs,
    disk: async () => ({ freeBytes: 10, totalBytes: 100 }),
    txns: () => ({ running: 1, committed: 9, conflicts: 2, aborted: 1, inDoubt: 0, recovered: { committed: 0, aborted: 3 } }),
    onTxnEnded: () => undefined,
    routerHedges: () => ({ attempts: 40, hedged: 3, hedgesRationed: 1 }),
    memoryTrims: () => ({ trims: 6, releasedBytes: 3_145_728, seconds: 0.25 }),
  };

  it("reports migrations, jobs, NATS events and replicas as the actors give them, and forgets what is gone", async () => {
    const metrics = new NodeMetrics(sources);
    let samples = parse((await metrics.scrape()).text);
    expect(value(samples, "jade_replica_lag_entries", { shard: "1" })).toBe(10);
    expect(value(samples, "jade_replica_state", { shard: "1", state: "lagging" })).toBe(1);
    expect(value(samples, "jade_replica_transferred_bytes_total", { shard: "0" })).toBe(4_096);
    // No estimate from the index: no sample, rather than a made-up 0.
    expect(pick(samples, "jade_replica_index_memory_bytes")).toEqual([]);
    expect(value(samples, "jade_migrations_running")).toBe(1);
    expect(value(samples, "jade_migration_progress_ratio", { id: "c/0/1", state: "catchingUp" })).toBe(0.25);
    expect(value(samples, "jade_migration_eta_seconds", { id: "c/0/1" })).toBe(2.5);
    expect(value(samples, "jade_jobs_running", { kind: "backup" })).toBe(2);
    expect(value(samples, "jade_job_done_bytes", { kind: "backup" })).toBe(15);
    expect(value(samples, "jade_job_total_bytes", { kind: "backup" })).toBe(100);
    expect(value(samples, "jade_nats_connected")).toBe(0);
    expect(value(samples, "jade_nats_slow_consumer_events_total")).toBe(3);
    expect(value(samples, "jade_coordinator_epoch")).toBe(7);
    expect(value(samples, "jade_transactions_total", { outcome: "committed" })).toBe(9);
    expect(value(samples, "jade_router_shard_reads_total")).toBe(40);
    expect(value(samples, "jade_router_hedges_total")).toBe(3);
    expect(value(samples, "jade_router_hedges_rationed_total")).toBe(1);
    expect(value(samples, "jade_native_memory_trims_total")).toBe(6);
    expect(value(samples, "jade_native_memory_trimmed_bytes_total")).toBe(3_145_728);
    expect(value(samples, "jade_native_memory_trim_seconds_total")).toBe(0.25);
    expect(value(samples, "jade_transactions_total", { outcome: "conflict" })).toBe(2);
    expect(value(samples, "jade_transactions_recovered_total", { outcome: "aborted" })).toBe(3);
    expect(value(samples, "jade_transactions_running")).toBe(1);
    // The same figures scraped twice are the same values (counters are the actors' totals, not added up again).
    samples = parse((await metrics.scrape()).text);
    expect(value(samples, "jade_replica_transferred_bytes_total", { shard: "0" })).toBe(4_096);
    expect(value(samples, "jade_points_written_total", { op: "upsert" })).toBe(5);
    // A replica that left, a migration that finished, a leadership lost: their series go.
    figures.replicas = [replica(0, "serving")];
    figures.leader = false;
    samples = parse((await metrics.scrape()).text);
    expect(pick(samples, "jade_replica_points", { shard: "1" })).toEqual([]);
    expect(pick(samples, "jade_migration_progress_ratio")).toEqual([]);
    expect(value(samples, "jade_migrations_running")).toBe(0);
    expect(value(samples, "jade_coordinator_epoch")).toBe(0);
    expect(value(samples, "jade_coordinator_leader")).toBe(0);
  });

  it("lists every metric in docs/metrics.md", async () => {
    const doc = await readFile(new URL("../docs/metrics.md", import.meta.url), "utf8");
    const names = (await new NodeMetrics(sources).registry.getMetricsAsJSON()).map((m) => m.name).filter((n) => n.startsWith("jade_"));
    expect(names.filter((n) => !doc.includes(`\`${n}\``))).toEqual([]);
  });

  it("names every metric by the Prometheus conventions", async () => {
    const metrics = new NodeMetrics(sources);
    const all = await metrics.registry.getMetricsAsJSON();
    const ours = all.filter((m) => m.name.startsWith("jade_"));
    expect(ours.length).toBeGreaterThan(25);
    for (const m of ours) {
      expect(m.name, m.name).toMatch(/^jade_[a-z0-9_]+$/);
      expect(m.help.length, m.name).toBeGreaterThan(10);
      if (String(m.type) === "counter") expect(m.name).toMatch(/_total$/);
      else expect(m.name).not.toMatch(/_total$/);
      if (String(m.type) === "histogram") expect(m.name).toMatch(/_(seconds|bytes)$/);
      expect(m.name, "base units: seconds and bytes, not ms or MiB").not.toMatch(/_(ms|milliseconds|mib|kb|mb)(_|$)/);
    }
  });
});
