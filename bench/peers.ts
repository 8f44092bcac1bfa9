/**
 * The peers benchmark: raw usearch, hnswlib-node and LanceDB on the same data, in the same
 * process, in one run, one engine after the other (so they never compete for the 2 cores).
 *
 * Per engine: build time and vectors/s, bytes per vector on disk and in memory (growth of
 * anonymous RSS outside the V8 heap over the build), latency percentiles of single queries one at a time, QPS one at a time
 * and with two searches at once, recall@10 against exact ground truth, and the same search
 * figures over a sweep of the search-time expansion (ef). The headline figures are the
 * sweep's point at hnswGraph.efDefault.
 *
 *   npx tsx bench/peers.ts [--dataset fashion-mnist|clustered] [--limit N] [--queries Q]
 *                          [--ef 16,32,64,128,256] [--engines usearch,hnswlib,lancedb]
 *
 * Writes bench/results/<timestamp>-peers.json, latest-peers.json, latest-peers-<dataset>.json
 * and bench/results/peers.md (one section per dataset, from each dataset's latest run).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Command, InvalidArgumentError, Option } from "commander";
import { readIdxImages, type VectorSet } from "./datasets.ts";
import { clusteredDefaults, clusteredQueries, clusteredVectors, groundTruthCached, groundTruthPath, querySeedDefault } from "./datasets-clustered.ts";
import { createEngine, engineNames, hnswGraph, k, type EngineName, type Queries, type SearchEngine } from "./peers-engines.ts";
import { printSummary, writePeersReport } from "./peers-report.ts";
import { progressBar, withProgress } from "./progress.ts";
import { settledNativeBytes } from "./memory.ts";

export const datasetNames = ["fashion-mnist", "clustered"] as const;
export type DatasetName = (typeof datasetNames)[number];

export interface PeersOptions {
  dataset: DatasetName;
  /** Training vectors; default all of fashion-mnist, clusteredLimitDefault of the clustered set. */
  limit?: number;
  queries: number;
  ef: number[];
  engines: EngineName[];
}

export interface LatencyMs {
  p50: number;
  p95: number;
  p99: number;
  mean: number;
}

export interface SweepPoint {
  ef: number;
  recall: number;
  latencyMs: LatencyMs;
  /** Queries per second, one at a time on one thread (1 / mean latency, loop included). */
  qps: number;
  /** Queries per second with the engine's parallelism; null where the binding has none. */
  qpsParallel: number | null;
}

export interface EngineResult {
  engine: EngineName;
  package: string;
  version: string;
  description: string;
  /** cpuCores: this process's CPU time / wall time; otherCores: the rest of the machine's, likewise. */
  build: { seconds: number; vectorsPerSecond: number; threads: number | "all"; cpuCores: number; otherCores: number };
  /** CPU use over the whole ef sweep, as for the build. */
  sweepCpu: { cpuCores: number; otherCores: number };
  bytesPerVector: { disk: number; memory: number };
  parallelism: number | null;
  atDefaultEf: SweepPoint;
  sweep: SweepPoint[];
}

export interface PeersResult {
  suite: "peers";
  /** Bumped when this shape changes; the report skips result files of another version. */
  schemaVersion: typeof resultSchemaVersion;
  startedAt: string;
  seconds: number;
  machine: { cpus: number; cpuModel: string | null; memoryGiB: number; node: string; loadAverage: { start: number[]; end: number[] } };
  dataset: { name: DatasetName; count: number; dimension: number; queries: number; description: string };
  k: number;
  graph: typeof hnswGraph;
  groundTruth: { seconds: number; cached: boolean; file: string };
  engines: EngineResult[];
}

const resultSchemaVersion = 1;
export const peersDefaults: PeersOptions = { dataset: "fashion-mnist", queries: 1_000, ef: [16, 32, 64, 128, 256], engines: [...engineNames] };
const clusteredLimitDefault = 100_000;
const warmupQueries = 20;
const fashionMnistDir = "/usr/share/datasets/fashion-mnist";
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const resultsDir = path.join(repoRoot, "bench", "results");
/** Ground truth is cached here (the datasets' own folders may be read-only system paths). */
const cacheDir = path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), ".cache"), "jadevectordb-bench");
const packageOf: Record<EngineName, string> = { jadevectordb: "jadevectordb", usearch: "usearch", hnswlib: "hnswlib-node", lancedb: "@lancedb/lancedb" };

