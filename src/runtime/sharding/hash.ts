import murmur from "murmurhash3js-revisited";
import type { CollectionConfig } from "../schemas.ts";
import { allShards, type ShardingStrategy } from "./types.ts";

const encoder = new TextEncoder();

/** murmur3 (x86, 32-bit, seed 0) of the id's UTF-8 bytes, modulo the shard count. */
export function hashSharding(config: CollectionConfig): ShardingStrategy {
  const shards = config.shards;
  const shardOfId = (id: string) => murmur.x86.hash32(encoder.encode(id), 0) % shards;
  const all = allShards(config);
  return {
    name: "hash",
    idStable: true,
    shardOf: (id) => shardOfId(id),
    shardsForId: (id) => [shardOfId(id)],
    searchShards: () => all,
  };
}
