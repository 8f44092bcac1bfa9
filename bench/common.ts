/**
 * Shared pieces of the benchmark suites (bench/run.ts: core, bench/cluster.ts: cluster):
 * the dataset, printing, progress bars, cleanup on error / SIGINT, a node started in this
 * process or as a child, ingest through the API, search through the API, ground truth,
 * recall, the raw usearch baseline, CPU accounting per phase and the result files.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import cliProgress from "cli-progress";
import { InvalidArgumentError } from "commander";
import { pino } from "pino";
import { exactSearch, Index, MetricKind, ScalarKind, type BatchMatches, type Matches } from "usearch";
import { JadeClient } from "../src/client/client.ts";
import { Harness, waitFor } from "../test/support/harness.ts";
import { decodeReplicaMessage, encodeReplicaMessage, type ReplicaReadReply } from "../src/actors/replica/protocol.ts";
import { ErrorCode, errorMessage, JadeError, type Reply } from "../src/runtime/errors.ts";
import type { SearchResult, SessionToken } from "../src/runtime/schemas.ts";
import type { ClusterStatus } from "../src/runtime/status.ts";
import { subjects } from "../src/runtime/subjects.ts";
import { encodeBody, Encoding, float32Bytes } from "../src/runtime/encoding.ts";
import { JadeNode } from "../src/node.ts";
import { cpuDelta, cpuMsOf, cpuPhase, cpuSnapshot, type CpuSnapshot } from "./cpu.ts";
import { readIdxImages, type VectorSet } from "./datasets.ts";
import { delay } from "../src/runtime/async.ts";
import { yieldToEventLoop } from "./progress.ts";

// ---------------------------------------------------------------------------------------------
// Constants

export const datasetDir = "/usr/share/datasets/fashion-mnist";
export const trainPath = path.join(datasetDir, "train-images-idx3-ubyte.gz");
export const testPath = path.join(datasetDir, "t10k-images-idx3-ubyte.gz");
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const resultsDir = path.join(repoRoot, "bench", "results");
export const k = 10;
export const searchConcurrency = 8;
export const warmupQueries = 20;
export const index = { connectivity: 16, expansionAdd: 128, expansionSearch: 64 } as const;
export const snapshot = { everyEntries: 100_000, intervalMs: 3_600_000 } as const;
const rawAddChunk = 1_000;

export type Quantization = "f32" | "f16";
export type WriteConsistencyLevel = "log" | "quorum" | "all";

export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError("must be a positive integer");
  return n;
}

export function positiveIntList(value: string): number[] {
  const list = value.split(",").map((s) => Number(s.trim()));
  if (list.length === 0 || list.some((n) => !Number.isInteger(n) || n < 1)) throw new InvalidArgumentError("must be a comma-separated list of positive integers");
  return list;
}

// ---------------------------------------------------------------------------------------------
// Printing

export function log(line = ""): void {
  process.stdout.write(line + "\n");
}

export function section(title: string): void {
  log("");
  log(`== ${title} ${"=".repeat(Math.max(0, 70 - title.length))}`);
}

export function kv(key: string, value: unknown): void {
  log(`  ${key.padEnd(26)} ${String(value)}`);
}

export function fmt(n: number, digits = 0): string {
  return n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

export function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** A plain text table: first column left-aligned, the others right-aligned. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) => "  " + cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  log(line(header));
  log("  " + "-".repeat(widths.reduce((s, w) => s + w + 2, -2)));
  for (const row of rows) log(line(row));
}

export function machineInfo() {
  return {
    cpus: os.cpus().length,
    cpu_model: os.cpus()[0]?.model ?? null,
    memory_gib: round(os.totalmem() / 2 ** 30, 1),
    node: process.version,
    platform: `${os.platform()}-${os.arch()}`,
  };
}

/**
 * Measures how busy the machine was during a phase, split into our processes (`pids`) and
 * everything else (other jobs sharing the cores): in cores busy on average.
 */
export function contention(pids: Record<string, number | undefined>) {
  const end = cpuPhase(pids);
  return () => {
    const phase = end();
    const ours = cpuMsOf(phase.byProcess, "");
    return { ours_cores: round(ours / phase.wallMs, 2), others_cores: round(phase.restMs / phase.wallMs, 2) };
  };
}