const round = (n: number, digits: number) => Math.round(n * 10 ** digits) / 10 ** digits;

/** /proc/stat counts CPU time in USER_HZ ticks: 1/100 s on every mainstream Linux. */
const procStatTicksPerSecond = 100;

/** CPU seconds the whole machine (every process) has been busy since boot; 0 without /proc. */
function machineBusySeconds(): number {
  try {
    const fields = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0] = fields; // idle and iowait are not busy
    return (user + nice + system + irq + softirq) / procStatTicksPerSecond;
  } catch {
    return 0;
  }
}

/**
 * Starts a CPU meter; calling the result gives the cores kept busy on average since then, by
 * this process and by everything else. The machine is shared: other jobs' load explains slow
 * phases, and is recorded next to them.
 */
function cpuMeter(): () => { cpuCores: number; otherCores: number } {
  const ours = process.cpuUsage();
  const machine = machineBusySeconds();
  const started = performance.now();
  return () => {
    const seconds = (performance.now() - started) / 1000;
    const used = process.cpuUsage(ours);
    const oursSeconds = (used.user + used.system) / 1e6;
    const othersSeconds = Math.max(0, machineBusySeconds() - machine - oursSeconds);
    return { cpuCores: round(oursSeconds / seconds, 2), otherCores: round(othersSeconds / seconds, 2) };
  };
}

// ---------------------------------------------------------------------------------------------
// Data

interface Dataset {
  name: DatasetName;
  train: VectorSet;
  queries: Queries;
  description: string;
}

/** The first `count` rows, in a buffer of their own (usearch ignores byteOffset). */
function firstRows(set: VectorSet, count: number): VectorSet {
  const n = Math.min(count, set.count);
  return { count: n, dimension: set.dimension, data: set.data.slice(0, n * set.dimension) };
}

function asQueries(set: VectorSet): Queries {
  return { set, rows: Array.from({ length: set.count }, (_, q) => set.data.slice(q * set.dimension, (q + 1) * set.dimension)) };
}

async function loadDataset(options: PeersOptions): Promise<Dataset> {
  if (options.dataset === "fashion-mnist") {
    const train = await readIdxImages(path.join(fashionMnistDir, "train-images-idx3-ubyte.gz"));
    const test = await readIdxImages(path.join(fashionMnistDir, "t10k-images-idx3-ubyte.gz"));
    const description = "Fashion-MNIST (Debian dataset-fashion-mnist): train images as the index, the first t10k images as queries, pixels / 255";
    return { name: options.dataset, train: firstRows(train, options.limit ?? train.count), queries: asQueries(firstRows(test, options.queries)), description };
  }
  const spec = { ...clusteredDefaults, count: options.limit ?? clusteredLimitDefault };
  const train = await withProgress("generate", spec.count, (advance) => clusteredVectors(spec, advance));
  const queries = clusteredQueries(spec, { count: options.queries, seed: querySeedDefault });
  const description = `bench/datasets-clustered.ts: ${spec.clusters} Gaussian clusters, seed ${spec.seed}, queries seed ${querySeedDefault}`;
  return { name: options.dataset, train, queries: asQueries(queries), description };
}

async function loadTruth(dataset: Dataset) {
  const file = groundTruthPath(cacheDir, dataset.name, dataset.train, dataset.queries.set, k);
  const started = performance.now();
  const { truth, cached } = await withProgress("ground truth", dataset.queries.set.count, (advance) => groundTruthCached(file, dataset.train, dataset.queries.set, k, advance));
  return { truth, info: { seconds: round((performance.now() - started) / 1000, 2), cached, file } };
}

// ---------------------------------------------------------------------------------------------
// Measurement

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

function latencyOf(samplesMs: number[]): LatencyMs {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const mean = sorted.reduce((sum, x) => sum + x, 0) / Math.max(1, sorted.length);
  return { p50: round(percentile(sorted, 50), 3), p95: round(percentile(sorted, 95), 3), p99: round(percentile(sorted, 99), 3), mean: round(mean, 3) };
}

/** Mean share of the true top-k found among each query's k answers. */
function recallOf(found: Uint32Array[], truth: Uint32Array): number {
  let hits = 0;
  found.forEach((ids, q) => {
    const expected = new Set(truth.subarray(q * k, (q + 1) * k));
    for (const id of ids) if (expected.has(id)) hits++;
  });
  return round(hits / (found.length * k), 4);
}

