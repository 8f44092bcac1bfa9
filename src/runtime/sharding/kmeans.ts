/**
 * k-means for vector sharding: k-means++ seeding from a seeded PRNG, then Lloyd
 * iterations until no point changes cluster or the iteration cap is reached. An
 * empty cluster is re-seeded with the point farthest from its centroid. Pure and
 * deterministic: the same sample, k, metric and seed give the same centroids on
 * every node.
 *
 * Metric: l2 clusters by squared euclidean distance. cosine and ip cluster by
 * direction (spherical k-means): vectors and centroids are normalised to unit
 * length, so the nearest centroid is the one with the highest cosine. ip uses the
 * cosine partition too — an inner-product "nearest centroid" is dominated by the
 * centroid's norm and does not partition the space into useful regions.
 */
import type { Metric } from "../schemas.ts";
import { seededRandom } from "../random.ts";

export interface KMeansOptions {
  k: number;
  metric: Metric;
  /** PRNG seed for the k-means++ draws (default 0x5eed). */
  seed?: number;
  /** Cap on Lloyd iterations (default 25). */
  iterationsMax?: number;
}

export interface KMeansResult {
  /** k centroids; unit length for cosine/ip. */
  centroids: number[][];
  /** The cluster of each sample vector. */
  assignments: Int32Array;
  /** Lloyd iterations run. */
  iterations: number;
}

export const kmeansSeedDefault = 0x5eed;
export const kmeansIterationsMax = 25;

/** Clusters by direction (cosine) rather than position (l2)? */
export function clustersByDirection(metric: Metric): boolean {
  return metric !== "l2";
}

/** Scales `v[offset .. offset+dim)` to unit length in place (a zero vector stays zero). */
export function normalizeInPlace(v: Float64Array, offset: number, dim: number): void {
  let norm = 0;
  for (let j = 0; j < dim; j++) norm += v[offset + j]! * v[offset + j]!;
  if (norm === 0) return;
  const scale = 1 / Math.sqrt(norm);
  for (let j = 0; j < dim; j++) v[offset + j]! *= scale;
}

function squaredDistance(a: Float64Array, ai: number, b: Float64Array, bi: number, dim: number): number {
  let sum = 0;
  for (let j = 0; j < dim; j++) {
    const d = a[ai + j]! - b[bi + j]!;
    sum += d * d;
  }
  return sum;
}

export function kmeans(sample: readonly ArrayLike<number>[], options: KMeansOptions): KMeansResult {
  const k = options.k;
  if (!Number.isInteger(k) || k < 1) throw new Error(`k must be a positive integer, got ${k}`);
  if (sample.length < k) throw new Error(`k-means needs at least k = ${k} sample vectors, got ${sample.length}`);
  const direction = clustersByDirection(options.metric);
  const space = packSample(sample, direction);
  const centroids = seedPlusPlus(space, k, seededRandom(options.seed ?? kmeansSeedDefault));
  const lloyd = newLloydState(space.n, k, space.dim);
  const iterationsMax = options.iterationsMax ?? kmeansIterationsMax;
  let iterations = 0;
  for (; iterations < iterationsMax; iterations++) {
    const changed = assignNearest(space, centroids, k, lloyd);
    if (changed === 0 && iterations > 0) break;
    countSizes(lloyd);
    reseedEmpty(lloyd, k);
    moveCentroids(space, centroids, k, lloyd, direction);
  }
  const result: number[][] = [];
  for (let c = 0; c < k; c++) result.push(Array.from(centroids.subarray(c * space.dim, (c + 1) * space.dim)));
  return { centroids: result, assignments: lloyd.assignments, iterations };
}

/** The sample as one flat array of n × dim doubles (unit length when clustering by direction). */
interface Space {
  points: Float64Array;
  n: number;
  dim: number;
}

function packSample(sample: readonly ArrayLike<number>[], direction: boolean): Space {
  const n = sample.length;
  const dim = sample[0]!.length;
  const points = new Float64Array(n * dim);
  sample.forEach((v, i) => {
    if (v.length !== dim) throw new Error(`sample vector ${i} has dimension ${v.length}, expected ${dim}`);
    for (let j = 0; j < dim; j++) points[i * dim + j] = v[j]!;
    if (direction) normalizeInPlace(points, i * dim, dim);
  });
  return { points, n, dim };
}

