/**
 * `npm run bench`: the core benchmark on Fashion-MNIST (784-d, L2).
 *
 * One run measures, through the NATS API of one JadeNode (1 shard by default, like a new collection):
 *   - ingest: upserts of B points (consistency "log"), C requests in flight →
 *     acked_vps (first request → last ack) and ingest_vps (first request → every
 *     point searchable: session-consistent count == N and replica lag 0);
 *   - search: k=10 one request at a time (p50/p95/p99, QPS) and with 8 loops in
 *     flight (QPS); recall@10 against exact ground truth;
 * and, after the node is stopped, the same work on a bare usearch Index in this
 * process (the limit). It prints a comparison with the targets and writes
 * bench/results/<timestamp>-core.json and bench/results/latest-core.json.
 *
 *   npx tsx bench/run.ts [--limit N] [--queries Q] [--shards S] [--quantization f32|f16]
 *                        [--batch B] [--concurrency C] [--node-mode inproc|child]
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import cliProgress from "cli-progress";
import { Command, InvalidArgumentError, Option } from "commander";
import { pino } from "pino";
import { exactSearch, Index, MetricKind, ScalarKind, type BatchMatches, type Matches } from "usearch";
import { JadeClient } from "../src/client/client.ts";
import { startEmbeddedNats, NatsServerMissingError, type EmbeddedNats } from "../src/runtime/embedded-nats.ts";
import type { Reply } from "../src/runtime/errors.ts";
import { limits } from "../src/runtime/limits.ts";
import type { ClusterStatus, SearchResult, SessionToken } from "../src/runtime/schemas.ts";
import { subjects } from "../src/runtime/subjects.ts";
import { JadeNode } from "../src/node.ts";
import { cpuDelta, cpuSnapshot, type CpuSnapshot } from "./cpu.ts";
import { readIdxImages, type VectorSet } from "./datasets.ts";

// ---------------------------------------------------------------------------------------------
// Options

const datasetDir = "/usr/share/datasets/fashion-mnist";
const trainPath = path.join(datasetDir, "train-images-idx3-ubyte.gz");
const testPath = path.join(datasetDir, "t10k-images-idx3-ubyte.gz");
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const resultsDir = path.join(repoRoot, "bench", "results");
const collection = "bench";
const k = 10;
const searchConcurrency = 8;
const warmupQueries = 20;
const index = { connectivity: 16, expansionAdd: 128, expansionSearch: 64 } as const;
const snapshot = { everyEntries: 100_000, intervalMs: 3_600_000 } as const;
/**
 * The node builds each shard on its own worker, single-threaded, with one worker per core: it
 * builds with min(shards, cores) threads, and the raw build gets exactly as many ("same threads").
 */
function buildThreads(shards: number): number {
  return Math.max(1, Math.min(shards, os.availableParallelism()));
}
const rawAddChunk = 1_000;

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError("must be a positive integer");
  return n;
}

const program = new Command()
  .name("bench")
  .description("JadeVectorDB core benchmark on Fashion-MNIST (ours vs raw usearch)")
  .option("--limit <n>", "train vectors to ingest (max 60000)", positiveInt, 60_000)
  .option("--queries <q>", "test vectors to search (max 10000)", positiveInt, 1_000)
  .option("--shards <s>", "shards of the collection", positiveInt, 1)
  .addOption(new Option("--quantization <q>", "index quantization").choices(["f32", "f16"]).default("f32"))
  .option("--batch <b>", "points per upsert request", positiveInt, 1_000)
  .option("--concurrency <c>", "upsert requests in flight", positiveInt, 4)
  .addOption(new Option("--node-mode <mode>", "run the node in this process or as a child process").choices(["inproc", "child"]).default("inproc"))
  .option("--no-raw", "skip the raw usearch baseline")
  .showHelpAfterError();

interface Options {
  limit: number;
  queries: number;
  shards: number;
  quantization: "f32" | "f16";
  batch: number;
  concurrency: number;
  nodeMode: "inproc" | "child";
  raw: boolean;
}

