import type { CollectionConfig } from "../schemas.ts";
import { allShards, type ShardingStrategy } from "./types.ts";
import { clustersByDirection, normalizeInPlace } from "./kmeans.ts";

/**
 * Placement by vector: shard i owns the region nearest to centroid i (trained by
 * k-means at create time, or given). A search may probe only the `nprobe` shards
 * whose centroids are nearest to the query. An id can sit in any shard (it follows
 * its vector), so gets and deletes go to every shard, and an upsert that moves a
 * point deletes the old copy (idStable false).
 *
 * Nearness: l2 → squared euclidean; cosine and ip → highest cosine to the
 * centroid (see kmeans.ts for why ip partitions by direction). Ties go to the
 * lower shard.
 */
export function vectorSharding(config: CollectionConfig): ShardingStrategy {
  const centroids = config.centroids;
  if (!centroids || centroids.length !== config.shards) {
    throw new Error(`vector sharding of ${config.name}: ${centroids?.length ?? 0} centroids for ${config.shards} shards`);
  }
  const dim = config.dimension;
  const k = centroids.length;
  const direction = clustersByDirection(config.metric);
  const flat = new Float64Array(k * dim);
  centroids.forEach((c, i) => {
    flat.set(c, i * dim);
    if (direction) normalizeInPlace(flat, i * dim, dim);
  });
  // Lower is nearer. For direction the query need not be normalised: scaling it keeps the order.
  const score = (v: ArrayLike<number>, offset: number, c: number): number => {
    let sum = 0;
    const base = c * dim;
    if (direction) {
      for (let j = 0; j < dim; j++) sum += v[offset + j]! * flat[base + j]!;
      return -sum;
    }
    for (let j = 0; j < dim; j++) {
      const d = v[offset + j]! - flat[base + j]!;
      sum += d * d;
    }
    return sum;
  };
  const checkDimension = (length: number) => {
    if (length !== dim) throw new Error(`vector sharding of ${config.name}: vector of dimension ${length}, expected ${dim}`);
  };
  const all = allShards(config);
  return {
    name: "vector",
    idStable: false,
    shardOf(_id, vectors, offset) {
      checkDimension(Math.min(dim, vectors.length - offset));
      let best = 0;
      let bestScore = Infinity;
      for (let c = 0; c < k; c++) {
        const s = score(vectors, offset, c);
        if (s < bestScore) {
          bestScore = s;
          best = c;
        }
      }
      return best;
    },
    shardsForId: () => all,
    searchShards(vector, nprobe) {
      if (nprobe === undefined || nprobe >= k) return all;
      checkDimension(vector.length);
      const scores = all.map((c) => score(vector, 0, c));
      return [...all].sort((a, b) => scores[a]! - scores[b]! || a - b).slice(0, Math.max(1, nprobe));
    },
  };
}