/** Times one search; a synchronous engine is timed without an await in the measurement. */
async function timedSearch(engine: SearchEngine, query: Float32Array): Promise<{ ids: Uint32Array; ms: number }> {
  const started = performance.now();
  const answer = engine.search(query);
  const ids = answer instanceof Promise ? await answer : answer;
  return { ids, ms: performance.now() - started };
}

async function parallelQps(engine: SearchEngine, queries: Queries): Promise<number | null> {
  if (engine.searchParallel === undefined) return null;
  const started = performance.now();
  await engine.searchParallel(queries);
  return Math.round(queries.rows.length / ((performance.now() - started) / 1000));
}

async function sweepPoint(engine: SearchEngine, ef: number, queries: Queries, truth: Uint32Array, advance: () => void): Promise<SweepPoint> {
  await engine.useEf(ef);
  for (const query of queries.rows.slice(0, warmupQueries)) await timedSearch(engine, query);
  const samples: number[] = [];
  const found: Uint32Array[] = [];
  const started = performance.now();
  for (const query of queries.rows) {
    const { ids, ms } = await timedSearch(engine, query);
    samples.push(ms);
    found.push(ids);
    advance();
  }
  const qps = Math.round(queries.rows.length / ((performance.now() - started) / 1000));
  return { ef, recall: recallOf(found, truth), latencyMs: latencyOf(samples), qps, qpsParallel: await parallelQps(engine, queries) };
}

async function timedBuild(engine: SearchEngine, train: VectorSet): Promise<EngineResult["build"]> {
  const cpu = cpuMeter();
  const started = performance.now();
  await engine.build(train);
  const seconds = (performance.now() - started) / 1000;
  return { seconds: round(seconds, 2), vectorsPerSecond: Math.round(train.count / seconds), threads: engine.buildThreads, ...cpu() };
}

function packageVersion(name: string): string {
  const dir = name === packageOf.jadevectordb ? repoRoot : path.join(repoRoot, "node_modules", name);
  const manifest = JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8")) as { version: string };
  return manifest.version;
}

/** Efs to sweep, ascending, always including the headline's efDefault. */
function sweepEfs(efs: number[]): number[] {
  return [...new Set([...efs, hnswGraph.efDefault])].sort((a, b) => a - b);
}

/** Bytes per vector on disk and in memory (native memory growth since `nativeBefore`, warmed up). */
async function footprint(engine: SearchEngine, dataset: Dataset, nativeBefore: number): Promise<EngineResult["bytesPerVector"]> {
  // Warm up before reading memory: LanceDB loads its index on the first query.
  await engine.useEf(hnswGraph.efDefault);
  for (const query of dataset.queries.rows.slice(0, warmupQueries)) await timedSearch(engine, query);
  const memory = ((await settledNativeBytes()) - nativeBefore) / dataset.train.count;
  const disk = (await engine.diskBytes()) / dataset.train.count;
  return { disk: Math.round(disk), memory: Math.round(memory) };
}

async function sweepAll(engine: SearchEngine, dataset: Dataset, truth: Uint32Array, efs: number[]) {
  const bar = progressBar(`${engine.name} sweep`, efs.length * dataset.queries.rows.length);
  const cpu = cpuMeter();
  const sweep: SweepPoint[] = [];
  for (const ef of efs) {
    if (engine.takesEf?.(ef) === false) bar.increment(dataset.queries.rows.length);
    else sweep.push(await sweepPoint(engine, ef, dataset.queries, truth, () => bar.increment()));
  }
  const sweepCpu = cpu();
  bar.stop();
  return { sweep, sweepCpu };
}

async function runEngine(name: EngineName, dataset: Dataset, truth: Uint32Array, efs: number[], workDir: string): Promise<EngineResult> {
  const engine = createEngine(name, mkdtempSync(path.join(workDir, `${name}-`)));
  try {
    const nativeBefore = await settledNativeBytes();
    const build = await timedBuild(engine, dataset.train);
    const bytesPerVector = await footprint(engine, dataset, nativeBefore);
    const { sweep, sweepCpu } = await sweepAll(engine, dataset, truth, efs);
    const atDefaultEf = sweep.find((point) => point.ef === hnswGraph.efDefault)!;
    const { description, parallelism } = engine;
    return { engine: name, package: packageOf[name], version: packageVersion(packageOf[name]), description, build, sweepCpu, bytesPerVector, parallelism: parallelism ?? null, atDefaultEf, sweep };
  } finally {
    await engine.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Run

function machine(loadStart: number[]) {
  const cpus = os.cpus();
  const load = (values: number[]) => values.map((x) => round(x, 2));
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? null,
    memoryGiB: round(os.totalmem() / 2 ** 30, 1),
    node: process.version,
    loadAverage: { start: load(loadStart), end: load(os.loadavg()) },
  };
}

/** Runs `work` with a temporary directory that is removed afterwards, also on Ctrl-C. */
async function withWorkDir<T>(work: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "jade-peers-"));
  const remove = () => rmSync(dir, { recursive: true, force: true });
  const onSigint = () => {
    remove();
    process.exit(130);
  };
  process.once("SIGINT", onSigint);
  try {
    return await work(dir);
  } finally {
    process.off("SIGINT", onSigint);
    remove();
  }
}

