/**
 * The usearch binding the graphs run on: usearch 2.26.2's own Node binding, built here from the
 * sources its npm package ships, with one addition, `saveAsync` (native/usearch/index.cpp).
 * The package's prebuilt binding can only save on the calling thread: 160 ms at 250,000 ×
 * 128-d, during which every search of the worker's shards waited (451–544 ms p95 while 1M
 * points were saved, docs/performance.md). `npm ci` builds it (postinstall), and so does
 * `npm run build:native`.
 *
 * The calls take the binding's own arguments, unchecked: graph.ts is their one caller.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import type { Metric, Quantization } from "../../runtime/schemas.ts";

/** usearch's names of our metrics and quantizations (its MetricKind and ScalarKind values). */
const metricNames: Readonly<Record<Metric, string>> = { cosine: "cos", l2: "l2sq", ip: "ip" };
const scalarNames: Readonly<Record<Quantization, string>> = { f32: "f32", f16: "f16", i8: "i8" };

/** A search's matches: keys and distances, k per query, and how many each query found. */
export type NativeMatches = [keys: BigUint64Array, distances: Float32Array, counts: BigUint64Array];

/** A batched search's matches: query i's are at i × k, `counts[i]` of them. */
export interface BatchMatches {
  keys: BigUint64Array;
  distances: Float32Array;
  counts: BigUint64Array;
  k: number;
}

/** One usearch dense index (index_dense_t). While `saveAsync` runs, add, remove, load and save throw. */
export interface NativeIndex {
  add(keys: BigUint64Array, vectors: Float32Array, threads: number): void;
  search(queries: Float32Array, k: number, threads: number): NativeMatches;
  remove(keys: BigUint64Array): number[];
  contains(keys: BigUint64Array): boolean[];
  size(): number;
  capacity(): number;
  load(path: string): void;
  /** Writes the index to `path` on libuv's thread pool; searches and `contains` go on meanwhile. */
  saveAsync(path: string): Promise<void>;
}

export interface NativeIndexOptions {
  dimensions: number;
  metric: Metric;
  quantization: Quantization;
  connectivity: number;
  expansionAdd: number;
  expansionSearch: number;
}

type NativeIndexClass = new (dimensions: number, metric: string, quantization: string, connectivity: number, expansionAdd: number, expansionSearch: number, multi: boolean) => NativeIndex;

const addonPath = fileURLToPath(new URL("../../../native/usearch/build/Release/jade_usearch.node", import.meta.url));
let loaded: NativeIndexClass | undefined;

function addon(): NativeIndexClass {
  if (loaded) return loaded;
  if (!existsSync(addonPath)) throw new Error(`${addonPath} is missing: run \`npm run build:native\` (npm ci runs it)`);
  loaded = (createRequire(import.meta.url)(addonPath) as { CompiledIndex: NativeIndexClass }).CompiledIndex;
  return loaded;
}

export function createNativeIndex(options: NativeIndexOptions): NativeIndex {
  const { dimensions, metric, quantization, connectivity, expansionAdd, expansionSearch } = options;
  return new (addon())(dimensions, metricNames[metric], scalarNames[quantization], connectivity, expansionAdd, expansionSearch, false);
}
