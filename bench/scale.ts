/**
 * `npm run bench -- --suite scale`: JadeVectorDB at a million vectors on one node, driven the
 * way a user would drive it — `jade dev` and `jade import` as child processes — against raw
 * usearch building the same shards in the same run.
 *
 *   burst      `jade import` of the first `--burst-n` (100k) clustered 128-d vectors into 4 shards:
 *              acknowledged rate, how soon an acknowledged point is searchable (probes), search
 *              latency during the burst;
 *   sustained  `jade import` of all `--scale-n` (1M) into 4 shards: acknowledged / applied / indexed
 *              over time, search latency during the import, when it is all searchable and indexed;
 *   settled    search latency (of the searches no snapshot save or upload overlapped; the others
 *              are "right after the import") and recall@10; then latency while snapshots are
 *              saved and uploaded, memory (resident bytes per vector, peak during a save) and
 *              the data directory's size;
 *   raw        usearch building the same 4 shards (2 threads) and searching them, the limit.
 *
 * Writes bench/results/<timestamp>-scale.json, latest-scale.json and scale.md with plots.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { Index, MetricKind, ScalarKind } from "usearch";
import { JadeClient } from "../src/client/client.ts";
import { delay } from "../src/runtime/async.ts";
import { trimIntervalMsDefault } from "../src/runtime/native-memory.ts";
import { clusteredDefaults, clusteredQueries, clusteredStream, groundTruthCached, writeFvecs, type ClusteredSpec } from "./datasets-clustered.ts";
import { readFvecs, type VectorSet } from "./datasets.ts";
import { fmt, kv, latencyStats, log, percentile, repoRoot, resultsDir, round, section, type LatencyStats } from "./common.ts";
import { barChart, lineChart, writeReport, type Row } from "./plot.ts";
import { withProgress } from "./progress.ts";
import { settledNativeBytes } from "./memory.ts";
import { childPids, cpuPhase, type CpuPhase } from "./cpu.ts";

export interface ScaleOptions {
  n: number;
  burstN: number;
  shards: number;
  queries: number;
  quantization: "f32" | "f16";
  expansionSearch: number;
  raw: boolean;
}

const k = 10;
const dimension = clusteredDefaults.dimension;
const indexParams = { connectivity: 16, expansionAdd: 128 };
/** How often the timeline samples status and memory, and probes write a marker point. */
const sampleEveryMs = 1_000;
const probeEveryMs = 250;
/**
 * Probe points are drawn from the data's own clusters (a seed of their own), so the graph
 * reaches them as it reaches the data. They used to sit far off every cluster, on a line: an
 * HNSW graph keeps no links into such outliers, and 74 of 250 of them were unreachable by their
 * own vector in a 250,000-point graph (usearch 2.26.2), so a probe found in the fresh buffer
 * only until it was absorbed measured the graph's reach (one waited 111 s), not freshness.
 */
const probeSeed = 3;
const probesMax = 4_096;
/** Searches per second during imports and saves (open loop). */
const searchesPerSec = 20;
/** The snapshot window lasts until every shard saved and uploaded once, or this long. */
const snapshotWindowMsMax = 5 * 60_000;
/**
 * Settled searches are those that overlapped no snapshot save or upload: after the import every
 * shard saves again once its graph holds every point (replica-snapshots.ts `worthResaving`),
 * and at 1M each save (~2 s) and upload (~10 s) of a 300 MB shard ran under the first settled
 * searches. A round of searches is classified this long after it ends, so every save or upload
 * it overlapped has reported…
 */
const settledGraceMs = 30_000;
/** …and rounds go on until one query set's worth of searches overlapped none, or this many ran. */
const settledRoundsMax = 6;
const dataCacheDir = path.join(os.tmpdir(), "jade-bench-data");

// ---------------------------------------------------------------------------------------------
// The node and the import, as child processes

interface DevNode {
  child: ChildProcess;
  pid: number;
  url: string;
  /** Checkpoint saves from the node's log: [endMs, durationMs] on this process's clock. */
  saves: [number, number][];
  /** Uploads of saved checkpoints to the object store (the shared snapshot), likewise. */
  uploads: [number, number][];
  stop(): Promise<void>;
}

async function startDev(dataDir: string): Promise<DevNode> {
  const child = spawn(process.execPath, [path.join(repoRoot, "bin", "jade.mjs"), "dev", "--data", dataDir, "--nats-port", "0", "--http-port", "0"], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, JADE_LOG_LEVEL: "info" },
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const saves: [number, number][] = [];
  const uploads: [number, number][] = [];
  const logFile = createWriteStream(`${dataDir}.log`);
  child.stderr!.pipe(logFile);
  log(`  node log: ${dataDir}.log`);
  createInterface({ input: child.stderr! }).on("line", (line) => {
    const events = line.includes('"checkpoint saved"') ? saves : line.includes('"snapshot saved"') ? uploads : undefined;
    if (!events) return;
    try {
      events.push([performance.now(), (JSON.parse(line) as { ms: number }).ms]);
    } catch {
      // Not a JSON log line.
    }
  });
  const url = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on("line", (line) => {
      const match = /ready .*nats=([^\s,]+)/.exec(line);
      if (match) resolve(match[1]!);
    });
    child.once("exit", (code) => reject(new Error(`jade dev exited (${code}) before it was ready`)));
  });
  const stop = async () => {
    if (child.exitCode === null) child.kill("SIGTERM");
    await exited;
  };
  return { child, pid: child.pid!, url, saves, uploads, stop };
}