// ---------------------------------------------------------------------------------------------
// Small helpers

function log(line = ""): void {
  process.stdout.write(line + "\n");
}

function section(title: string): void {
  log("");
  log(`== ${title} ${"=".repeat(Math.max(0, 70 - title.length))}`);
}

function kv(key: string, value: unknown): void {
  log(`  ${key.padEnd(26)} ${String(value)}`);
}

function fmt(n: number, digits = 0): string {
  return n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

function latencyStats(samples: readonly number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  const mean = sorted.reduce((s, x) => s + x, 0) / Math.max(1, sorted.length);
  return { p50: percentile(sorted, 50), p95: percentile(sorted, 95), p99: percentile(sorted, 99), mean, max: sorted[sorted.length - 1] ?? NaN };
}

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** Without a TTY (output piped to a log), print a progress line every 10 s instead of redrawing. */
const notTty = { noTTYOutput: true, notTTYSchedule: 10_000 } as const;

function progressBar(label: string): cliProgress.SingleBar {
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

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * JSON text of float32 values, shortest form that parses back to the same float32.
 * JSON.stringify of a float32 widened to double prints up to 17 digits (0.003921568859368563);
 * 9 significant digits always round-trip a float32, usually fewer do. Memoised per value:
 * Fashion-MNIST has only 256 distinct values, so building a 1000-point request is cheap.
 */
const numberText = new Map<number, string>();
function float32Text(f: number): string {
  let text = numberText.get(f);
  if (text !== undefined) return text;
  text = String(f);
  for (let p = 1; p <= 9; p++) {
    const candidate = Number(f.toPrecision(p));
    if (Math.fround(candidate) === f) {
      text = String(candidate);
      break;
    }
  }
  if (numberText.size < 1 << 16) numberText.set(f, text);
  return text;
}

function vectorJson(data: Float32Array, row: number, dimension: number): string {
  const parts = new Array<string>(dimension);
  const base = row * dimension;
  for (let j = 0; j < dimension; j++) parts[j] = float32Text(data[base + j]!);
  return `[${parts.join(",")}]`;
}

function upsertBody(train: VectorSet, from: number, to: number): string {
  const points = new Array<string>(to - from);
  for (let i = from; i < to; i++) points[i - from] = `{"id":"${i}","vector":${vectorJson(train.data, i, train.dimension)}}`;
  return `{"points":[${points.join(",")}],"consistency":"log","requestId":"bench-${from}"}`;
}

function mergeToken(into: SessionToken, token: SessionToken): void {
  for (const [shard, seq] of Object.entries(token)) into[shard] = Math.max(into[shard] ?? 0, seq);
}

function matchesKeys(result: Matches | BatchMatches, query: number, count: number): bigint[] {
  return Array.from(result.keys.subarray(query * count, (query + 1) * count));
}

// ---------------------------------------------------------------------------------------------
// Cleanup (finally and SIGINT)

const cleanups: (() => Promise<void>)[] = [];
let cleaning: Promise<void> | undefined;

function runCleanups(): Promise<void> {
  cleaning ??= (async () => {
    while (cleanups.length > 0) {
      const step = cleanups.pop()!;
      await step().catch((err: unknown) => process.stderr.write(`cleanup: ${(err as Error)?.message ?? err}\n`));
    }
  })();
  return cleaning;
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    process.stderr.write(`\n${signal}: cleaning up…\n`);
    void runCleanups().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------------------
// The node: in this process, or a child `jade start`

interface RunningNode {
  mode: "inproc" | "child";
  /** The child's pid (child mode). */
  pid?: number;
  stop(): Promise<void>;
}

async function startNode(mode: "inproc" | "child", natsUrl: string, dataDir: string): Promise<RunningNode> {
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
    [...process.execArgv.filter((a) => a.startsWith("--cpu-prof")), path.join(repoRoot, "bin", "jade.mjs"), "start", "--nats", natsUrl, "--data", dataDir],
    { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, JADE_LOG_LEVEL: process.env.JADE_LOG_LEVEL ?? "warn" } },
  );
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await new Promise<void>((resolve, reject) => {
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
        resolve();
      }
    });
  });
  return {
    mode,
    pid: child.pid,
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

interface PhaseCpu {
  phase: string;
  wallMs: number;
  /** Units of work in the phase (vectors or queries), for per-unit figures. */
  units: number;
  unit: string;
  cpu: CpuSnapshot;
}

const phases: PhaseCpu[] = [];
let trackedPids: Record<string, number | undefined> = { bench: process.pid };

async function measured<T>(phase: string, units: number, unit: string, body: () => Promise<T> | T): Promise<T> {
  const before = cpuSnapshot(trackedPids);
  const started = performance.now();
  const value = await body();
  phases.push({ phase, wallMs: performance.now() - started, units, unit, cpu: cpuDelta(before, cpuSnapshot(trackedPids)) });
  return value;
}

function printCpu(): void {
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

// ---------------------------------------------------------------------------------------------
// Phases

function groundTruth(train: VectorSet, queries: VectorSet): bigint[][] {
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

function recallOf(found: readonly (readonly bigint[])[], truth: readonly bigint[][]): number {
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

interface IngestResult {
  ackedVps: number;
  ingestVps: number;
  ackedSeconds: number;
  searchableSeconds: number;
  requestMs: ReturnType<typeof latencyStats>;
  bodyBytesMean: number;
  buildMs: number;
  token: SessionToken;
}

async function ingest(client: JadeClient, train: VectorSet, opts: Options): Promise<IngestResult> {
  const n = train.count;
  const batches = Math.ceil(n / opts.batch);
  const subject = subjects.collection(collection, "upsert");
  const token: SessionToken = {};
  const requestMs: number[] = [];
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
  const ackBar = multibar.create(n, 0, { label: "acked         ", rate: "" });
  const appliedBar = multibar.create(n, 0, { label: "applied       ", rate: "" });

  const started = performance.now();
  const rate = (count: number) => `${fmt(count / ((performance.now() - started) / 1000))} vec/s`;

  // Progress of the replicas (sum of shard counts), polled while writes go on; one poll at a time.
  let polling = true;
  const poller = (async () => {
    while (polling) {
      try {
        const status = await client.clusterStatus();
        const applied = sumCounts(status);
        appliedBar.update(applied, { rate: rate(applied) });
      } catch {
        // The status is only for the progress bar.
      }
      await sleep(500);
    }
  })();

  const writer = async () => {
    for (;;) {
      const b = next++;
      if (b >= batches) return;
      const from = b * opts.batch;
      const to = Math.min(n, from + opts.batch);
      const t0 = performance.now();
      const body = Buffer.from(upsertBody(train, from, to));
      const t1 = performance.now();
      buildMs += t1 - t0;
      bodyBytes += body.byteLength;
      let reply: Reply<unknown> | undefined;
      for (let attempt = 0; attempt < 5; attempt++) {
        reply = await client.requestRaw(subject, body, 120_000);
        if (reply.ok || !reply.error.retryable) break;
        await sleep(200 * (attempt + 1));
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
  } catch (err) {
    polling = false;
    multibar.stop();
    throw err;
  }
  const ackedAt = performance.now();

  // Searchable: a session-consistent count (each shard waits until it applied our last write) sees every point.
  let searchableAt = 0;
  const deadline = performance.now() + 30 * 60_000;
  while (searchableAt === 0) {
    if (performance.now() > deadline) throw new Error("points did not all become searchable within 30 minutes");
    const result = await client.count(collection, { consistency: "session", token, timeoutMs: 5_000 }).catch(() => undefined);
    if (result && !result.partial && result.count === n) searchableAt = performance.now();
  }
  polling = false;
  await poller;
  appliedBar.update(n, { rate: `${fmt(n / ((searchableAt - started) / 1000))} vec/s` });
  multibar.stop();

  return {
    ackedVps: n / ((ackedAt - started) / 1000),
    ingestVps: n / ((searchableAt - started) / 1000),
    ackedSeconds: (ackedAt - started) / 1000,
    searchableSeconds: (searchableAt - started) / 1000,
    requestMs: latencyStats(requestMs),
    bodyBytesMean: bodyBytes / batches,
    buildMs,
    token,
  };
}

function sumCounts(status: ClusterStatus): number {
  const c = status.collections.find((x) => x.name === collection);
  if (!c) return 0;
  return c.shards.reduce((sum, s) => sum + Math.max(0, ...s.replicas.map((r) => r.count ?? 0)), 0);
}

function allCaughtUp(status: ClusterStatus): boolean {
  const c = status.collections.find((x) => x.name === collection);
  return c !== undefined && c.shards.every((s) => s.replicas.length > 0 && s.replicas.every((r) => r.lag === 0 && r.state === "serving"));
}

interface SearchRun {
  latencies: ReturnType<typeof latencyStats>;
  qps: number;
  found: bigint[][];
}

async function searchApi(client: JadeClient, bodies: readonly Buffer[], concurrency: number, label: string): Promise<SearchRun> {
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
      const reply = await client.requestRaw(subject, bodies[q]!, 30_000);
      samples[q] = performance.now() - t0;
      if (!reply.ok) throw new Error(`search ${q} failed: ${reply.error.code}: ${reply.error.message}`);
      const result = reply.result as SearchResult;
      if (result.partial) throw new Error(`search ${q} was partial: ${JSON.stringify(result.shards)}`);
      found[q] = result.hits.map((h) => BigInt(h.id));
      done++;
      if (done % 25 === 0 || done === bodies.length) bar.update(done, { rate: `${fmt(done / ((performance.now() - started) / 1000))} q/s` });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  const elapsed = (performance.now() - started) / 1000;
  bar.stop();
  return { latencies: latencyStats(samples), qps: bodies.length / elapsed, found };
}

interface RawResult {
  ingestVps: number;
  buildSeconds: number;
  latencies: ReturnType<typeof latencyStats>;
  qps: number;
  recall: number;
}

async function rawUsearch(train: VectorSet, queries: VectorSet, quantization: "f32" | "f16", truth: bigint[][], addThreads: number): Promise<RawResult> {
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
  raw = undefined; // let the native index be collected
  (globalThis as { gc?: () => void }).gc?.();
  return { ingestVps: train.count / buildSeconds, buildSeconds, latencies: latencyStats(samples), qps, recall: recallOf(found, truth) };
}

// ---------------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  const opts = program.parse(process.argv).opts<Options>();
  const startedAt = new Date();
  const loadAtStart = os.loadavg().map((x) => fmt(x, 2)).join(" ");

  for (const file of [trainPath, testPath]) {
    if (!existsSync(file)) {
      process.stderr.write(
        `error: ${file} is missing.\nThe benchmark uses Fashion-MNIST from the Debian package dataset-fashion-mnist:\n` +
          `  apt-get update && apt-get install -y dataset-fashion-mnist\n`,
      );
      process.exit(2);
    }
  }

  section("JadeVectorDB core benchmark");
  kv("started_at", startedAt.toISOString());
  kv("machine", `${os.cpus().length} cpus (${os.cpus()[0]?.model ?? "?"}), ${fmt(os.totalmem() / 2 ** 30, 1)} GiB, node ${process.version}, ${os.platform()}-${os.arch()}`);

  const fullTrain = await readIdxImages(trainPath);
  const fullTest = await readIdxImages(testPath);
  const n = Math.min(opts.limit, fullTrain.count);
  const q = Math.min(opts.queries, fullTest.count);
  const train: VectorSet = { count: n, dimension: fullTrain.dimension, data: fullTrain.data.slice(0, n * fullTrain.dimension) };
  const queries: VectorSet = { count: q, dimension: fullTest.dimension, data: fullTest.data.slice(0, q * fullTest.dimension) };

  kv("dataset", `fashion-mnist ${fmt(n)} train × ${train.dimension} (of ${fmt(fullTrain.count)}), ${fmt(q)} test queries, pixels/255 float32, metric l2`);
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
  const searchBodies = Array.from({ length: q }, (_, i) => Buffer.from(`{"vector":${vectorJson(queries.data, i, queries.dimension)},"k":${k}}`));

  const tmp = await mkdtemp(path.join(os.tmpdir(), "jade-bench-"));
  cleanups.push(() => rm(tmp, { recursive: true, force: true }));

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
  cleanups.push(() => nats.stop());
  kv("nats-server", `${nats.url} (pid ${nats.process.pid}), store in ${tmp}`);
  trackedPids = { bench: process.pid, nats: nats.process.pid };

  await mkdir(path.join(tmp, "node"), { recursive: true });
  const node = await startNode(opts.nodeMode, nats.url, path.join(tmp, "node"));
  if (node.pid !== undefined) trackedPids = { ...trackedPids, node: node.pid };
  let nodeStopped = false;
  const stopNode = async () => {
    if (nodeStopped) return;
    nodeStopped = true;
    await node.stop();
  };
  cleanups.push(stopNode);
  const client = await JadeClient.connect({ servers: nats.url, name: "jade-bench", timeoutMs: 120_000 });
  let clientClosed = false;
  const closeClient = async () => {
    if (clientClosed) return;
    clientClosed = true;
    await client.close();
  };
  cleanups.push(closeClient);

  await client.createCollection({
    name: collection,
    dimension: train.dimension,
    metric: "l2",
    shards: opts.shards,
    index: { ...index, quantization: opts.quantization },
    snapshot,
  });
  // Wait until every shard's replica serves (an empty collection).
  for (let tries = 0; ; tries++) {
    const status = await client.clusterStatus();
    if (allCaughtUp(status)) break;
    if (tries > 300) throw new Error(`collection ${collection} not served after 30 s: ${JSON.stringify(status)}`);
    await sleep(100);
  }

  const firstBody = Buffer.byteLength(upsertBody(train, 0, Math.min(n, opts.batch)));
  if (firstBody > limits.natsPayloadBytesMax) {
    throw new Error(`an upsert of ${opts.batch} points is ${fmt(firstBody)} bytes, over the ${fmt(limits.natsPayloadBytesMax)}-byte limit: lower --batch`);
  }

  log("  ingest:");
  const ing = await measured("ingest", n, "vectors", () => ingest(client, train, opts));
  kv("acked", `${fmt(ing.ackedSeconds, 2)} s → ${fmt(ing.ackedVps)} vec/s`);
  kv("searchable", `${fmt(ing.searchableSeconds, 2)} s → ${fmt(ing.ingestVps)} vec/s`);
  kv("upsert request", `mean ${fmt(ing.requestMs.mean, 1)} ms, p50 ${fmt(ing.requestMs.p50, 1)}, p95 ${fmt(ing.requestMs.p95, 1)}, max ${fmt(ing.requestMs.max, 1)} ms; body ${fmt(ing.bodyBytesMean / 1e6, 2)} MB`);
  kv("client JSON build", `${fmt(ing.buildMs)} ms total (inside the timed window)`);
  kv("session token", JSON.stringify(ing.token));

  log("  search:");
  // Warm up (not measured).
  await searchApi(client, searchBodies.slice(0, warmupQueries), 1, "warm-up");
  const c1 = await measured("search c=1", q, "queries", () => searchApi(client, searchBodies, 1, "search c=1"));
  const c8 = await measured(`search c=${searchConcurrency}`, q, "queries", () =>
    searchApi(client, searchBodies, searchConcurrency, `search c=${searchConcurrency}`),
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
  if (opts.raw) {
    section(`raw usearch (same process, node stopped; add threads ${buildThreads(opts.shards)}, search threads 1)`);
    trackedPids = { bench: process.pid };
    raw = await rawUsearch(train, queries, opts.quantization, truth, buildThreads(opts.shards));
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
  rows.push(["ingest vec/s (searchable)", num(ing.ingestVps), num(raw?.ingestVps), raw ? `${fmt((100 * ing.ingestVps) / raw.ingestVps, 1)} % of raw` : ""]);
  rows.push(["search p50 ms (c=1)", num(c1.latencies.p50, 3), num(raw?.latencies.p50, 3), raw ? `+${fmt(c1.latencies.p50 - raw.latencies.p50, 3)} ms` : ""]);
  rows.push(["search p95 ms (c=1)", num(c1.latencies.p95, 3), num(raw?.latencies.p95, 3), raw ? `+${fmt(c1.latencies.p95 - raw.latencies.p95, 3)} ms` : ""]);
  rows.push(["search p99 ms (c=1)", num(c1.latencies.p99, 3), num(raw?.latencies.p99, 3), raw ? `+${fmt(c1.latencies.p99 - raw.latencies.p99, 3)} ms` : ""]);
  rows.push(["QPS c=1", num(c1.qps), num(raw?.qps), raw ? `${fmt((100 * c1.qps) / raw.qps, 1)} % of raw` : ""]);
  rows.push([`QPS c=${searchConcurrency}`, num(c8.qps), "", ""]);
  rows.push(["recall@10", num(recall, 4), num(raw?.recall, 4), raw ? `${recall - raw.recall >= 0 ? "+" : ""}${fmt(recall - raw.recall, 4)}` : ""]);
  const widths = [28, 12, 12, 20];
  const line = (cells: readonly string[]) => "  " + cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  log(line(["metric", "ours", "raw", "delta"]));
  log("  " + "-".repeat(widths.reduce((s, w) => s + w + 2, -2)));
  for (const row of rows) log(line(row));

  const targets: { name: string; pass: boolean | undefined; detail: string }[] = [
    {
      name: "recall@10 within 0.01 of raw",
      pass: raw ? Math.abs(recall - raw.recall) <= 0.01 : undefined,
      detail: raw ? `|${fmt(recall, 4)} − ${fmt(raw.recall, 4)}| = ${fmt(Math.abs(recall - raw.recall), 4)}` : "no raw run",
    },
    {
      name: "ingest_vps ≥ 60% of raw",
      pass: raw ? ing.ingestVps >= 0.6 * raw.ingestVps : undefined,
      detail: raw ? `${fmt(ing.ingestVps)} vs ≥ ${fmt(0.6 * raw.ingestVps)} (${fmt((100 * ing.ingestVps) / raw.ingestVps, 1)} %)` : "no raw run",
    },
    {
      name: "search p95 ≤ raw p95 + 3 ms",
      pass: raw ? c1.latencies.p95 <= raw.latencies.p95 + 3 : undefined,
      detail: raw ? `${fmt(c1.latencies.p95, 3)} ms vs ≤ ${fmt(raw.latencies.p95 + 3, 3)} ms` : "no raw run",
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
    raw_ingest_vps: raw ? round(raw.ingestVps, 1) : null,
    raw_add_threads: buildThreads(opts.shards),
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
    cpu_ms_per_1000_units: phases.map((p) => ({
      phase: p.phase,
      unit: p.unit,
      wall_s: round(p.wallMs / 1000, 2),
      ...Object.fromEntries(
        Object.entries(p.cpu).flatMap(([name, c]) => [
          [`${name}_main`, round((c.mainMs * 1000) / p.units, 1)],
          [`${name}_other`, round((c.otherMs * 1000) / p.units, 1)],
        ]),
      ),
    })),
    targets: Object.fromEntries(targets.map((t) => [t.name, t.pass === undefined ? "skip" : t.pass ? "pass" : "miss"])),
  };
  await mkdir(resultsDir, { recursive: true });
  const stamp = startedAt.toISOString().replace(/:/g, "-");
  const file = path.join(resultsDir, `${stamp}-core.json`);
  const text = JSON.stringify(result, null, 2) + "\n";
  await writeFile(file, text);
  await writeFile(path.join(resultsDir, "latest-core.json"), text);
  section("written");
  log(`  ${path.relative(repoRoot, file)}`);
  log(`  ${path.relative(repoRoot, path.join(resultsDir, "latest-core.json"))}`);
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
