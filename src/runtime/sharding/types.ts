/** The sharding strategy interface, apart from `resolve` so strategies import it without a loop. */
import type { CollectionConfig, ShardingName } from "../schemas.ts";

export interface ShardingStrategy {
  readonly name: ShardingName;
  /**
   * The shard a point is written to: the point `id` whose vector is `vectors[offset …
   * offset + dimension)` (a writer passes its column of vectors, so no point object is made).
   */
  shardOf(id: string, vectors: ArrayLike<number>, offset: number): number;
  /** Shards that may hold this id: one for id-based strategies, every shard when placement follows the vector. */
  shardsForId(id: string): number[];
  /** Shards a search must probe (all of them unless the strategy can prune, e.g. by `nprobe`). */
  searchShards(vector: ArrayLike<number>, nprobe?: number): number[];
  /**
   * True when an id always maps to the same shard. When false, an upsert may move a
   * point to another shard, so the writer deletes the id from the other shards.
   */
  readonly idStable: boolean;
}

/** Every shard of a collection, in order. */
export function allShards(config: Pick<CollectionConfig, "shards">): number[] {
  return Array.from({ length: config.shards }, (_, s) => s);
}
