import type { CollectionConfig } from "../schemas.ts";
import { allShards, type ShardingStrategy } from "./types.ts";

/**
 * Ordered id ranges: `splitPoints` (shards − 1 strictly increasing ids, by JS string
 * comparison, i.e. UTF-16 code units) cut the id space; an id goes to shard
 * "number of split points ≤ id", so an id equal to a split point starts the next range.
 */
export function rangeSharding(config: CollectionConfig): ShardingStrategy {
  const splitPoints = config.splitPoints ?? [];
  if (splitPoints.length !== config.shards - 1) {
    throw new Error(`range sharding of ${config.name}: ${splitPoints.length} split points for ${config.shards} shards`);
  }
  const shardOfId = (id: string) => rangeShardOf(splitPoints, id);
  const all = allShards(config);
  return {
    name: "range",
    idStable: true,
    shardOf: (id) => shardOfId(id),
    shardsForId: (id) => [shardOfId(id)],
    searchShards: () => all,
  };
}

/** The number of split points ≤ id (binary search over the sorted split points). */
export function rangeShardOf(splitPoints: readonly string[], id: string): number {
  let lo = 0;
  let hi = splitPoints.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (splitPoints[mid]! <= id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