export type Contention = ReturnType<ReturnType<typeof contention>>;

export function loadAverage(): number[] {
  return os.loadavg().map((x) => round(x, 2));
}

// ---------------------------------------------------------------------------------------------
// Statistics

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export type LatencyStats = ReturnType<typeof latencyStats>;

export function latencyStats(samples: readonly number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  const mean = sorted.reduce((s, x) => s + x, 0) / Math.max(1, sorted.length);
  return { p50: percentile(sorted, 50), p95: percentile(sorted, 95), p99: percentile(sorted, 99), mean, max: sorted[sorted.length - 1] ?? NaN };
}

// ---------------------------------------------------------------------------------------------
// Progress bars

/** Without a TTY (output piped to a log), print a progress line every 10 s instead of redrawing. */
export const notTty = { noTTYOutput: true, notTTYSchedule: 10_000 } as const;

export function progressBar(label: string): cliProgress.SingleBar {
  return new cliProgress.SingleBar(
    {
      format: `  ${label.padEnd(14)} [{bar}] {percentage}% | {value}/{total} | {rate} | eta {eta_formatted}`,
      barsize: 30,
      hideCursor: true,
      clearOnComplete: false,
      stream: process.stderr,
      fps: 5,
      ...notTty,
    },
    cliProgress.Presets.shades_classic,
  );
}

// ---------------------------------------------------------------------------------------------
// Request bodies: built before timing starts, in the SDK's encoding (msgpack with float32 bytes,
// upserts in columns: runtime/encoding.ts), sent with `requestRaw(…, Encoding.Msgpack)`.

export function upsertBody(train: VectorSet, from: number, to: number, consistency: WriteConsistencyLevel = "log", requestPrefix = "bench"): Uint8Array {
  const ids = Array.from({ length: to - from }, (_, i) => String(from + i));
  const vectors = float32Bytes(train.data.subarray(from * train.dimension, to * train.dimension));
  return encodeBody({ ids, vectors, consistency, requestId: `${requestPrefix}-${from}` }, Encoding.Msgpack);
}

export function searchBodies(queries: VectorSet): Uint8Array[] {
  return Array.from({ length: queries.count }, (_, i) =>
    encodeBody({ vector: float32Bytes(queries.data.slice(i * queries.dimension, (i + 1) * queries.dimension)), k }, Encoding.Msgpack),
  );
}

export function mergeToken(into: SessionToken, token: SessionToken): void {
  for (const [shard, seq] of Object.entries(token)) into[shard] = Math.max(into[shard] ?? 0, seq);
}

function matchesKeys(result: Matches | BatchMatches, query: number, count: number): bigint[] {
  return Array.from(result.keys.subarray(query * count, (query + 1) * count));
}

// ---------------------------------------------------------------------------------------------
// Cleanup (finally and SIGINT): steps run newest first, once.

const cleanups: (() => Promise<unknown>)[] = [];
let cleaning: Promise<void> | undefined;

/** An async step that runs at most once, however often it is called (early stop, then cleanup). */
export function once(step: () => Promise<unknown>): () => Promise<void> {
  let done: Promise<void> | undefined;
  return () => (done ??= step().then(() => undefined));
}

export function onCleanup(step: () => Promise<unknown>): void {
  cleanups.push(step);
}

export function runCleanups(): Promise<void> {
  cleaning ??= (async () => {
    while (cleanups.length > 0) {
      const step = cleanups.pop()!;
      await step().catch((err: unknown) => process.stderr.write(`cleanup: ${errorMessage(err)}\n`));
    }
  })();
  return cleaning;
}

