/**
 * Which numbers a vector may hold. JSON numbers are float64, but the log stores
 * float32 and usearch stores the collection's quantization, so a value that is
 * fine in JSON can become Infinity on the way in and poison every search (1e39
 * stored in a cosine collection came back first, at distance 0, for every
 * query). Measured with usearch 2.25 on this machine:
 *
 * - a component beyond float32 range (|x| > 3.4028235e38 rounds to Infinity) made
 *   that point the top hit of every cosine query;
 * - f16 stores |x| > 65504 as Infinity: the same poisoning, from 7e4 on;
 * - with l2 a vector of [1e20, 1e20] has a squared distance of 2e40 to the origin,
 *   Infinity in float32, and came back as `"distance": null`; with ip a dot
 *   product overflows the same way. Bounding ‖v‖² by 2^125 keeps every l2
 *   distance (≤ 4 · 2^125) and every inner product finite in float32;
 * - cosine is undefined for a zero vector, and with f16 any component below
 *   2^-14 (the smallest normal half float) loses precision and under 2^-25 becomes
 *   0; so a cosine vector needs one component at least as large as the storage
 *   type's smallest normal number.
 *
 * `shapeIssue` is what every vector must satisfy (the `Vector` schema);
 * `vectorIssue` adds the rules of one collection's vector space.
 */
import type { Metric, Quantization } from "./schemas.ts";
import { limits } from "./limits.ts";
import { describeValue } from "./text.ts";

/** Largest squared length of an l2 or ip vector: 4 · 2^125 = 2^127 stays below float32's 2^128. */
export const normSquaredMax = 2 ** 125;
export const f16Max = 65_504;

/** Smallest |x| one component of a cosine vector must reach: the storage type's smallest normal number. */
const directionMin: Readonly<Record<Quantization, number>> = { f32: 2 ** -126, f16: 2 ** -14, i8: 2 ** -126 };

export interface VectorSpace {
  dimension: number;
  metric: Metric;
  quantization: Quantization;
}

export function spaceOf(config: { dimension: number; metric: Metric; index: { quantization: Quantization } }): VectorSpace {
  return { dimension: config.dimension, metric: config.metric, quantization: config.index.quantization };
}

/** A problem at `path` below the vector (`[i]` for a component, `[]` for the whole vector). */
export interface VectorIssue {
  path: number[];
  message: string;
  /** Set when the problem is the vector's length: the API answers `dimension_mismatch`. */
  expected?: number;
}

/** Non-empty array of at most `limits.dimensionMax` numbers, each a finite float32. One loop: a 10,000 × 784 upsert holds 7.8M numbers. */
export function shapeIssue(value: unknown): VectorIssue | undefined {
  if (!Array.isArray(value)) return { path: [], message: `must be an array of numbers, got ${describeValue(value)}` };
  if (value.length === 0) return { path: [], message: "must not be empty" };
  if (value.length > limits.dimensionMax) return { path: [], message: `has ${value.length} numbers, at most ${limits.dimensionMax} are allowed` };
  for (let i = 0; i < value.length; i++) {
    const x: unknown = value[i];
    if (typeof x !== "number") return { path: [i], message: `must be a number, got ${describeValue(x)}` };
    if (!Number.isFinite(Math.fround(x))) return { path: [i], message: `${x} is not a finite float32 (|x| ≤ 3.4028235e38)` };
  }
  return undefined;
}

/**
 * The first rule of `space` that `vector` breaks, or undefined. A JSON vector is shape-checked
 * first (shapeIssue); a Float32Array (a log entry, a replica request) is taken as it is, its
 * values already float32, so only NaN and ±Infinity are left to refuse.
 */
export function vectorIssue(vector: ArrayLike<number>, space: VectorSpace): VectorIssue | undefined {
  if (vector.length !== space.dimension) {
    return { path: [], message: `expected dimension ${space.dimension}, got ${vector.length}`, expected: space.dimension };
  }
  return rowIssue(vector, 0, space);
}

/**
 * `vectorIssue` of the row of `space.dimension` values at `offset` in `values`, its length taken
 * as right. Bulk writes check their columns row by row through this, with no view or string
 * per row: checking a 1,000 × 128 upsert took 0.53–0.64 µs a vector this way against
 * 0.72–1.06 µs through a subarray and a name per row (this machine, three runs each).
 */
export function rowIssue(values: ArrayLike<number>, offset: number, space: VectorSpace): VectorIssue | undefined {
  let normSquared = 0;
  let largest = 0;
  const f16 = space.quantization === "f16";
  for (let i = 0; i < space.dimension; i++) {
    const x = values[offset + i]!;
    if (!Number.isFinite(x)) return { path: [i], message: `${x} is not a finite float32` };
    const magnitude = Math.abs(x);
    if (f16 && magnitude > f16Max) {
      return { path: [i], message: `${x} is outside ±${f16Max}, the range of f16 (the collection's quantization)` };
    }
    normSquared += x * x;
    if (magnitude > largest) largest = magnitude;
  }
  if (space.metric === "cosine") {
    const min = directionMin[space.quantization];
    if (largest < min) {
      return {
        path: [],
        message:
          largest === 0
            ? "is a zero vector, which has no direction (metric cosine)"
            : `has no component with |x| ≥ ${min} (the smallest normal ${space.quantization} number), so it has no reliable direction (metric cosine)`,
      };
    }
  } else if (normSquared > normSquaredMax) {
    return {
      path: [],
      message: `has squared length ${normSquared.toExponential(3)}, above 2^125 (${normSquaredMax.toExponential(3)}): its ${space.metric} distances would overflow float32`,
    };
  }
  return undefined;
}
