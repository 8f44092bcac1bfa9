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
  maxIterations?: number;
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
  const n = sample.length;
  const k = options.k;
  if (!Number.isInteger(k) || k < 1) throw new Error(`k must be a positive integer, got ${k}`);
  if (n < k) throw new Error(`k-means needs at least k = ${k} sample vectors, got ${n}`);
  const dim = sample[0]!.length;
  const direction = clustersByDirection(options.metric);
  const points = new Float64Array(n * dim);
  sample.forEach((v, i) => {
    if (v.length !== dim) throw new Error(`sample vector ${i} has dimension ${v.length}, expected ${dim}`);
    for (let j = 0; j < dim; j++) points[i * dim + j] = v[j]!;
    if (direction) normalizeInPlace(points, i * dim, dim);
  });

  const random = seededRandom(options.seed ?? kmeansSeedDefault);
  const centroids = new Float64Array(k * dim);
  const setCentroid = (c: number, point: number) => centroids.set(points.subarray(point * dim, (point + 1) * dim), c * dim);

  // k-means++: the first centroid uniformly, each next one with probability ∝ D² to the nearest chosen so far.
  const nearest = new Float64Array(n).fill(Infinity);
  setCentroid(0, Math.min(n - 1, Math.floor(random() * n)));
  for (let c = 1; c < k; c++) {
    let total = 0;
    for (let i = 0; i < n; i++) {
      const d = squaredDistance(points, i * dim, centroids, (c - 1) * dim, dim);
      if (d < nearest[i]!) nearest[i] = d;
      total += nearest[i]!;
    }
    let chosen = n - 1;
    if (total > 0) {
      let target = random() * total;
      for (let i = 0; i < n; i++) {
        target -= nearest[i]!;
        if (target < 0) {
          chosen = i;
          break;
        }
      }
    } else {
      // Every point coincides with a chosen centroid: any point will do.
      chosen = Math.min(n - 1, Math.floor(random() * n));
    }
    setCentroid(c, chosen);
  }

  const assignments = new Int32Array(n).fill(-1);
  const distances = new Float64Array(n);
  const sizes = new Int32Array(k);
  const sums = new Float64Array(k * dim);
  const maxIterations = options.maxIterations ?? kmeansIterationsMax;
  let iterations = 0;
  for (; iterations < maxIterations; iterations++) {
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
      if (assignments[i] !== best) changed++;
      assignments[i] = best;
      distances[i] = bestDistance;
    }
    if (changed === 0 && iterations > 0) break;

    sizes.fill(0);
    for (let i = 0; i < n; i++) sizes[assignments[i]!]!++;
    // Re-seed each empty cluster with the point farthest from its centroid (taken from a cluster of ≥ 2).
    for (let c = 0; c < k; c++) {
      if (sizes[c] !== 0) continue;
      let far = -1;
      for (let i = 0; i < n; i++) {
        if (sizes[assignments[i]!]! > 1 && (far < 0 || distances[i]! > distances[far]!)) far = i;
      }
      if (far < 0) break; // n ≥ k, so this cannot happen; guard anyway.
      sizes[assignments[far]!]!--;
      assignments[far] = c;
      distances[far] = 0;
      sizes[c] = 1;
    }

    sums.fill(0);
    for (let i = 0; i < n; i++) {
      const c = assignments[i]!;
      for (let j = 0; j < dim; j++) sums[c * dim + j]! += points[i * dim + j]!;
    }
    for (let c = 0; c < k; c++) {
      const size = sizes[c]!;
      if (size === 0) continue;
      for (let j = 0; j < dim; j++) centroids[c * dim + j] = sums[c * dim + j]! / size;
      if (direction) normalizeInPlace(centroids, c * dim, dim);
    }
  }

  const result: number[][] = [];
  for (let c = 0; c < k; c++) result.push(Array.from(centroids.subarray(c * dim, (c + 1) * dim)));
  return { centroids: result, assignments, iterations };
}