/** Cleanups of one suite ran: a later suite (`--suite all`) may register and run its own. */
export function resetCleanups(): void {
  cleaning = undefined;
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    process.stderr.write(`\n${signal}: cleaning up…\n`);
    void runCleanups().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------------------
// Dataset

export interface Dataset {
  train: VectorSet;
  queries: VectorSet;
  /** Sizes of the whole files. */
  trainTotal: number;
  testTotal: number;
}

/** Fashion-MNIST: the first `limit` train vectors and the first `queries` test vectors; exits 2 if the files are missing. */
export async function loadDataset(limit: number, queries: number): Promise<Dataset> {
  for (const file of [trainPath, testPath]) {
    if (!existsSync(file)) {
      process.stderr.write(
        `error: ${file} is missing.\nThe benchmark uses Fashion-MNIST from the Debian package dataset-fashion-mnist:\n` +
          `  apt-get update && apt-get install -y dataset-fashion-mnist\n`,
      );
      process.exit(2);
    }
  }
  const fullTrain = await readIdxImages(trainPath);
  const fullTest = await readIdxImages(testPath);
  const n = Math.min(limit, fullTrain.count);
  const q = Math.min(queries, fullTest.count);
  return {
    train: { count: n, dimension: fullTrain.dimension, data: fullTrain.data.slice(0, n * fullTrain.dimension) },
    queries: { count: q, dimension: fullTest.dimension, data: fullTest.data.slice(0, q * fullTest.dimension) },
    trainTotal: fullTrain.count,
    testTotal: fullTest.count,
  };
}

// ---------------------------------------------------------------------------------------------
// The node: in this process, or a child `jade start`

export type NodeMode = "inproc" | "child";

export interface RunningNode {
  mode: NodeMode;
  /** The child's pid (child mode). */
  pid?: number;
  /** Its HTTP base URL, when started with `--http-port`. */
  httpUrl?: string;
  stop(): Promise<void>;
}

/** `args`: more `jade start` options (child mode only). */
export async function startNode(mode: NodeMode, natsUrl: string, dataDir: string, args: readonly string[] = []): Promise<RunningNode> {
  if (mode === "inproc") {
    const node = await JadeNode.start({
      servers: [natsUrl],
      dataDir,
      log: pino({ level: process.env.JADE_LOG_LEVEL ?? "warn", base: { pid: process.pid } }, pino.destination(2)),
    });
    return { mode, stop: () => node.stop() };
  }
  const child: ChildProcess = spawn(
    process.execPath,
    [...process.execArgv.filter((a) => a.startsWith("--cpu-prof")), path.join(repoRoot, "bin", "jade.mjs"), "start", "--nats", natsUrl, "--data", dataDir, ...args],
    { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, JADE_LOG_LEVEL: process.env.JADE_LOG_LEVEL ?? "warn" } },
  );
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const readyLine = await new Promise<string>((resolve, reject) => {
    const onExit = (code: number | null, signal: string | null) => {
      clearTimeout(timer);
      reject(new Error(`jade start exited early (code ${code}, signal ${signal})`));
    };
    const timer = setTimeout(() => {
      child.off("exit", onExit);
      child.kill("SIGKILL");
      reject(new Error("jade start: not ready after 60 s"));
    }, 60_000);
    child.once("exit", onExit);
    createInterface({ input: child.stdout! }).on("line", (line) => {
      if (/\bready\b/.test(line)) {
        clearTimeout(timer);
        child.off("exit", onExit);
        resolve(line);
      }
    });
  });
  return {
    mode,
    pid: child.pid,
    httpUrl: /http=(\S+)/.exec(readyLine)?.[1],
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// CPU accounting per phase

export interface PhaseCpu {
  phase: string;
  wallMs: number;
  /** Units of work in the phase (vectors or queries), for per-unit figures. */
  units: number;
  unit: string;
  cpu: CpuSnapshot;
}

export const phases: PhaseCpu[] = [];
let trackedPids: Record<string, number | undefined> = { bench: process.pid };

export function setTrackedPids(pids: Record<string, number | undefined>): void {
  trackedPids = pids;
}

export async function measured<T>(phase: string, units: number, unit: string, body: () => Promise<T> | T): Promise<T> {
  const before = cpuSnapshot(trackedPids);
  const started = performance.now();
  const value = await body();
  phases.push({ phase, wallMs: performance.now() - started, units, unit, cpu: cpuDelta(before, cpuSnapshot(trackedPids)) });
  return value;
}

export function printCpu(): void {
  section("CPU time per phase (from /proc; ms of CPU per 1000 units)");
  const names = [...new Set(phases.flatMap((p) => Object.keys(p.cpu)))];
  const header = ["phase", "wall s", ...names.flatMap((n) => [`${n} main`, `${n} other`]), "total", "cores busy"];
  const widths = [16, 8, ...names.flatMap(() => [12, 12]), 10, 10];
  const line = (cells: readonly string[]) => "  " + cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" ");
  log(line(header));
  for (const p of phases) {
    const per = (ms: number) => fmt((ms * 1000) / Math.max(1, p.units), 0);
    let total = 0;
    const cells = names.flatMap((n) => {
      const c = p.cpu[n];
      if (!c) return ["", ""];
      total += c.mainMs + c.otherMs;
      return [per(c.mainMs), per(c.otherMs)];
    });
    log(line([`${p.phase} (${p.unit})`, fmt(p.wallMs / 1000, 2), ...cells, per(total), fmt(total / p.wallMs, 2)]));
  }
  log("  (bench = this process: in inproc mode it hosts the node too; main = its JS main thread, other = worker/GC/libuv threads)");
}

export function phasesJson() {
  return phases.map((p) => ({
    phase: p.phase,
    unit: p.unit,
    wall_s: round(p.wallMs / 1000, 2),
    ...Object.fromEntries(
      Object.entries(p.cpu).flatMap(([name, c]) => [
        [`${name}_main`, round((c.mainMs * 1000) / p.units, 1)],
        [`${name}_other`, round((c.otherMs * 1000) / p.units, 1)],
      ]),
    ),
  }));
}

// ---------------------------------------------------------------------------------------------
// Ground truth and recall

export function groundTruth(train: VectorSet, queries: VectorSet): bigint[][] {
  const bar = progressBar("ground truth");
  bar.start(queries.count, 0, { rate: "" });
  // exactSearch ignores byteOffset: hand it buffers that start at 0 (slice, not subarray). It also
  // allocates 16 bytes × N × Q per call, so keep query batches small.
  const dataset = train.data.byteOffset === 0 && train.data.length * 4 === train.data.buffer.byteLength ? train.data : train.data.slice();
  const batch = 16;
  const truth: bigint[][] = [];
  const started = performance.now();
  for (let q = 0; q < queries.count; q += batch) {
    const n = Math.min(batch, queries.count - q);
    const block = queries.data.slice(q * queries.dimension, (q + n) * queries.dimension);
    const result = exactSearch(dataset, block, train.dimension, k, MetricKind.L2sq, 0);
    for (let i = 0; i < n; i++) truth.push(matchesKeys(result, i, k));
    bar.update(q + n, { rate: `${fmt((q + n) / ((performance.now() - started) / 1000))} q/s` });
  }
  bar.stop();
  return truth;
}

export function recallOf(found: readonly (readonly bigint[])[], truth: readonly bigint[][]): number {
  let sum = 0;
  truth.forEach((t, q) => {
    const expected = new Set(t);
    const hits = found[q] ?? [];
    let n = 0;
    for (const key of hits.slice(0, k)) if (expected.has(key)) n++;
    sum += n / k;
  });
  return sum / truth.length;
}

// ---------------------------------------------------------------------------------------------
// Cluster status

function collectionStatus(status: ClusterStatus, collection: string) {
  return status.collections.find((x) => x.name === collection);
}

/** Points applied so far: per shard, the most advanced replica's count. */
export function sumCounts(status: ClusterStatus, collection: string): number {
  const c = collectionStatus(status, collection);
  if (!c) return 0;
  return c.shards.reduce((sum, s) => sum + Math.max(0, ...s.replicas.map((r) => r.count ?? 0)), 0);
}

/** Every shard has all its replicas placed, serving, with no lag. */
export function allCaughtUp(status: ClusterStatus, collection: string): boolean {
  const c = collectionStatus(status, collection);
  return c !== undefined && c.shards.every((s) => s.replicas.length >= Math.max(1, c.replicas) && s.replicas.every((r) => r.lag === 0 && r.state === "serving"));
}

/** Waits until every shard's replicas serve (a new, empty collection). */
export async function waitServing(client: JadeClient, collection: string, timeoutMs = 60_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const status = await client.clusterStatus().catch(() => undefined);
    if (status && allCaughtUp(status, collection)) return;
    if (performance.now() > deadline) throw new Error(`collection ${collection} not served after ${timeoutMs / 1000} s: ${JSON.stringify(status)}`);
    await delay(100);
  }
}

