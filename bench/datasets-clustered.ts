/**
 * A deterministic clustered synthetic dataset, its query set and exact ground truth.
 *
 * Vectors are drawn around `clusters` centres uniform in the box [-1, 1]^dimension, each
 * cluster with its own spread (an isotropic Gaussian), so the set has the dense
 * neighbourhoods and empty space between them of real embeddings, which uniform noise lacks.
 * Everything comes from seeded mulberry32 streams: the same spec gives the same bytes on
 * every machine, and a smaller `count` is a prefix of a larger one (the centres do not
 * depend on `count`), so a 100k run searches the first 100k vectors of the 1M file.
 *
 * Queries use the same centres with their own seed, so they come from the same distribution
 * without being copies of training vectors.
 *
 * CLI:
 *   npx tsx bench/datasets-clustered.ts --count 1000000 --out /tmp/clustered-1m.fvecs \
 *     [--queries 1000 --queries-out /tmp/clustered-1m.queries.fvecs] [--ground-truth]
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, open, rename, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Command, InvalidArgumentError } from "commander";
import { exactSearch, MetricKind, type BatchMatches } from "usearch";
import { seededRandom } from "../src/runtime/random.ts";
import type { VectorSet } from "./datasets.ts";
import { withProgress, yieldToEventLoop } from "./progress.ts";

export interface ClusteredSpec {
  count: number;
  dimension: number;
  clusters: number;
  seed: number;
}

/** A set produced chunk by chunk, for one pass: what writeFvecs streams without holding the whole set. */
export interface VectorStream {
  count: number;
  dimension: number;
  chunks: Iterable<Float32Array>;
}

export const clusteredDefaults: ClusteredSpec = { count: 1_000_000, dimension: 128, clusters: 1_000, seed: 1 };
export const querySeedDefault = 2;
export const queryCountDefault = 1_000;
export const groundTruthKDefault = 10;

/** Centres are uniform in [-boxHalfWidth, boxHalfWidth] per dimension. */
const boxHalfWidth = 1;
/**
 * Per-dimension standard deviation of a cluster: spreadBase × a factor uniform in
 * [spreadFactorMin, spreadFactorMax]. With 128-d, centres are ≈ 9 apart and a cluster's points
 * ≈ 2–6 apart: clusters stay separate, and neighbours within one are not trivially close.
 */
const spreadBase = 0.25;
const spreadFactorMin = 0.5;
const spreadFactorMax = 1.5;
/** Salt that separates the point stream from the centre stream of the same seed. */
const pointStreamSalt = 0x9e3779b9;
/** Rows generated per chunk: 4,096 × 128-d is 2 MiB, small enough to stream. */
const chunkRowsDefault = 4_096;
/** Batched exactSearch allocates 16 bytes × N × Q: 16 queries over 1M vectors is 256 MiB. */
const groundTruthQueryBatch = 16;
/** Bytes of the data fingerprint kept in ground-truth cache file names. */
const fingerprintHexChars = 12;

// ---------------------------------------------------------------------------------------------
// Generation

interface ClusterModel {
  dimension: number;
  centres: Float32Array;
  spreads: Float32Array;
}

/** The centres and spreads of a spec: a function of (dimension, clusters, seed) only, never count. */
function clusterModel(spec: ClusteredSpec): ClusterModel {
  const next = seededRandom(spec.seed);
  const centres = new Float32Array(spec.clusters * spec.dimension);
  for (let i = 0; i < centres.length; i++) centres[i] = (next() * 2 - 1) * boxHalfWidth;
  const spreads = new Float32Array(spec.clusters);
  for (let c = 0; c < spreads.length; c++) spreads[c] = spreadBase * (spreadFactorMin + next() * (spreadFactorMax - spreadFactorMin));
  return { dimension: spec.dimension, centres, spreads };
}

/** Standard normal draws (Box–Muller), two per pair of uniforms. */
function gaussian(next: () => number): () => number {
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) {
      const value = spare;
      spare = undefined;
      return value;
    }
    const radius = Math.sqrt(-2 * Math.log(1 - next())); // 1 - u: never log(0)
    const angle = 2 * Math.PI * next();
    spare = radius * Math.sin(angle);
    return radius * Math.cos(angle);
  };
}

/** `count` rows around the model's centres, in chunks of at most `chunkRows` rows. */
function* drawRows(model: ClusterModel, count: number, seed: number, chunkRows: number): Generator<Float32Array> {
  const next = seededRandom(seed);
  const normal = gaussian(next);
  const { dimension, centres, spreads } = model;
  for (let from = 0; from < count; from += chunkRows) {
    const rows = Math.min(chunkRows, count - from);
    const chunk = new Float32Array(rows * dimension);
    for (let r = 0; r < rows; r++) {
      const cluster = Math.floor(next() * spreads.length);
      const spread = spreads[cluster]!;
      const centre = cluster * dimension;
      for (let d = 0; d < dimension; d++) chunk[r * dimension + d] = centres[centre + d]! + spread * normal();
    }
    yield chunk;
  }
}

