/**
 * A shard's usearch HNSW graph, keyed by slot. Rows are copied into a scratch buffer of their
 * own before an add (usearch's exactSearch ignores a typed array's byteOffset; the graph's
 * calls are given whole arrays too, so no view can ever be misread).
 *
 * Threads: usearch gives an index as many search contexts as the thread count of the add
 * that last reserved memory, and refuses a search with more threads than that ("Reserve
 * capacity ahead of searches!"). So an add that will make the index grow always passes
 * `contexts` (the machine's cores); others pass 1 for a sequential insert, or `threads`.
 *
 * Saves run off the worker's thread (usearch-native.ts): the graph answers searches meanwhile,
 * and nothing may add to it or remove from it until the save ends (`saving`).
 */
import { openSync, readSync, closeSync } from "node:fs";
import os from "node:os";
import type { Quantization } from "../../runtime/schemas.ts";
import type { ShardIndexConfig } from "./api.ts";
import { createNativeIndex, type BatchMatches, type NativeIndex } from "./usearch-native.ts";

const scalarBytes: Readonly<Record<Quantization, number>> = { f32: 4, f16: 2, i8: 1 };

/** Rows added to usearch in one call: the absorber checks its time slice between calls. */
export const addRowsPerCallMax = 32;

/**
 * Rows a graph holds before rows are inserted concurrently. Measured (8-d, l2, 400 points,
 * 40 seeds): concurrent inserts into a small graph left 32 of 16,000 points unreachable by
 * their own vector at k=1, sequential ones none; from 8,000 points on, none either way.
 */
export const concurrentAddMinRows = 8_192;

/** usearch reads typed arrays from the start of their buffer: hand it a view that starts there. */
export function whole(vector: Float32Array): Float32Array {
  return vector.byteOffset === 0 && vector.byteLength === vector.buffer.byteLength ? vector : vector.slice();
}

export class Graph {
  readonly #index: NativeIndex;
  readonly #config: ShardIndexConfig;
  readonly #scratch: Float32Array;
  readonly #keys = new BigUint64Array(addRowsPerCallMax);
  readonly #contexts = Math.max(1, os.availableParallelism());
  #staged = 0;
  #removed = 0;
  #saving: Promise<void> | undefined;