/**
 * Resolves once every replica of every shard applied at least the token's sequence for its
 * shard: a count sent to each replica directly (`jade.replica.<node>.<collection>.<shard>.count`)
 * with that minimum sequence, which the replica answers only once it applied it.
 */
async function waitAllReplicasApplied(client: JadeClient, collection: string, token: SessionToken, deadline: number): Promise<void> {
  const config = await client.getCollection(collection);
  const status = await client.clusterStatus();
  const c = collectionStatus(status, collection);
  if (!c) throw new Error(`collection ${collection} is not in the cluster status`);
  const waits = c.shards.flatMap((s) =>
    s.replicas.map(async (r) => {
      const body = encodeReplicaMessage({ uid: config.uid, minSeq: token[String(s.shard)] ?? 0, timeoutMs: 5_000, count: {} });
      for (;;) {
        if (performance.now() > deadline) throw new Error(`replica ${r.node} of ${collection}/${s.shard} did not apply the writes in time`);
        try {
          const msg = await client.nc.request(subjects.replica(r.node, collection, s.shard, "count"), body, { timeout: 6_000 });
          if (decodeReplicaMessage<ReplicaReadReply>(msg.data).ok) return;
        } catch {
          // Timeout or no responder (replica still loading): ask again.
        }
        await delay(20);
      }
    }),
  );
  await Promise.all(waits);
}

