/**
 * Exact distances for filtered scans over a shard's float32 vectors.
 * They follow usearch's definitions so exact and HNSW results are comparable:
 * l2 → squared euclidean, cosine → 1 − cos (0 when both vectors are zero, 1 when
 * only one is, never negative), ip → 1 − dot. They are computed on the original
 * float32 vectors even when the HNSW graph is quantized, so exact means exact.
 */
import type { Metric } from "../../runtime/schemas.ts";

/** Distance between `query` and the vector at `offset` in `arena` (a block of vectors). */
export type DistanceFn = (query: Float32Array, arena: Float32Array, offset: number) => number;

function l2sq(query: Float32Array, arena: Float32Array, offset: number): number {
  let sum = 0;
  for (let i = 0; i < query.length; i++) {
    const d = query[i]! - arena[offset + i]!;
    sum += d * d;
  }
  return Math.fround(sum);
}

function ip(query: Float32Array, arena: Float32Array, offset: number): number {
  let dot = 0;
  for (let i = 0; i < query.length; i++) dot += query[i]! * arena[offset + i]!;
  return Math.fround(1 - dot);
}

function cosine(query: Float32Array, arena: Float32Array, offset: number): number {
  let dot = 0;
  let qq = 0;
  let vv = 0;
  for (let i = 0; i < query.length; i++) {
    const q = query[i]!;
    const v = arena[offset + i]!;
    dot += q * v;
    qq += q * q;
    vv += v * v;
  }
  if (qq === 0 && vv === 0) return 0;
  if (dot === 0) return 1;
  return Math.fround(Math.max(0, 1 - dot / Math.sqrt(qq * vv)));
}

const byMetric: Readonly<Record<Metric, DistanceFn>> = { l2: l2sq, ip, cosine };

export function distanceFn(metric: Metric): DistanceFn {
  return byMetric[metric];
}

export interface Scored {
  slot: number;
  distance: number;
}

/** Orders by ascending distance, ties by id, so every replica returns the same top-k. */
export type ScoredOrder = (a: Scored, b: Scored) => number;

/**
 * The `k` best of `slots` by `order`, their vectors given back to back in `vectors` (row i is
 * slots[i]'s): a bounded max-heap (worst on top), so a scan of n candidates costs O(n log k)
 * and O(k) memory.
 */
export function exactTopK(
  query: Float32Array,
  vectors: Float32Array,
  slots: ArrayLike<number>,
  k: number,
  distance: DistanceFn,
  order: ScoredOrder,
): Scored[] {
  const heap: Scored[] = [];
  const dimension = query.length;
  const worse = (i: number, j: number): boolean => order(heap[i]!, heap[j]!) > 0;
  const swap = (i: number, j: number): void => {
    const t = heap[i]!;
    heap[i] = heap[j]!;
    heap[j] = t;
  };
  for (let n = 0; n < slots.length; n++) {
    const candidate = { slot: slots[n]!, distance: distance(query, vectors, n * dimension) };
    if (heap.length < k) {
      heap.push(candidate);
      for (let i = heap.length - 1; i > 0; ) {
        const parent = (i - 1) >> 1;
        if (!worse(i, parent)) break;
        swap(i, parent);
        i = parent;
      }
    } else if (k > 0 && order(candidate, heap[0]!) < 0) {
      heap[0] = candidate;
      for (let i = 0; ; ) {
        const left = 2 * i + 1;
        const right = left + 1;
        let top = i;
        if (left < heap.length && worse(left, top)) top = left;
        if (right < heap.length && worse(right, top)) top = right;
        if (top === i) break;
        swap(i, top);
        i = top;
      }
    }
  }
  return heap.sort(order);
}
