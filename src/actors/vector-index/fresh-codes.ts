/**
 * 8-bit codes of a full fresh-buffer chunk: the first pass of a search over the buffer reads
 * them instead of the float32 rows, a quarter of the bytes, and the rows it shortlists are
 * ranked again exactly on their float32 vectors (fresh.ts).
 *
 * Why: under a sustained import the fresh buffers sit at their bound (16 MiB a shard, the
 * writers paced to the graphs), and every search scanned all of it exactly: 64 MiB over 4
 * shards, 7–15 ms of CPU a search in two profiles, 8–15 % of the index workers' time at 20
 * searches a second. usearch's exactSearch over 131,072 rows of 128-d took 2.8 ms of CPU on
 * these codes against 7.0 ms on float32 (1 MiB chunks, warm cache, this machine); in the
 * middle of an import, where both are cold, a search's scans took ~5.7 ms against ~7.1 ms
 * (performance.md).
 *
 * Each metric keeps its order under the coding (usearch's int8 kernels compute the same
 * l2sq, 1 − cos and 1 − dot as the float32 ones, on the codes):
 * - l2: one offset per dimension (the middle of the chunk's range) and one scale for all of
 *   them, so differences keep their proportions; a query outside the chunk's range is clamped
 *   to it (the exact second pass corrects what that distorts).
 * - cosine: every row and the query normalised, times 127.
 * - ip: one scale for the chunk, another for the query (a scaled query keeps the order).
 */
import type { Metric } from "../../runtime/schemas.ts";

const codeMax = 127;

export interface ChunkCodes {
  /** rows × dimension, from offset 0 of its own buffer (exactSearch ignores byteOffset). */
  readonly codes: Int8Array;
  /** l2 only: how the chunk was coded, which its queries must follow. */
  readonly l2?: { readonly offsets: Float32Array; readonly scale: number };
}

export interface Quantizer {
  /** Codes of the first `rows` rows of `vectors`. */
  encode(vectors: Float32Array, rows: number): ChunkCodes;
  /** Writes the code of `query` for a search of `chunk` into `out`. */
  query(query: Float32Array, chunk: ChunkCodes, out: Int8Array): void;
}

function code(value: number): number {
  return Math.max(-codeMax, Math.min(codeMax, Math.round(value)));
}

function l2(dimension: number): Quantizer {
  return {
    encode(vectors, rows) {
      const lows = new Float32Array(dimension).fill(Infinity);
      const highs = new Float32Array(dimension).fill(-Infinity);
      for (let row = 0; row < rows; row++) {
        for (let j = 0, at = row * dimension; j < dimension; j++, at++) {
          const v = vectors[at]!;
          if (v < lows[j]!) lows[j] = v;
          if (v > highs[j]!) highs[j] = v;
        }
      }
      const offsets = new Float32Array(dimension);
      let halfRange = 0;
      for (let j = 0; j < dimension; j++) {
        offsets[j] = (lows[j]! + highs[j]!) / 2;
        halfRange = Math.max(halfRange, (highs[j]! - lows[j]!) / 2);
      }
      const scale = halfRange > 0 ? codeMax / halfRange : 1;
      const codes = new Int8Array(rows * dimension);
      for (let i = 0; i < codes.length; i++) codes[i] = code((vectors[i]! - offsets[i % dimension]!) * scale);
      return { codes, l2: { offsets, scale } };
    },
    query(query, chunk, out) {
      const { offsets, scale } = chunk.l2!;
      for (let j = 0; j < dimension; j++) out[j] = code((query[j]! - offsets[j]!) * scale);
    },
  };
}

function unitScale(vectors: Float32Array, at: number, dimension: number): number {
  let squares = 0;
  for (let j = 0; j < dimension; j++) squares += vectors[at + j]! ** 2;
  return squares > 0 ? codeMax / Math.sqrt(squares) : 0;
}

function cosine(dimension: number): Quantizer {
  return {
    encode(vectors, rows) {
      const codes = new Int8Array(rows * dimension);
      for (let row = 0, at = 0; row < rows; row++, at += dimension) {
        const scale = unitScale(vectors, at, dimension);
        for (let j = 0; j < dimension; j++) codes[at + j] = code(vectors[at + j]! * scale);
      }
      return { codes };
    },
    query(query, _chunk, out) {
      const scale = unitScale(query, 0, dimension);
      for (let j = 0; j < dimension; j++) out[j] = code(query[j]! * scale);
    },
  };
}

function largest(vectors: Float32Array, length: number): number {
  let max = 0;
  for (let i = 0; i < length; i++) max = Math.max(max, Math.abs(vectors[i]!));
  return max;
}

function ip(dimension: number): Quantizer {
  return {
    encode(vectors, rows) {
      const max = largest(vectors, rows * dimension);
      const scale = max > 0 ? codeMax / max : 1;
      const codes = new Int8Array(rows * dimension);
      for (let i = 0; i < codes.length; i++) codes[i] = code(vectors[i]! * scale);
      return { codes };
    },
    query(query, _chunk, out) {
      const max = largest(query, dimension);
      const scale = max > 0 ? codeMax / max : 1;
      for (let j = 0; j < dimension; j++) out[j] = code(query[j]! * scale);
    },
  };
}

const byMetric: Readonly<Record<Metric, (dimension: number) => Quantizer>> = { l2, cosine, ip };

export function quantizer(metric: Metric, dimension: number): Quantizer {
  return byMetric[metric](dimension);
}