/** Waits until no replica of the collection has points its graph has not absorbed (status `pending`); returns when. */
export async function waitIndexed(client: JadeClient, collection: string, deadline: number): Promise<number> {
  for (;;) {
    if (performance.now() > deadline) throw new Error(`the graphs of ${collection} did not absorb every point in time`);
    const c = collectionStatus(await client.clusterStatus(), collection);
    if (c && c.shards.every((s) => s.replicas.length > 0 && s.replicas.every((r) => r.pending === 0 && r.lag === 0))) return performance.now();
    await delay(100);
  }
}

// ---------------------------------------------------------------------------------------------
// Ingest through the API

export interface IngestOptions {
  collection: string;
  batch: number;
  concurrency: number;
  consistency: WriteConsistencyLevel;
  /** Also wait until every replica (not only the one a session read picks) applied every write. */
  waitAllReplicas?: boolean;
  /** Label prefix of the progress bars. */
  label?: string;
}

export interface IngestResult {
  ackedVps: number;
  /** First request → every point searchable (applied; the fresh buffer scans what the graph has not absorbed). */
  ingestVps: number;
  /** First request → every replica's graph absorbed every point. */
  indexedVps: number;
  ackedSeconds: number;
  searchableSeconds: number;
  indexedSeconds: number;
  /** Seconds until every replica applied everything (waitAllReplicas). */
  replicatedSeconds?: number;
  replicatedVps?: number;
  requestMs: LatencyStats;
  bodyBytesMean: number;
  buildMs: number;
  token: SessionToken;
}

/**
 * Upserts every point of `train` in batches, `concurrency` requests in flight →
 * acked (first request → last ack) and searchable (first request → a session-consistent
 * count sees all N points).
 */