interface ImportResult {
  vectors: number;
  seconds: number;
  vectorsPerSecond: number;
  startedMs: number;
  endedMs: number;
}

/** `jade import <collection> <file> --json`, as a user runs it. */
async function jadeImport(url: string, collection: string, file: string): Promise<ImportResult> {
  const startedMs = performance.now();
  const child = spawn(process.execPath, [path.join(repoRoot, "bin", "jade.mjs"), "import", collection, file, "--nats", url, "--batch", "1000", "--concurrency", "4", "--json"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout!.on("data", (chunk: Buffer) => (out += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  if (code !== 0) throw new Error(`jade import exited with ${code}: ${out.slice(-500)}`);
  const result = JSON.parse(out) as { vectors: number; seconds: number; vectorsPerSecond: number };
  return { ...result, startedMs, endedMs: performance.now() };
}

// ---------------------------------------------------------------------------------------------
// What runs beside an import: searches, probes, and the timeline

interface SearchSample {
  atMs: number;
  ms: number;
}

/**
 * Searches started at a fixed rate (open loop: each on schedule, whether or not the previous
 * answered, so a stall shows in the latencies instead of slowing the sampling) until stopped;
 * every sample is kept with its time. A closed c=1 loop would be a load of its own: at 1M it
 * ran ~90 searches a second, each scanning every fresh buffer.
 */
function searchLoop(client: JadeClient, collection: string, queries: VectorSet) {
  const samples: SearchSample[] = [];
  let running = true;
  const inflight = new Set<Promise<void>>();
  const search = async (q: number) => {
    const vector = queries.data.subarray((q % queries.count) * dimension, ((q % queries.count) + 1) * dimension);
    const t0 = performance.now();
    try {
      await client.search(collection, { vector, k, timeoutMs: 10_000 });
      samples.push({ atMs: t0, ms: performance.now() - t0 });
    } catch {
      samples.push({ atMs: t0, ms: Number.NaN });
    }
  };
  const done = (async () => {
    const started = performance.now();
    for (let q = 0; running; q++) {
      const p: Promise<void> = search(q).finally(() => inflight.delete(p));
      inflight.add(p);
      await delay(Math.max(0, started + ((q + 1) * 1000) / searchesPerSec - performance.now()));
    }
    await Promise.all(inflight);
  })();
  return { samples, stop: async () => ((running = false), await done) };
}

/** Probes in flight at most, and how their searches back off: a probe must not load the node it measures. */
const probesInFlightMax = 4;
const probePollMsInitial = 10;
const probePollMsMax = 200;

/**
 * Every `probeEveryMs` (while fewer than `probesInFlightMax` are waiting), a marker point is
 * written (consistency log) and searched for by its own vector until it is among the k
 * nearest: the time from its acknowledgement to being searchable. `stop` deletes the probes,
 * so the settled searches' recall counts the imported points only.
 */
function probeLoop(client: JadeClient, collection: string) {
  const bases = clusteredQueries(clusteredDefaults, { count: probesMax, seed: probeSeed });
  const delaysMs: number[] = [];
  const written: string[] = [];
  let running = true;
  const probe = async (i: number) => {
    const vector = bases.data.slice((i % probesMax) * dimension, (i % probesMax + 1) * dimension);
    const id = `probe-${i}`;
    await client.upsert(collection, { points: [{ id, vector: Array.from(vector) }], timeoutMs: 30_000 });
    written.push(id);
    const ackedMs = performance.now();
    for (let pollMs = probePollMsInitial; ; pollMs = Math.min(probePollMsMax, pollMs * 1.5)) {
      const { hits } = await client.search(collection, { vector, k, timeoutMs: 10_000 });
      if (hits.some((hit) => hit.id === id)) return delaysMs.push(performance.now() - ackedMs);
      await delay(pollMs);
    }
  };
  const done = (async () => {
    const inflight = new Set<Promise<unknown>>();
    for (let i = 0; running && i < probesMax; i++) {
      if (inflight.size < probesInFlightMax) {
        const p: Promise<unknown> = probe(i)
          .catch(() => undefined)
          .finally(() => inflight.delete(p));
        inflight.add(p);
      }
      await delay(probeEveryMs);
    }
    await Promise.all(inflight);
  })();
  const stop = async () => {
    running = false;
    await done;
    for (let at = 0; at < written.length; at += 1_000) await client.delete(collection, { ids: written.slice(at, at + 1_000), timeoutMs: 30_000 });
    written.length = 0;
  };
  return { delaysMs, stop };
}

interface TimelinePoint {
  atMs: number;
  applied: number;
  pending: number;
  rssBytes: number;
}

/** Applied and pending points (all replicas of `collection`) and the node's resident size, every second. */
function timeline(client: JadeClient, collection: string, pid: number) {
  const points: TimelinePoint[] = [];
  let running = true;
  const done = (async () => {
    while (running) {
      const at = performance.now();
      const status = await client.clusterStatus().catch(() => undefined);
      const c = status?.collections.find((x) => x.name === collection);
      const replicas = c?.shards.flatMap((s) => s.replicas) ?? [];
      points.push({ atMs: at, applied: replicas.reduce((n, r) => n + (r.count ?? 0), 0), pending: replicas.reduce((n, r) => n + (r.pending ?? 0), 0), rssBytes: await rssOf(pid) });
      await delay(Math.max(0, sampleEveryMs - (performance.now() - at)));
    }
  })();
  return { points, stop: async () => ((running = false), await done) };
}

async function rssOf(pid: number, field = "VmRSS"): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  const kb = Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return kb * 1024;
}

/** Settled memory: a reading within this share of the one before it, or the last one read by the deadline. */
const rssSettledShare = 0.01;
const rssSettleMsMax = 60_000;

/**
 * The node's RSS once it holds still, read one trim interval apart (runtime/native-memory.ts)
 * until two readings in a row agree. Memory the import freed leaves in two steps (V8
 * collects a dropped buffer, then a trim hands the pages back), and the replicas' snapshot
 * saves after the import allocate and free again: at 300,000 points one run read
 * 617 → 574 → 615 → 589 → 544 → 540 MiB. A single reading caught whatever moment it fell on.
 */
async function settledRss(pid: number): Promise<{ bytes: number; readings: number[] }> {
  const deadline = performance.now() + rssSettleMsMax;
  const readings = [await rssOf(pid)];
  for (;;) {
    await delay(trimIntervalMsDefault + 1_000);
    const last = await rssOf(pid);
    const before = readings[readings.length - 1]!;
    readings.push(last);
    if (Math.abs(last - before) <= rssSettledShare * before || performance.now() >= deadline) return { bytes: last, readings };
  }
}

/** Waits until every replica of `collection` holds `count` points with none pending; returns when. */
async function waitState(client: JadeClient, collection: string, count: number, indexed: boolean): Promise<number> {
  for (;;) {
    const c = (await client.clusterStatus()).collections.find((x) => x.name === collection);
    const replicas = c?.shards.flatMap((s) => s.replicas) ?? [];
    const applied = replicas.reduce((n, r) => n + (r.count ?? 0), 0);
    if (applied >= count && (!indexed || replicas.every((r) => (r.pending ?? 0) === 0))) return performance.now();
    await delay(100);
  }
}

/** Cores busy on average during a phase, by where the CPU went (the import client is in `rest`). */
interface CpuSplit {
  nodeMain: number;
  nodeWorkers: number;
  natsServer: number;
  benchClient: number;
  rest: number;
  machine: number;
  /** CPU µs per imported vector, every process. */
  usPerVector: number;
}

/**
 * Starts measuring where the 2 cores go during an import: the node's main thread, its other
 * threads (index workers and their usearch insertion threads), the nats-server `jade dev`
 * started, this process (searches, probes, status polls), and the rest — the `jade import`
 * client (a child that is gone before the phase ends, so it is counted as machine busy time
 * that no named process accounts for) and anything else running.
 */
function cpuSplit(node: DevNode): (vectors: number) => CpuSplit {
  const end = cpuPhase({ node: node.pid, nats: childPids(node.pid)[0], bench: process.pid });
  return (vectors) => split(end(), vectors);
}

function split(phase: CpuPhase, vectors: number): CpuSplit {
  const cores = (ms: number) => round(ms / phase.wallMs, 2);
  const { node, nats, bench } = phase.byProcess;
  const all = (c: { mainMs: number; otherMs: number } | undefined) => (c ? c.mainMs + c.otherMs : 0);
  return {
    nodeMain: cores(node?.mainMs ?? 0),
    nodeWorkers: cores(node?.otherMs ?? 0),
    natsServer: cores(all(nats)),
    benchClient: cores(all(bench)),
    rest: cores(phase.restMs),
    machine: cores(phase.machineMs),
    usPerVector: round((phase.machineMs * 1000) / Math.max(1, vectors), 1),
  };
}

function cpuLine(c: CpuSplit): string {
  return `${fmt(c.machine, 2)} cores busy: node main ${fmt(c.nodeMain, 2)}, node workers ${fmt(c.nodeWorkers, 2)}, nats-server ${fmt(c.natsServer, 2)}, searches ${fmt(c.benchClient, 2)}, import client + rest ${fmt(c.rest, 2)}; ${fmt(c.usPerVector, 1)} µs CPU per vector`;
}

// ---------------------------------------------------------------------------------------------
// Phases

async function dataFiles(opts: ScaleOptions): Promise<{ full: string; burst: string; queries: VectorSet; truth: Uint32Array }> {
  await mkdir(dataCacheDir, { recursive: true });
  const spec: ClusteredSpec = { ...clusteredDefaults, count: opts.n };
  const file = async (count: number) => {
    const out = path.join(dataCacheDir, `clustered-${count}x${dimension}-s${spec.seed}.fvecs`);
    if (!existsSync(out)) await withProgress(`generate ${fmt(count)}`, count, (advance) => writeFvecs(out, clusteredStream({ ...spec, count }), advance));
    return out;
  };
  const full = await file(opts.n);
  const burst = await file(opts.burstN);
  const queries = clusteredQueries(spec, { count: opts.queries, seed: 2 });
  const train = await readFvecs(full);
  const gtFile = path.join(dataCacheDir, `clustered-${opts.n}-q${opts.queries}-k${k}.ivecs`);
  const { truth } = await withProgress("ground truth", opts.queries, (advance) => groundTruthCached(gtFile, train, queries, k, advance));
  return { full, burst, queries, truth };
}

interface BurstResult {
  ackedVps: number;
  probeMs: LatencyStats;
  searchDuring: LatencyStats;
  /** While `jade import` runs. */
  cpu: CpuSplit;
}

async function burstPhase(client: JadeClient, node: DevNode, opts: ScaleOptions, file: string, queries: VectorSet): Promise<BurstResult> {
  section(`burst: jade import of ${fmt(opts.burstN)} × ${dimension} into ${opts.shards} shards`);
  await createCollection(client, "burst", opts);
  const searches = searchLoop(client, "burst", queries);
  const probes = probeLoop(client, "burst");
  let imported: ImportResult, cpu: CpuSplit;
  try {
    const endCpu = cpuSplit(node);
    imported = await jadeImport(node.url, "burst", file);
    cpu = endCpu(opts.burstN);
    await waitState(client, "burst", opts.burstN, false);
  } finally {
    await probes.stop();
    await searches.stop();
  }
  const during = searches.samples.filter((s) => s.atMs >= imported.startedMs && s.atMs <= imported.endedMs);
  const result = { ackedVps: imported.vectorsPerSecond, probeMs: latencyStats(probes.delaysMs), searchDuring: latencyStats(finite(during)), cpu };
  kv("acknowledged", `${fmt(imported.vectorsPerSecond)} vec/s (${fmt(imported.seconds, 2)} s)`);
  kv("ack → searchable", `p50 ${fmt(result.probeMs.p50)} ms, p99 ${fmt(result.probeMs.p99)} ms, max ${fmt(result.probeMs.max)} ms (${probes.delaysMs.length} probes)`);
  kv("search during burst", `p50 ${fmt(result.searchDuring.p50, 2)} ms, p95 ${fmt(result.searchDuring.p95, 2)} ms (${during.length} searches)`);
  kv("CPU during burst", cpuLine(cpu));
  await client.dropCollection("burst");
  return result;
}

interface SustainedResult {
  ackedVps: number;
  importSeconds: number;
  searchableSeconds: number;
  indexedSeconds: number;
  indexedVps: number;
  probeMs: LatencyStats;
  searchDuring: LatencyStats;
  /** The same searches split: those that overlapped a snapshot save or upload, and the rest. */
  searchDuringSnapshots: LatencyStats & { count: number };
  searchDuringNoSnapshot: LatencyStats & { count: number };
  /** From the import's start until every point is in the graphs. */
  cpu: CpuSplit;
  timeline: Row[];
  latencyTimeline: Row[];
}

async function sustainedPhase(client: JadeClient, node: DevNode, opts: ScaleOptions, file: string, queries: VectorSet): Promise<SustainedResult> {
  section(`sustained: jade import of ${fmt(opts.n)} × ${dimension} into ${opts.shards} shards`);
  await createCollection(client, "scale", opts);
  const started = performance.now();
  const searches = searchLoop(client, "scale", queries);
  const probes = probeLoop(client, "scale");
  const samples = timeline(client, "scale", node.pid);
  let imported: ImportResult, searchableAt: number, indexedAt: number, cpu: CpuSplit;
  try {
    const endCpu = cpuSplit(node);
    imported = await jadeImport(node.url, "scale", file);
    searchableAt = await waitState(client, "scale", opts.n, false);
    await probes.stop();
    indexedAt = await waitState(client, "scale", opts.n, true);
    cpu = endCpu(opts.n);
  } finally {
    await probes.stop();
    await searches.stop();
    await samples.stop();
  }
  const during = searches.samples.filter((s) => s.atMs >= imported.startedMs && s.atMs <= imported.endedMs);
  const snapshots = snapshotWork(node);
  const overlapping = during.filter((sample) => overlaps(sample, snapshots));
  const clear = during.filter((sample) => !overlaps(sample, snapshots));
  const s = (ms: number) => (ms - started) / 1000;
  const result: SustainedResult = {
    ackedVps: imported.vectorsPerSecond,
    importSeconds: imported.seconds,
    searchableSeconds: s(searchableAt),
    indexedSeconds: s(indexedAt),
    indexedVps: opts.n / s(indexedAt),
    probeMs: latencyStats(probes.delaysMs),
    searchDuring: latencyStats(finite(during)),
    searchDuringSnapshots: { ...latencyStats(finite(overlapping)), count: overlapping.length },
    searchDuringNoSnapshot: { ...latencyStats(finite(clear)), count: clear.length },
    cpu,
    timeline: ingestRows(samples.points, started, opts.n, imported),
    latencyTimeline: latencyRows(searches.samples, started),
  };
  kv("acknowledged", `${fmt(result.ackedVps)} vec/s (import ${fmt(result.importSeconds, 1)} s)`);
  kv("all searchable", `${fmt(result.searchableSeconds, 1)} s`);
  kv("all indexed", `${fmt(result.indexedSeconds, 1)} s → ${fmt(result.indexedVps)} vec/s`);
  kv("ack → searchable", `p50 ${fmt(result.probeMs.p50)} ms, p99 ${fmt(result.probeMs.p99)} ms, max ${fmt(result.probeMs.max)} ms`);
  kv("search during import", `p50 ${fmt(result.searchDuring.p50, 2)} ms, p95 ${fmt(result.searchDuring.p95, 2)} ms`);
  const split = (l: LatencyStats & { count: number }) => `p50 ${fmt(l.p50, 2)} ms, p95 ${fmt(l.p95, 2)} ms (${fmt(l.count)})`;
  kv("  … overlapping a save or upload", split(result.searchDuringSnapshots));
  kv("  … the rest", split(result.searchDuringNoSnapshot));
  kv("CPU, import start → all indexed", cpuLine(cpu));
  return result;
}

function ingestRows(points: TimelinePoint[], started: number, n: number, imported: ImportResult): Row[] {
  const importedByMs = (ms: number) => (ms >= imported.endedMs ? n : Math.min(n, imported.vectorsPerSecond * Math.max(0, (ms - imported.startedMs) / 1000)));
  return points.flatMap((p) => {
    const t = round((p.atMs - started) / 1000, 1);
    return [
      { t, series: "acknowledged (import rate)", points: Math.round(importedByMs(p.atMs)) },
      { t, series: "searchable (applied)", points: p.applied },
      { t, series: "indexed (in the graph)", points: p.applied - p.pending },
    ];
  });
}

/** p50 and p95 of the searches started in each 5-second window. */
function latencyRows(samples: SearchSample[], started: number): Row[] {
  const windowMs = 5_000;
  const buckets = new Map<number, number[]>();
  for (const s of samples) {
    if (!Number.isFinite(s.ms)) continue;
    const b = Math.floor((s.atMs - started) / windowMs);
    buckets.set(b, [...(buckets.get(b) ?? []), s.ms]);
  }
  return [...buckets].flatMap(([b, ms]) => {
    const sorted = ms.sort((x, y) => x - y);
    const t = (b * windowMs) / 1000;
    return [
      { t, series: "p50", ms: round(percentile(sorted, 50), 2) },
      { t, series: "p95", ms: round(percentile(sorted, 95), 2) },
    ];
  });
}

interface SnapshotWindow {
  /** Searches that overlapped a checkpoint save, an upload of one, or either. */
  duringSaves: LatencyStats;
  saves: number;
  duringUploads: LatencyStats;
  uploads: number;
  duringEither: LatencyStats;
  peakRssDuringSavesBytes: number;
}

interface SettledResult extends SnapshotWindow {
  /** The node's resident size with no collection, right after it started. */
  baseRssBytes: number;
  /** Searches (c=1, closed loop) that overlapped no snapshot save or upload. */
  latency: LatencyStats;
  quietSearches: number;
  /** The searches of the same loop that overlapped the saves and uploads following the import. */
  afterImport: { latency: LatencyStats; searches: number };
  qpsC1: number;
  recall: number;
  rssBytes: number;
  dataDirBytes: number;
}

async function settledPhase(client: JadeClient, node: DevNode, dataDir: string, queries: VectorSet, truth: Uint32Array, baseRssBytes: number, shards: number): Promise<SettledResult> {
  section("settled: search, recall, memory, snapshots");
  const found: string[][] = [];
  const samples: SearchSample[] = [];
  let qpsC1 = 0;
  let quiet: SearchSample[] = [];
  let busy: SearchSample[] = [];
  for (let round = 0; round < settledRoundsMax && quiet.length < queries.count; round++) {
    const started = performance.now();
    for (let q = 0; q < queries.count; q++) {
      const t0 = performance.now();
      const { hits } = await client.search("scale", { vector: queries.data.subarray(q * dimension, (q + 1) * dimension), k });
      samples.push({ atMs: t0, ms: performance.now() - t0 });
      if (round === 0) found.push(hits.map((h) => h.id));
    }
    if (round === 0) qpsC1 = queries.count / ((performance.now() - started) / 1000);
    await delay(settledGraceMs);
    const work = snapshotWork(node);
    quiet = [];
    busy = [];
    for (const sample of samples) (overlaps(sample, work) ? busy : quiet).push(sample);
  }
  const recall = recallAt(found, truth);
  const { bytes: rssBytes, readings } = await settledRss(node.pid);
  const windows = await snapshotWindow(client, node, queries, shards);
  const result: SettledResult = {
    baseRssBytes,
    latency: latencyStats(quiet.map((sample) => sample.ms)),
    quietSearches: quiet.length,
    afterImport: { latency: latencyStats(busy.map((sample) => sample.ms)), searches: busy.length },
    qpsC1,
    recall,
    ...windows,
    rssBytes,
    dataDirBytes: await duBytes(dataDir),
  };
  kv("search c=1", `p50 ${fmt(result.latency.p50, 2)} ms, p95 ${fmt(result.latency.p95, 2)} ms (${fmt(quiet.length)} searches during no snapshot save or upload), ${fmt(qpsC1)} QPS, recall@10 ${fmt(recall, 4)}`);
  kv("right after the import", busy.length === 0 ? "no search overlapped a save or upload" : `p50 ${fmt(result.afterImport.latency.p50, 2)} ms, p95 ${fmt(result.afterImport.latency.p95, 2)} ms (${fmt(busy.length)} searches during the import's last saves and uploads)`);
  kv("while saving", `p95 ${fmt(result.duringSaves.p95, 2)} ms over ${result.saves} saves; p95 ${fmt(result.duringUploads.p95, 2)} ms over ${result.uploads} uploads; peak RSS +${fmt((100 * (result.peakRssDuringSavesBytes - rssBytes)) / rssBytes, 1)} %`);
  kv("memory", `RSS ${fmt(rssBytes / 2 ** 20)} MiB (${fmt(baseRssBytes / 2 ** 20)} MiB before any collection; read ${readings.map((r) => fmt(r / 2 ** 20)).join(" → ")} MiB); data dir ${fmt(result.dataDirBytes / 2 ** 20)} MiB`);
  return result;
}

/** The node's snapshot saves and uploads so far, as [start, end] on this process's clock. */
function snapshotWork(node: DevNode): (readonly [number, number])[] {
  return windowsOf(node.saves).concat(windowsOf(node.uploads));
}

function windowsOf(events: [number, number][]): (readonly [number, number])[] {
  return events.map(([end, ms]) => [end - ms, end] as const);
}

function overlaps(sample: SearchSample, windows: readonly (readonly [number, number])[]): boolean {
  return windows.some(([a, b]) => sample.atMs <= b && sample.atMs + sample.ms >= a);
}

/**
 * Searches while a trickle of writes keeps every shard saving on its interval, until each
 * shard saved and uploaded once (saves cool down after the import's, see the replica machine)
 * or `snapshotWindowMsMax`; the searches that overlapped a save, or an upload, (from the
 * node's log) are the ones reported.
 */
async function snapshotWindow(client: JadeClient, node: DevNode, queries: VectorSet, shards: number): Promise<SnapshotWindow> {
  await writeFile(`/proc/${node.pid}/clear_refs`, "5").catch(() => undefined);
  const before = { saves: node.saves.length, uploads: node.uploads.length };
  const searches = searchLoop(client, "scale", queries);
  const endAt = performance.now() + snapshotWindowMsMax;
  for (let i = 0; performance.now() < endAt && node.saves.length - before.saves < shards; i++) {
    await client.upsert("scale", { points: [{ id: `trickle-${i}`, vector: Array.from(queries.data.subarray(0, dimension)) }] });
    await delay(2_000);
  }
  while (performance.now() < endAt && node.uploads.length - before.uploads < node.saves.length - before.saves) await delay(250);
  await searches.stop();
  const saves = windowsOf(node.saves.slice(before.saves));
  const uploads = windowsOf(node.uploads.slice(before.uploads));
  const during = (windows: (readonly [number, number])[]) => latencyStats(finite(searches.samples.filter((sample) => overlaps(sample, windows))));
  return { duringSaves: during(saves), saves: saves.length, duringUploads: during(uploads), uploads: uploads.length, duringEither: during(saves.concat(uploads)), peakRssDuringSavesBytes: await rssOf(node.pid, "VmHWM") };
}

interface RawResult {
  buildSeconds: number;
  buildVps: number;
  latency: LatencyStats;
  recall: number;
  /** usearch's serialized size of the shards (vectors, graph, keys). */
  indexBytes: number;
  /** Growth of this process's native memory over the build (the shards in memory, capacity slack included). */
  residentBytes: number;
}

/** usearch building the same shards (each on 2 threads, one after another) and searching them, merged. */
async function rawPhase(opts: ScaleOptions, file: string, queries: VectorSet, truth: Uint32Array): Promise<RawResult> {
  section(`raw usearch: ${opts.shards} shards of ${fmt(opts.n / opts.shards)}, ${os.availableParallelism()} threads`);
  const train = await readFvecs(file);
  const per = Math.ceil(train.count / opts.shards);
  const threads = os.availableParallelism();
  const shards: Index[] = [];
  const nativeBefore = await settledNativeBytes();
  const started = performance.now();
  await withProgress("raw build", train.count, async (advance) => {
    for (let s = 0; s < opts.shards; s++) {
      const index = new Index({ dimensions: dimension, metric: MetricKind.L2sq, quantization: opts.quantization === "f16" ? ScalarKind.F16 : ScalarKind.F32, connectivity: indexParams.connectivity, expansion_add: indexParams.expansionAdd, expansion_search: opts.expansionSearch, multi: false });
      for (let from = s * per; from < Math.min(train.count, (s + 1) * per); from += 10_000) {
        const to = Math.min(train.count, (s + 1) * per, from + 10_000);
        index.add(BigUint64Array.from({ length: to - from }, (_, i) => BigInt(from + i)), train.data.slice(from * dimension, to * dimension), threads);
        advance(to);
      }
      shards.push(index);
    }
  });
  const buildSeconds = (performance.now() - started) / 1000;
  const { latency, found } = rawSearch(shards, queries);
  const residentBytes = (await settledNativeBytes()) - nativeBefore;
  const indexBytes = await rawIndexBytes(shards);
  const result = { buildSeconds, buildVps: train.count / buildSeconds, latency, recall: recallAt(found, truth), indexBytes, residentBytes };
  kv("build", `${fmt(buildSeconds, 1)} s → ${fmt(result.buildVps)} vec/s`);
  kv("search", `p50 ${fmt(latency.p50, 2)} ms, p95 ${fmt(latency.p95, 2)} ms, recall@10 ${fmt(result.recall, 4)}`);
  kv("index bytes", `${fmt(indexBytes / train.count)} B/vector serialized, ${fmt(residentBytes / train.count)} B/vector resident`);
  return result;
}

function rawSearch(shards: Index[], queries: VectorSet): { latency: LatencyStats; found: string[][] } {
  const ms: number[] = [];
  const found: string[][] = [];
  for (let q = 0; q < queries.count; q++) {
    const vector = queries.data.slice(q * dimension, (q + 1) * dimension);
    const t0 = performance.now();
    const hits = shards.flatMap((index) => {
      const m = index.search(vector, k, 1);
      return Array.from(m.keys, (key, i) => ({ id: String(key), d: m.distances[i]! }));
    });
    hits.sort((a, b) => a.d - b.d);
    ms.push(performance.now() - t0);
    found.push(hits.slice(0, k).map((h) => h.id));
  }
  return { latency: latencyStats(ms), found };
}

/** usearch's own bytes for the shards: the size of their serialized form (vectors, graph, keys). */
async function rawIndexBytes(shards: Index[]): Promise<number> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "jade-raw-"));
  try {
    let bytes = 0;
    for (const [i, index] of shards.entries()) {
      const file = path.join(dir, `${i}.usearch`);
      index.save(file);
      bytes += (await stat(file)).size;
    }
    return bytes;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

async function createCollection(client: JadeClient, name: string, opts: ScaleOptions): Promise<void> {
  await client.createCollection({
    name,
    dimension,
    metric: "l2",
    shards: opts.shards,
    index: { ...indexParams, expansionSearch: opts.expansionSearch, quantization: opts.quantization },
  });
  for (;;) {
    const c = (await client.clusterStatus()).collections.find((x) => x.name === name);
    if (c?.shards.length === opts.shards && c.shards.every((s) => s.replicas.some((r) => r.state === "serving"))) return;
    await delay(100);
  }
}

function recallAt(found: string[][], truth: Uint32Array): number {
  let hit = 0;
  found.forEach((ids, q) => {
    const expected = new Set(Array.from(truth.subarray(q * k, (q + 1) * k), String));
    hit += ids.filter((id) => expected.has(id)).length;
  });
  return hit / (found.length * k);
}

function finite(samples: SearchSample[]): number[] {
  return samples.map((s) => s.ms).filter(Number.isFinite);
}

async function duBytes(dir: string): Promise<number> {
  const child = spawn("du", ["-sb", dir]);
  let out = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  await new Promise((resolve) => child.once("exit", resolve));
  return Number(out.split(/\s/)[0] ?? 0);
}

// ---------------------------------------------------------------------------------------------
// The suite

export async function runScale(opts: ScaleOptions): Promise<void> {
  section("JadeVectorDB at scale");
  const { full, burst: burstFile, queries, truth } = await dataFiles(opts);
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "jade-scale-"));
  const node = await startDev(dataDir);
  let client: JadeClient | undefined;
  let burst: BurstResult, sustained: SustainedResult, settled: SettledResult;
  try {
    client = await JadeClient.connect({ servers: node.url, timeoutMs: 120_000, name: "jade-bench-scale" });
    const baseRssBytes = await rssOf(node.pid);
    burst = await burstPhase(client, node, opts, burstFile, queries);
    sustained = await sustainedPhase(client, node, opts, full, queries);
    settled = await settledPhase(client, node, dataDir, queries, truth, baseRssBytes, opts.shards);
  } finally {
    await client?.close();
    await node.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
  const raw = opts.raw ? await rawPhase(opts, full, queries, truth) : undefined;
  await report(opts, burst, sustained, settled, raw);
}

async function report(opts: ScaleOptions, burst: BurstResult, sustained: SustainedResult, settled: SettledResult, raw: RawResult | undefined): Promise<void> {
  const targets = scaleTargets(opts, burst, sustained, settled, raw);
  section("targets");
  for (const t of targets) log(`  ${t.pass === undefined ? "SKIP" : t.pass ? "PASS" : "MISS"}  ${t.name.padEnd(58)} ${t.detail}`);
  const result = { suite: "scale", at: new Date().toISOString(), machine: `${os.cpus().length} × ${os.cpus()[0]?.model}`, load: os.loadavg(), options: opts, burst, sustained: { ...sustained, timeline: undefined, latencyTimeline: undefined }, settled, raw, targets };
  const stamp = new Date().toISOString().replace(/[:]/g, "-");
  await mkdir(resultsDir, { recursive: true });
  await writeFile(path.join(resultsDir, `${stamp}-scale.json`), JSON.stringify(result, null, 2) + "\n");
  await writeFile(path.join(resultsDir, "latest-scale.json"), JSON.stringify(result, null, 2) + "\n");
  const charts = [
    { file: "scale-ingest.svg", title: "1M import: acknowledged, searchable, indexed", svg: await lineChart({ title: `jade import of ${fmt(opts.n)} × ${dimension}, ${opts.shards} shards`, x: { field: "t", title: "seconds" }, y: { field: "points", title: "points" }, series: "series", data: sustained.timeline }) },
    { file: "scale-latency.svg", title: "Search latency during and after the import", svg: await lineChart({ title: "search latency (c=1), 5 s windows", x: { field: "t", title: "seconds" }, y: { field: "ms", title: "ms", scale: { type: "log" } }, series: "series", data: sustained.latencyTimeline }) },
    { file: "scale-p95.svg", title: "Search p95: ours vs raw usearch", svg: await barChart({ title: "search p95 (ms)", category: { field: "when", title: "" }, value: { field: "ms", title: "ms" }, data: p95Rows(burst, sustained, settled, raw) }) },
  ];
  const cpu = [
    "Cores busy on average (of 2), and CPU per imported vector over every process:",
    "",
    `- burst (while \`jade import\` runs): ${cpuLine(burst.cpu)}`,
    `- 1M (import start → all indexed): ${cpuLine(sustained.cpu)}`,
  ].join("\n");
  await writeReport(resultsDir, "scale", {
    title: "JadeVectorDB at scale",
    sections: [
      { heading: "Targets", markdown: targets.map((t) => `- ${t.pass === undefined ? "SKIP" : t.pass ? "PASS" : "MISS"} ${t.name}: ${t.detail}`).join("\n"), charts },
      { heading: "Where the CPU went", markdown: cpu },
    ],
  });
}

function p95Rows(burst: BurstResult, sustained: SustainedResult, settled: SettledResult, raw: RawResult | undefined): Row[] {
  const rows: Row[] = [
    { when: "during burst", ms: round(burst.searchDuring.p95, 2) },
    { when: "during 1M import", ms: round(sustained.searchDuring.p95, 2) },
    { when: "right after the import (saves, uploads)", ms: round(settled.afterImport.latency.p95, 2) },
    { when: "settled", ms: round(settled.latency.p95, 2) },
    { when: "while saving or uploading", ms: round(settled.duringEither.p95, 2) },
  ];
  if (raw) rows.push({ when: "raw usearch", ms: round(raw.latency.p95, 2) });
  return rows;
}

function scaleTargets(opts: ScaleOptions, burst: BurstResult, sustained: SustainedResult, settled: SettledResult, raw: RawResult | undefined) {
  const perVector = (settled.rssBytes - settled.baseRssBytes) / opts.n;
  const rawPerVector = raw ? raw.residentBytes / opts.n : undefined;
  return [
    { name: "burst acknowledged ≥ 25,000 vec/s", pass: burst.ackedVps >= 25_000, detail: `${fmt(burst.ackedVps)} vec/s` },
    { name: "burst: searchable within 1 s of acknowledgement (max)", pass: burst.probeMs.max <= 1_000, detail: `max ${fmt(burst.probeMs.max)} ms` },
    { name: "burst: search p95 < 20 ms", pass: burst.searchDuring.p95 < 20, detail: `${fmt(burst.searchDuring.p95, 2)} ms` },
    { name: "sustained: graphs absorb ≥ 80% of raw build", pass: raw ? sustained.indexedVps >= 0.8 * raw.buildVps : undefined, detail: raw ? `${fmt(sustained.indexedVps)} vs raw ${fmt(raw.buildVps)} vec/s (${fmt((100 * sustained.indexedVps) / raw.buildVps, 1)} %)` : "no raw run" },
    { name: "sustained: all searchable ≤ 1.25 × raw build time", pass: raw ? sustained.searchableSeconds <= 1.25 * raw.buildSeconds : undefined, detail: raw ? `${fmt(sustained.searchableSeconds, 1)} s vs ≤ ${fmt(1.25 * raw.buildSeconds, 1)} s` : "no raw run" },
    { name: "during import: search p95 < 20 ms", pass: sustained.searchDuring.p95 < 20, detail: `${fmt(sustained.searchDuring.p95, 2)} ms` },
    { name: "settled: p95 < 5 ms at recall@10 ≥ 0.95", pass: settled.latency.p95 < 5 && settled.recall >= 0.95, detail: `${fmt(settled.latency.p95, 2)} ms, recall ${fmt(settled.recall, 4)}` },
    {
      name: "while snapshots are saved (and uploaded): p95 < 10 ms",
      pass: settled.saves > 0 ? settled.duringEither.p95 < 10 : undefined,
      detail: `${fmt(settled.duringEither.p95, 2)} ms (saves ${fmt(settled.duringSaves.p95, 2)} ms over ${settled.saves}, uploads ${fmt(settled.duringUploads.p95, 2)} ms over ${settled.uploads})`,
    },
    { name: "resident bytes/vector ≤ 1.3 × usearch's own (growth over the empty node / over the raw build)", pass: rawPerVector ? perVector <= 1.3 * rawPerVector : undefined, detail: rawPerVector ? `${fmt(perVector)} vs usearch ${fmt(rawPerVector)} B (${fmt(perVector / rawPerVector, 2)} ×)` : `${fmt(perVector)} B/vector` },
    { name: "a snapshot save raises the peak by ≤ 20%", pass: settled.peakRssDuringSavesBytes <= 1.2 * settled.rssBytes, detail: `+${fmt((100 * (settled.peakRssDuringSavesBytes - settled.rssBytes)) / settled.rssBytes, 1)} %` },
    { name: "recall@10 within 0.005 of raw", pass: raw ? Math.abs(settled.recall - raw.recall) <= 0.005 : undefined, detail: raw ? `${fmt(settled.recall, 4)} vs raw ${fmt(raw.recall, 4)}` : "no raw run" },
  ];
}
