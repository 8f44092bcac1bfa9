import murmur from "murmurhash3js-revisited";
import type { CollectionConfig } from "../schemas.ts";
import type { ShardingStrategy } from "./index.ts";

const encoder = new TextEncoder();

/** murmur3 (x86, 32-bit, seed 0) of the id's UTF-8 bytes, modulo the shard count. */
export function hashSharding(config: Pick<CollectionConfig, "shards">): ShardingStrategy {
  const shards = config.shards;
  return {
    name: "hash",
    shardOf: (id) => murmur.x86.hash32(encoder.encode(id), 0) % shards,
  };
}
