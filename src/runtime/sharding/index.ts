/**
 * Sharding strategies (moleculer style): a small interface and `resolve(name)`.
 * A strategy maps a point id to a shard of a collection.
 */
import type { CollectionConfig, ShardingName } from "../schemas.ts";
import { hashSharding } from "./hash.ts";

export interface ShardingStrategy {
  readonly name: ShardingName;
  shardOf(id: string): number;
}

type Factory = (config: Pick<CollectionConfig, "shards">) => ShardingStrategy;

const strategies: Record<ShardingName, Factory> = {
  hash: hashSharding,
};

export function resolveSharding(config: Pick<CollectionConfig, "shards" | "sharding">): ShardingStrategy {
  return strategies[config.sharding](config);
}