/** The training set as a stream of chunks (for writing files larger than you want in memory). */
export function clusteredStream(spec: ClusteredSpec, chunkRows = chunkRowsDefault): VectorStream {
  return { count: spec.count, dimension: spec.dimension, chunks: drawRows(clusterModel(spec), spec.count, (spec.seed ^ pointStreamSalt) >>> 0, chunkRows) };
}

/** Fills one matrix from a stream; `onProgress` gets the rows done so far. */
function collect(stream: VectorStream, onProgress?: (rows: number) => void): VectorSet {
  const data = new Float32Array(stream.count * stream.dimension);
  let offset = 0;
  for (const chunk of stream.chunks) {
    data.set(chunk, offset);
    offset += chunk.length;
    onProgress?.(offset / stream.dimension);
  }
  return { count: stream.count, dimension: stream.dimension, data };
}

/** The whole training set in memory. */
export function clusteredVectors(spec: ClusteredSpec, onProgress?: (rows: number) => void): VectorSet {
  return collect(clusteredStream(spec), onProgress);
}

/** Queries drawn around the same centres as `spec`'s training set, from their own seed. */
export function clusteredQueries(spec: ClusteredSpec, options: { count: number; seed: number }): VectorSet {
  const chunks = drawRows(clusterModel(spec), options.count, options.seed >>> 0, chunkRowsDefault);
  return collect({ count: options.count, dimension: spec.dimension, chunks });
}

// ---------------------------------------------------------------------------------------------
// Files

function isStream(set: VectorSet | VectorStream): set is VectorStream {
  return "chunks" in set;
}

function* matrixChunks(set: VectorSet, chunkRows: number): Generator<Float32Array> {
  for (let from = 0; from < set.count; from += chunkRows) {
    yield set.data.subarray(from * set.dimension, Math.min(set.count, from + chunkRows) * set.dimension);
  }
}

/** TEXMEX records for one chunk: per row an int32 LE dimension, then the row's float32 LE values. */
function fvecsRecords(chunk: Float32Array, dimension: number): Buffer {
  const rows = chunk.length / dimension;
  const recordBytes = 4 + 4 * dimension;
  const out = Buffer.allocUnsafe(rows * recordBytes);
  const values = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  for (let r = 0; r < rows; r++) {
    out.writeInt32LE(dimension, r * recordBytes);
    values.copy(out, r * recordBytes + 4, r * 4 * dimension, (r + 1) * 4 * dimension);
  }
  return out;
}

/** Host byte order must be little-endian: the float bytes are copied as they are in memory. */
function assertLittleEndian(): void {
  if (os.endianness() !== "LE") throw new Error("writeFvecs copies float32 bytes as stored: it needs a little-endian host");
}

/**
 * Writes a `.fvecs` file chunk by chunk (to a temporary name, renamed when complete, so an
 * interrupted run never leaves a truncated file under the final name).
 */
export async function writeFvecs(file: string, set: VectorSet | VectorStream, onProgress?: (rows: number) => void): Promise<void> {
  assertLittleEndian();
  const partial = `${file}.partial`;
  const handle = await open(partial, "w");
  try {
    let rows = 0;
    for (const chunk of isStream(set) ? set.chunks : matrixChunks(set, chunkRowsDefault)) {
      await handle.write(fvecsRecords(chunk, set.dimension));
      rows += chunk.length / set.dimension;
      onProgress?.(rows);
    }
  } finally {
    await handle.close();
  }
  await rename(partial, file);
}

// ---------------------------------------------------------------------------------------------
// Ground truth

/** A copy that starts at byte 0 of its own buffer: exactSearch ignores byteOffset. */
function ownBuffer(data: Float32Array): Float32Array {
  return data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : data.slice();
}

/**
 * Exact k nearest neighbours (L2) of every query: queries.count × k ids, row-major. Runs
 * exactSearch on all cores in batches of groundTruthQueryBatch queries, yielding between
 * batches so a progress bar can draw.
 */
export async function groundTruth(train: VectorSet, queries: VectorSet, k: number, onProgress?: (queries: number) => void): Promise<Uint32Array> {
  const dataset = ownBuffer(train.data);
  const truth = new Uint32Array(queries.count * k);
  for (let q = 0; q < queries.count; q += groundTruthQueryBatch) {
    const n = Math.min(groundTruthQueryBatch, queries.count - q);
    const block = queries.data.slice(q * queries.dimension, (q + n) * queries.dimension);
    const result = exactSearch(dataset, block, train.dimension, k, MetricKind.L2sq, 0) as BatchMatches;
    for (let i = 0; i < n * k; i++) truth[q * k + i] = Number(result.keys[i]!);
    onProgress?.(q + n);
    await yieldToEventLoop();
  }
  return truth;
}

/** A short hash of both sets and k: a cache file named with it can never be stale. */
function fingerprint(train: VectorSet, queries: VectorSet, k: number): string {
  // SHA-1 is a cache key here, not a security measure; it hashes ~1 GB/s.
  const hash = createHash("sha1");
  for (const set of [train, queries]) {
    hash.update(`${set.count}x${set.dimension};`);
    hash.update(new Uint8Array(set.data.buffer, set.data.byteOffset, set.data.byteLength));
  }
  hash.update(`k=${k}`);
  return hash.digest("hex").slice(0, fingerprintHexChars);
}