  constructor(config: ShardIndexConfig) {
    this.#config = config;
    this.#index = createNativeIndex({
      dimensions: config.dimension,
      metric: config.metric,
      quantization: config.index.quantization,
      connectivity: config.index.connectivity,
      expansionAdd: config.index.expansionAdd,
      expansionSearch: config.index.expansionSearch,
    });
    this.#scratch = new Float32Array(addRowsPerCallMax * config.dimension);
  }

  get size(): number {
    return this.#index.size();
  }

  /**
   * Removed nodes usearch still holds: a removal only marks its node, which keeps its vector and
   * links (in memory and in a saved file) until a later add reuses it. compaction.ts rebuilds a
   * graph that holds too many.
   */
  get removed(): number {
    return this.#removed;
  }

  /** Approximate bytes usearch holds per node, removed ones too: the quantized vector, the key, and about 2 × connectivity u32 neighbours at level 0. */
  get memoryBytes(): number {
    const { dimension, index } = this.#config;
    return (this.#index.size() + this.#removed) * (dimension * scalarBytes[index.quantization] + 8 + 8 * index.connectivity);
  }

  /** Stages one row for the next `flush` (which happens by itself when the stage is full). */
  stage(slot: number, vectors: Float32Array, offset: number): void {
    const dim = this.#config.dimension;
    this.#scratch.set(vectors.subarray(offset, offset + dim), this.#staged * dim);
    this.#keys[this.#staged++] = BigInt(slot);
    if (this.#staged === addRowsPerCallMax) this.flush();
  }

  /**
   * Adds the staged rows: in log order on this thread (`threads` 1), or spread over `threads`
   * threads in one call (usearch inserts concurrently; the graph's shape then depends on
   * timing, the points it holds do not).
   */
  flush(threads = 1): void {
    const n = this.#staged;
    if (n === 0) return;
    this.#staged = 0;
    const dim = this.#config.dimension;
    const keys = this.#keys.slice(0, n);
    const vectors = this.#scratch.slice(0, n * dim);
    // An add that makes usearch grow reserves contexts for its own thread count (see the
    // header): that one passes them all, so its rows run on every core (once per doubling).
    // Any other single-threaded add is one sequential call: one row per call cost ~20 µs of
    // binding overhead each (27 % of a 128-d insert).
    const size = this.#index.size();
    const grows = size + n >= this.#index.capacity();
    // usearch puts an added row in a removed node when it holds one (index_dense add_).
    this.#removed = Math.max(0, this.#removed - n);
    if (size >= concurrentAddMinRows) this.#index.add(keys, vectors, threads > 1 || grows ? this.#contexts : 1);
    else if (!grows) this.#index.add(keys, vectors, 1);
    // A small graph grows one row per call: the reservation still gets every context, and no
    // two rows are inserted at once.
    else for (let i = 0; i < n; i++) this.#index.add(keys.slice(i, i + 1), vectors.slice(i * dim, (i + 1) * dim), this.#contexts);
  }

  /**
   * One batched search of `count` ≥ 2 queries back to back in `queries` (a whole-buffer array),
   * on up to `threads` threads; undefined when the graph is empty.
   */
  searchBatch(queries: Float32Array, count: number, k: number, threads: number): BatchMatches | undefined {
    if (count < 2) throw new Error(`searchBatch needs at least 2 queries, got ${count}`);
    if (k <= 0 || this.#index.size() === 0) return undefined;
    const wanted = Math.min(k, this.#index.size());
    const [keys, distances, counts] = this.#index.search(queries, wanted, Math.max(1, Math.min(threads, count, this.#contexts)));
    return { keys, distances, counts, k: wanted };
  }

  /** Holds `slot` (added and not removed): exact, unlike a search. */
  contains(slot: number): boolean {
    return this.#index.contains(BigUint64Array.of(BigInt(slot)))[0]!;
  }

  remove(slot: number): void {
    this.#removed += this.#index.remove(BigUint64Array.of(BigInt(slot)))[0]!;
  }

  /** The `k` nearest slots to `query` (a whole-buffer array), one thread. */
  search(query: Float32Array, k: number): { keys: BigUint64Array; distances: Float32Array } {
    if (k <= 0 || this.#index.size() === 0) return { keys: new BigUint64Array(0), distances: new Float32Array(0) };
    const [keys, distances, counts] = this.#index.search(query, Math.min(k, this.#index.size()), 1);
    const found = Number(counts[0]!);
    return found === keys.length ? { keys, distances } : { keys: keys.subarray(0, found), distances: distances.subarray(0, found) };
  }

  /**
   * Writes the graph to `path` off this thread. Until the promise settles the graph still
   * answers searches, and adding or removing is a bug (usearch throws): see `saving`.
   */
  save(path: string): Promise<void> {
    if (this.#saving) throw new Error("Graph.save: a save of this graph is running");
    this.flush();
    const saving = this.#index.saveAsync(path).finally(() => {
      this.#saving = undefined;
    });
    this.#saving = saving;
    return saving;
  }

  /** While a save runs: settles when it ends (the absorber waits for it before adding). */
  get saving(): Promise<void> | undefined {
    return this.#saving;
  }

  /**
   * Loads a saved graph into this empty one. usearch 2.25's JS `load` wrote past a heap block
   * when the file held more removed nodes than the key table reserved for its live ones (valgrind:
   * an invalid write in try_reserve; in the chaos run of 2026-12-07, two nodes aborted with
   * "corrupted size vs. prev_size"), so a guard once kept such files from loading; 2.26's
   * try_reserve never shrinks the vector lookup it copies, and test/graph-churn.test.ts loads
   * such files under glibc's heap checks.
   */
  load(path: string): void {
    this.#index.load(path);
    this.#removed = removedNodesOf(path);
  }
}

/**
 * How many removed nodes a saved usearch file holds, from its own bytes. usearch 2.25 and 2.26
 * write `[u32 rows][u32 bytes per row]`, the rows (one per node, removed ones included), then a
 * 64-byte header: "usearch", three u16 of version, four u8 kinds, then u64 count_present
 * (offset 17) and u64 count_deleted (offset 25).
 */
function removedNodesOf(path: string): number {
  const fd = openSync(path, "r");
  try {
    const head = Buffer.alloc(64);
    readSync(fd, head, 0, 8, 0);
    const headerAt = 8 + head.readUInt32LE(0) * head.readUInt32LE(4);
    if (readSync(fd, head, 0, 64, headerAt) !== 64 || head.toString("latin1", 0, 7) !== "usearch") {
      throw new Error(`${path}: no usearch header at byte ${headerAt}`);
    }
    return Number(head.readBigUInt64LE(25));
  } finally {
    closeSync(fd);
  }
}