async function writeResults(result: PeersResult): Promise<string[]> {
  await mkdir(resultsDir, { recursive: true });
  const text = JSON.stringify(result, null, 2) + "\n";
  const stamp = result.startedAt.replace(/:/g, "-");
  const files = [`${stamp}-peers.json`, "latest-peers.json", `latest-peers-${result.dataset.name}.json`].map((f) => path.join(resultsDir, f));
  for (const file of files) await writeFile(file, text);
  return files;
}

/** The latest result of every dataset that has one in the current shape: the report covers them all. */
function latestPerDataset(): PeersResult[] {
  return datasetNames.flatMap((name) => {
    const file = path.join(resultsDir, `latest-peers-${name}.json`);
    if (!existsSync(file)) return [];
    const result = JSON.parse(readFileSync(file, "utf8")) as PeersResult;
    return result.schemaVersion === resultSchemaVersion ? [result] : [];
  });
}

export async function runPeers(options: PeersOptions): Promise<{ result: PeersResult; files: string[] }> {
  const startedAt = new Date();
  const loadStart = os.loadavg();
  const dataset = await loadDataset(options);
  const { truth, info } = await loadTruth(dataset);
  const efs = sweepEfs(options.ef);
  const engines: EngineResult[] = [];
  await withWorkDir(async (workDir) => {
    for (const name of options.engines) engines.push(await runEngine(name, dataset, truth, efs, workDir));
  });
  const result: PeersResult = {
    suite: "peers",
    schemaVersion: resultSchemaVersion,
    startedAt: startedAt.toISOString(),
    seconds: round((Date.now() - startedAt.getTime()) / 1000, 1),
    machine: machine(loadStart),
    dataset: { name: dataset.name, count: dataset.train.count, dimension: dataset.train.dimension, queries: dataset.queries.rows.length, description: dataset.description },
    k,
    graph: hnswGraph,
    groundTruth: info,
    engines,
  };
  const files = [...(await writeResults(result)), ...(await writePeersReport(resultsDir, latestPerDataset()))];
  return { result, files };
}

// ---------------------------------------------------------------------------------------------
// CLI

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError("must be a positive integer");
  return n;
}

function positiveIntList(value: string): number[] {
  return value.split(",").map((part) => positiveInt(part.trim()));
}

function engineList(value: string): EngineName[] {
  const names = value.split(",").map((s) => s.trim());
  const unknown = names.filter((n) => !(engineNames as readonly string[]).includes(n));
  if (unknown.length > 0) throw new InvalidArgumentError(`unknown engine ${unknown.join(", ")}; known: ${engineNames.join(", ")}`);
  return names as EngineName[];
}

async function main(argv: string[]): Promise<void> {
  const program = new Command("peers")
    .description("usearch vs hnswlib-node vs LanceDB on the same data: build, memory, disk, latency, QPS, recall, ef sweep")
    .addOption(new Option("--dataset <name>", "data set").choices(datasetNames).default(peersDefaults.dataset))
    .option("--limit <n>", `training vectors (default: all of fashion-mnist, ${clusteredLimitDefault} clustered)`, positiveInt)
    .option("--queries <n>", "queries", positiveInt, peersDefaults.queries)
    .option("--ef <list>", "search-time expansions to sweep", positiveIntList, peersDefaults.ef)
    .option("--engines <list>", `engines to run (${engineNames.join(",")})`, engineList, peersDefaults.engines)
    .parse(argv);
  const { result, files } = await runPeers(program.opts<PeersOptions>());
  printSummary(result);
  process.stdout.write(`\nwrote ${files.map((f) => path.relative(repoRoot, f)).join(", ")}\n`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main(process.argv);