/** `<dir>/<stem>.gt<k>-<fingerprint>.ivecs`: where groundTruthCached keeps this pair's answer. */
export function groundTruthPath(dir: string, stem: string, train: VectorSet, queries: VectorSet, k: number): string {
  return path.join(dir, `${stem}.gt${k}-${fingerprint(train, queries, k)}.ivecs`);
}

/** TEXMEX `.ivecs`: per row an int32 LE k, then k int32 LE ids. */
function encodeIvecs(ids: Uint32Array, k: number): Buffer {
  const rows = ids.length / k;
  const out = Buffer.allocUnsafe(rows * (k + 1) * 4);
  for (let r = 0; r < rows; r++) {
    out.writeInt32LE(k, r * (k + 1) * 4);
    for (let i = 0; i < k; i++) out.writeInt32LE(ids[r * k + i]!, (r * (k + 1) + 1 + i) * 4);
  }
  return out;
}

function decodeIvecs(bytes: Buffer, k: number): Uint32Array {
  const rows = bytes.byteLength / ((k + 1) * 4);
  const ids = new Uint32Array(rows * k);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < k; i++) ids[r * k + i] = bytes.readInt32LE((r * (k + 1) + 1 + i) * 4);
  }
  return ids;
}

/** groundTruth, read from `file` when an earlier run wrote it there, else computed and written. */
export async function groundTruthCached(
  file: string,
  train: VectorSet,
  queries: VectorSet,
  k: number,
  onProgress?: (queries: number) => void,
): Promise<{ truth: Uint32Array; cached: boolean }> {
  if (existsSync(file)) return { truth: decodeIvecs(readFileSync(file), k), cached: true };
  const truth = await groundTruth(train, queries, k, onProgress);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(`${file}.partial`, encodeIvecs(truth, k));
  await rename(`${file}.partial`, file);
  return { truth, cached: false };
}

// ---------------------------------------------------------------------------------------------
// CLI

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError("must be a positive integer");
  return n;
}

interface CliOptions {
  count: number;
  dimension: number;
  clusters: number;
  seed: number;
  out: string;
  queries?: number;
  querySeed: number;
  queriesOut?: string;
  groundTruth?: boolean;
  k: number;
}

function stemOf(file: string): string {
  return path.basename(file).replace(/\.fvecs$/, "");
}

async function main(argv: string[]): Promise<void> {
  const program = new Command("datasets-clustered")
    .description("Writes the deterministic clustered dataset (and optionally queries and exact ground truth) as .fvecs")
    .requiredOption("--out <file>", "training set output (.fvecs)")
    .option("--count <n>", "vectors", positiveInt, clusteredDefaults.count)
    .option("--dimension <n>", "dimensions", positiveInt, clusteredDefaults.dimension)
    .option("--clusters <n>", "clusters", positiveInt, clusteredDefaults.clusters)
    .option("--seed <n>", "seed of centres and points", positiveInt, clusteredDefaults.seed)
    .option("--queries <n>", "also write this many queries", positiveInt)
    .option("--query-seed <n>", "seed of the queries", positiveInt, querySeedDefault)
    .option("--queries-out <file>", "query output (.fvecs); default <out stem>.queries.fvecs")
    .option("--ground-truth", "also write exact ground truth (.ivecs) next to the dataset (needs --queries)")
    .option("--k <n>", "neighbours in the ground truth", positiveInt, groundTruthKDefault)
    .parse(argv);
  const options = program.opts<CliOptions>();
  const spec: ClusteredSpec = { count: options.count, dimension: options.dimension, clusters: options.clusters, seed: options.seed };
  // Ground truth needs the whole set in memory; otherwise stream it to the file.
  const train = options.groundTruth ? await withProgress("generate", spec.count, (advance) => clusteredVectors(spec, advance)) : clusteredStream(spec);
  await withProgress("write", spec.count, (advance) => writeFvecs(options.out, train, advance));
  process.stdout.write(`${options.out}: ${spec.count} × ${spec.dimension}, ${spec.clusters} clusters, seed ${spec.seed}\n`);
  if (options.queries === undefined) return;
  const queries = clusteredQueries(spec, { count: options.queries, seed: options.querySeed });
  const dir = path.dirname(options.out);
  const queriesOut = options.queriesOut ?? path.join(dir, `${stemOf(options.out)}.queries.fvecs`);
  await writeFvecs(queriesOut, queries);
  process.stdout.write(`${queriesOut}: ${queries.count} queries, seed ${options.querySeed}\n`);
  if (!options.groundTruth || isStream(train)) return;
  const file = groundTruthPath(dir, stemOf(options.out), train, queries, options.k);
  const { cached } = await withProgress("ground truth", queries.count, (advance) => groundTruthCached(file, train, queries, options.k, advance));
  process.stdout.write(`${file}: exact top-${options.k}${cached ? " (cached)" : ""}\n`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main(process.argv);