export async function ingest(client: JadeClient, train: VectorSet, opts: IngestOptions): Promise<IngestResult> {
  const n = train.count;
  const batches = Math.ceil(n / opts.batch);
  const subject = subjects.collection(opts.collection, "upsert");
  const token: SessionToken = {};
  const requestMs: number[] = [];
  const label = opts.label ?? "";
  let next = 0;
  let acked = 0;
  let bodyBytes = 0;
  let buildMs = 0;

  const multibar = new cliProgress.MultiBar(
    {
      format: "  {label} [{bar}] {percentage}% | {value}/{total} | {rate}",
      barsize: 30,
      hideCursor: true,
      clearOnComplete: false,
      stream: process.stderr,
      fps: 5,
      ...notTty,
    },
    cliProgress.Presets.shades_classic,
  );
  const ackBar = multibar.create(n, 0, { label: `${label}acked`.padEnd(14), rate: "" });
  const appliedBar = multibar.create(n, 0, { label: `${label}applied`.padEnd(14), rate: "" });

  const started = performance.now();
  const rate = (count: number) => `${fmt(count / ((performance.now() - started) / 1000))} vec/s`;

  // Progress of the replicas (sum of shard counts), polled while writes go on; one poll at a time.
  let polling = true;
  const poller = (async () => {
    while (polling) {
      try {
        const status = await client.clusterStatus();
        const applied = sumCounts(status, opts.collection);
        appliedBar.update(applied, { rate: rate(applied) });
      } catch {
        // The status is only for the progress bar.
      }
      await delay(500);
    }
  })();
  const stopPolling = async () => {
    polling = false;
    await poller;
  };

  const writer = async () => {
    for (;;) {
      const b = next++;
      if (b >= batches) return;
      const from = b * opts.batch;
      const to = Math.min(n, from + opts.batch);
      const t0 = performance.now();
      const body = upsertBody(train, from, to, opts.consistency, opts.collection);
      const t1 = performance.now();
      buildMs += t1 - t0;
      bodyBytes += body.byteLength;
      let reply: Reply<unknown> | undefined;
      for (let attempt = 0; attempt < 5; attempt++) {
        reply = await client.requestRaw(subject, body, 120_000, undefined, Encoding.Msgpack);
        if (reply.ok || !reply.error.retryable) break;
        await delay(200 * (attempt + 1));
      }
      if (!reply!.ok) throw new Error(`upsert of points ${from}..${to - 1} failed: ${reply!.error.code}: ${reply!.error.message}`);
      requestMs.push(performance.now() - t1);
      mergeToken(token, (reply!.result as { token: SessionToken }).token);
      acked += to - from;
      ackBar.update(acked, { rate: rate(acked) });
    }
  };
  try {
    await Promise.all(Array.from({ length: opts.concurrency }, writer));
    const ackedAt = performance.now();

    // Searchable: a session-consistent count (each shard waits until it applied our last write) sees every point.
    let searchableAt = 0;
    const deadline = performance.now() + 30 * 60_000;
    while (searchableAt === 0) {
      if (performance.now() > deadline) throw new Error("points did not all become searchable within 30 minutes");
      const result = await client.count(opts.collection, { consistency: "session", token, timeoutMs: 5_000 }).catch(() => undefined);
      if (result && !result.partial && result.count === n) searchableAt = performance.now();
    }
    let replicatedAt: number | undefined;
    if (opts.waitAllReplicas) {
      await waitAllReplicasApplied(client, opts.collection, token, deadline);
      replicatedAt = performance.now();
    }
    await stopPolling();
    appliedBar.update(n, { rate: `${fmt(n / ((searchableAt - started) / 1000))} vec/s` });
    multibar.stop();
    // Indexed: every replica's graph absorbed its fresh buffer (searchable came first, exactly).
    const indexedAt = await waitIndexed(client, opts.collection, deadline);

    return {
      ackedVps: n / ((ackedAt - started) / 1000),
      ingestVps: n / ((searchableAt - started) / 1000),
      indexedVps: n / ((indexedAt - started) / 1000),
      ackedSeconds: (ackedAt - started) / 1000,
      searchableSeconds: (searchableAt - started) / 1000,
      indexedSeconds: (indexedAt - started) / 1000,
      ...(replicatedAt === undefined ? {} : { replicatedSeconds: (replicatedAt - started) / 1000, replicatedVps: n / ((replicatedAt - started) / 1000) }),
      requestMs: latencyStats(requestMs),
      bodyBytesMean: bodyBytes / batches,
      buildMs,
      token,
    };
  } catch (err) {
    await stopPolling();
    multibar.stop();
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Search through the API

export interface SearchRun {
  latencies: LatencyStats;
  qps: number;
  found: bigint[][];
}

export async function searchApi(client: JadeClient, collection: string, bodies: readonly Uint8Array[], concurrency: number, label: string): Promise<SearchRun> {
  const subject = subjects.collection(collection, "search");
  const found: bigint[][] = new Array(bodies.length);
  const samples: number[] = new Array(bodies.length);
  const bar = progressBar(label);
  bar.start(bodies.length, 0, { rate: "" });
  let next = 0;
  let done = 0;
  const started = performance.now();
  const loop = async () => {
    for (;;) {
      const q = next++;
      if (q >= bodies.length) return;
      const t0 = performance.now();
      const reply = await client.requestRaw(subject, bodies[q]!, 30_000, undefined, Encoding.Msgpack);
      samples[q] = performance.now() - t0;
      if (!reply.ok) throw new Error(`search ${q} failed: ${reply.error.code}: ${reply.error.message}`);
      const result = reply.result as SearchResult;
      if (result.partial) throw new Error(`search ${q} was partial: ${JSON.stringify(result.shards)}`);
      found[q] = result.hits.map((h) => BigInt(h.id));
      done++;
      if (done % 25 === 0 || done === bodies.length) bar.update(done, { rate: `${fmt(done / ((performance.now() - started) / 1000))} q/s` });
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, loop));
  } finally {
    bar.stop();
  }
  const elapsed = (performance.now() - started) / 1000;
  return { latencies: latencyStats(samples), qps: bodies.length / elapsed, found };
}

// ---------------------------------------------------------------------------------------------
// A local cluster of child processes

export interface LocalCluster {
  urls: string[];
  /** `nats1`…, `node_n1`… → pid, for cpuSnapshot. */
  pids: Record<string, number | undefined>;
  client: JadeClient;
  /** Closes the client (also run at the suite's cleanup); call it before closing the harness. */
  closeClient: () => Promise<void>;
}

/**
 * `size` nats-servers (one alone for a single node, a routed cluster otherwise) and `size`
 * `jade start` children on loopback, node i preferring server i as on separate machines;
 * resolves once every node is live and a coordinator is elected. `harness` owns them all.
 */
export async function startLocalCluster(
  harness: Harness,
  size: number,
  options: { streamReplicas: number; nodeDeadAfterMs: number; clientName: string },
): Promise<LocalCluster> {
  const servers = size === 1 ? [await harness.nats()] : await harness.natsCluster(size);
  const urls = servers.map((s) => s.url);
  const pids: Record<string, number | undefined> = {};
  servers.forEach((s, i) => (pids[`nats${i + 1}`] = s.process.pid));
  await Promise.all(
    Array.from({ length: size }, async (_, i) => {
      const id = `n${i + 1}`;
      const order = [...urls.slice(i), ...urls.slice(0, i)].join(",");
      const data = await harness.tempDir(`jade-bench-${id}-`);
      const args = ["start", "--nats", order, "--node-id", id, "--data", data, "--stream-replicas", String(options.streamReplicas), "--node-dead-after-ms", String(options.nodeDeadAfterMs)];
      pids[`node_${id}`] = (await harness.spawnJade(args)).process.pid;
    }),
  );
  const client = await JadeClient.connect({ servers: urls, name: options.clientName, timeoutMs: 120_000 });
  const closeClient = once(() => client.close());
  onCleanup(closeClient);
  await waitFor(
    async () => {
      const status = await client.clusterStatus();
      return status.coordinator !== null && status.nodes.filter((n) => n.live).length === size;
    },
    { what: `${size} live nodes and a coordinator`, timeoutMs: 60_000 },
  );
  return { urls, pids, client, closeClient };
}

// ---------------------------------------------------------------------------------------------
// Raw usearch baseline (this process)

export interface RawResult {
  /** QPS of one batched search of every query on all `addThreads` threads. */
  qpsAllThreads: number;
  ingestVps: number;
  buildSeconds: number;
  addThreads: number;
  latencies: LatencyStats;
  qps: number;
  recall: number;
}

/** One usearch Index over `train` (the collections' index params), searched one query at a time with 1 thread. */
export async function rawUsearch(train: VectorSet, queries: VectorSet, quantization: Quantization, truth: bigint[][], addThreads: number): Promise<RawResult> {
  let raw: Index | undefined = new Index({
    dimensions: train.dimension,
    metric: MetricKind.L2sq,
    quantization: quantization === "f16" ? ScalarKind.F16 : ScalarKind.F32,
    connectivity: index.connectivity,
    expansion_add: index.expansionAdd,
    expansion_search: index.expansionSearch,
    multi: false,
  });
  const bar = progressBar("raw add");
  bar.start(train.count, 0, { rate: "" });
  const started = performance.now();
  const before = cpuSnapshot(trackedPids);
  for (let from = 0; from < train.count; from += rawAddChunk) {
    const to = Math.min(train.count, from + rawAddChunk);
    const keys = new BigUint64Array(to - from);
    for (let i = from; i < to; i++) keys[i - from] = BigInt(i);
    // slice(): usearch reads typed arrays from the start of their buffer.
    raw.add(keys, train.data.slice(from * train.dimension, to * train.dimension), addThreads);
    bar.update(to, { rate: `${fmt(to / ((performance.now() - started) / 1000))} vec/s` });
  }
  const buildSeconds = (performance.now() - started) / 1000;
  phases.push({ phase: "raw add", wallMs: buildSeconds * 1000, units: train.count, unit: "vectors", cpu: cpuDelta(before, cpuSnapshot(trackedPids)) });
  bar.stop();

  const vectors = Array.from({ length: queries.count }, (_, q) => queries.data.slice(q * queries.dimension, (q + 1) * queries.dimension));
  for (let q = 0; q < Math.min(warmupQueries, vectors.length); q++) raw.search(vectors[q]!, k, 1);
  const samples: number[] = [];
  const found: bigint[][] = [];
  const searchBefore = cpuSnapshot(trackedPids);
  const searchStarted = performance.now();
  for (const v of vectors) {
    const t0 = performance.now();
    const result = raw.search(v, k, 1);
    samples.push(performance.now() - t0);
    found.push(Array.from(result.keys));
  }
  const qps = vectors.length / ((performance.now() - searchStarted) / 1000);
  phases.push({ phase: "raw search c=1", wallMs: performance.now() - searchStarted, units: vectors.length, unit: "queries", cpu: cpuDelta(searchBefore, cpuSnapshot(trackedPids)) });
  // Every core at once: one batched search over all queries, `addThreads` threads (the add reserved that many contexts).
  const batchStarted = performance.now();
  raw.search(queries.data.slice(0, queries.count * queries.dimension), k, addThreads);
  const qpsAllThreads = vectors.length / ((performance.now() - batchStarted) / 1000);
  raw = undefined; // let the native index be collected
  (globalThis as { gc?: () => void }).gc?.();
  return { ingestVps: train.count / buildSeconds, buildSeconds, addThreads, latencies: latencyStats(samples), qps, qpsAllThreads, recall: recallOf(found, truth) };
}

// ---------------------------------------------------------------------------------------------
// Result files

/** Writes bench/results/<timestamp>-<suite>.json and bench/results/latest-<suite>.json; returns their paths (relative to the repo). */
export async function writeResults(suite: string, startedAt: Date, result: unknown): Promise<string[]> {
  await mkdir(resultsDir, { recursive: true });
  const stamp = startedAt.toISOString().replace(/:/g, "-");
  const file = path.join(resultsDir, `${stamp}-${suite}.json`);
  const latest = path.join(resultsDir, `latest-${suite}.json`);
  const text = JSON.stringify(result, null, 2) + "\n";
  await writeFile(file, text);
  await writeFile(latest, text);
  return [path.relative(repoRoot, file), path.relative(repoRoot, latest)];
}

/** Retries a write the node paced (rate_limited: its index is absorbing). */
export async function retryPaced<T>(send: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      return await send();
    } catch (err) {
      if (!(err instanceof JadeError) || err.code !== ErrorCode.RateLimited) throw err;
      await yieldToEventLoop();
    }
  }
}