/** k-means++: the first centroid uniformly, each next one with probability ∝ D² to the nearest chosen so far. */
function seedPlusPlus({ points, n, dim }: Space, k: number, random: () => number): Float64Array {
  const centroids = new Float64Array(k * dim);
  const setCentroid = (c: number, point: number) => centroids.set(points.subarray(point * dim, (point + 1) * dim), c * dim);
  const nearest = new Float64Array(n).fill(Infinity);
  setCentroid(0, Math.min(n - 1, Math.floor(random() * n)));
  for (let c = 1; c < k; c++) {
    let total = 0;
    for (let i = 0; i < n; i++) {
      const d = squaredDistance(points, i * dim, centroids, (c - 1) * dim, dim);
      if (d < nearest[i]!) nearest[i] = d;
      total += nearest[i]!;
    }
    // When every point coincides with a chosen centroid (total 0), any point will do.
    setCentroid(c, total > 0 ? drawWeighted(nearest, random() * total) : Math.min(n - 1, Math.floor(random() * n)));
  }
  return centroids;
}

/** The index where the running sum of `weights` first passes `target` (the last one if rounding keeps it short). */
function drawWeighted(weights: Float64Array, target: number): number {
  for (let i = 0; i < weights.length; i++) {
    target -= weights[i]!;
    if (target < 0) return i;
  }
  return weights.length - 1;
}

/** What one Lloyd iteration reads and rewrites, allocated once. */
interface LloydState {
  assignments: Int32Array;
  /** Squared distance of each point to its centroid. */
  distances: Float64Array;
  sizes: Int32Array;
  sums: Float64Array;
}

function newLloydState(n: number, k: number, dim: number): LloydState {
  return { assignments: new Int32Array(n).fill(-1), distances: new Float64Array(n), sizes: new Int32Array(k), sums: new Float64Array(k * dim) };
}

/** Assigns every point to its nearest centroid; returns how many changed cluster. */
function assignNearest({ points, n, dim }: Space, centroids: Float64Array, k: number, s: LloydState): number {
  let changed = 0;
  for (let i = 0; i < n; i++) {
    let best = 0;
    let bestDistance = Infinity;
    for (let c = 0; c < k; c++) {
      const d = squaredDistance(points, i * dim, centroids, c * dim, dim);
      if (d < bestDistance) {
        bestDistance = d;
        best = c;
      }
    }
    if (s.assignments[i] !== best) changed++;
    s.assignments[i] = best;
    s.distances[i] = bestDistance;
  }
  return changed;
}

function countSizes(s: LloydState): void {
  s.sizes.fill(0);
  for (let i = 0; i < s.assignments.length; i++) s.sizes[s.assignments[i]!]!++;
}

/** Re-seeds each empty cluster with the point farthest from its centroid (taken from a cluster of ≥ 2). */
function reseedEmpty(s: LloydState, k: number): void {
  const { assignments, distances, sizes } = s;
  for (let c = 0; c < k; c++) {
    if (sizes[c] !== 0) continue;
    let far = -1;
    for (let i = 0; i < assignments.length; i++) {
      if (sizes[assignments[i]!]! > 1 && (far < 0 || distances[i]! > distances[far]!)) far = i;
    }
    if (far < 0) return; // n ≥ k, so this cannot happen; guard anyway.
    sizes[assignments[far]!]!--;
    assignments[far] = c;
    distances[far] = 0;
    sizes[c] = 1;
  }
}

/** Moves each non-empty cluster's centroid to the mean of its points (renormalised by direction). */
function moveCentroids({ points, n, dim }: Space, centroids: Float64Array, k: number, s: LloydState, direction: boolean): void {
  s.sums.fill(0);
  for (let i = 0; i < n; i++) {
    const c = s.assignments[i]!;
    for (let j = 0; j < dim; j++) s.sums[c * dim + j]! += points[i * dim + j]!;
  }
  for (let c = 0; c < k; c++) {
    const size = s.sizes[c]!;
    if (size === 0) continue;
    for (let j = 0; j < dim; j++) centroids[c * dim + j] = s.sums[c * dim + j]! / size;
    if (direction) normalizeInPlace(centroids, c * dim, dim);
  }
}
