/**
 * Sharding strategies (moleculer style): a small interface and `resolve(name)`.
 * A strategy decides which shard a point is written to, which shards may hold
 * an id, and which shards a search must probe.
 */
import { limits } from "../limits.ts";
import type { CollectionConfig, CreateCollectionParsed, ShardingName } from "../schemas.ts";
import { hashSharding } from "./hash.ts";
import { kmeans } from "./kmeans.ts";
import { rangeSharding } from "./range.ts";
import type { ShardingStrategy } from "./types.ts";
import { vectorSharding } from "./vector.ts";

export { allShards, type ShardingStrategy } from "./types.ts";

type Factory = (config: CollectionConfig) => ShardingStrategy;

const strategies: Record<ShardingName, Factory> = {
  hash: hashSharding,
  range: rangeSharding,
  vector: vectorSharding,
};

/** Configs are immutable once stored, so a strategy (e.g. prepared centroids) is built once per config object. */
const resolved = new WeakMap<CollectionConfig, ShardingStrategy>();

export function resolveSharding(config: CollectionConfig): ShardingStrategy {
  let strategy = resolved.get(config);
  if (!strategy) resolved.set(config, (strategy = strategies[config.sharding](config)));
  return strategy;
}

/** The sharding fields a CollectionConfig stores. */
export type ShardingConfig = Pick<CollectionConfig, "sharding" | "shardingRequested" | "splitPoints" | "centroids">;

/**
 * Decides a new collection's sharding once, at create time, so replicas and routers
 * never re-decide: `auto` becomes a concrete strategy and a sample becomes centroids
 * (the sample itself is not stored).
 *
 * The auto rule: `vector` when a sample or centroids are given and shards > 1,
 * otherwise `hash`.
 */
export function planSharding(request: CreateCollectionParsed): ShardingConfig {
  const { sharding, shards } = request;
  if (sharding === "auto") {
    const byVector = shards > 1 && (request.sample !== undefined || request.centroids !== undefined);
    return { ...planSharding({ ...request, sharding: byVector ? "vector" : "hash" }), shardingRequested: "auto" };
  }
  switch (sharding) {
    case "hash":
      return { sharding };
    case "range":
      return { sharding, splitPoints: request.splitPoints ?? [] };
    case "vector": {
      const centroids =
        request.centroids ?? kmeans(trainingSet(request.sample ?? [], shards, request.dimension), { k: shards, metric: request.metric }).centroids;
      return { sharding, centroids };
    }
  }
}

/**
 * The sample vectors k-means trains on: all of them, or an evenly strided subset of
 * max(k, ⌊kmeansWorkPerIterationMax / (k × dimension)⌋) so training stays bounded.
 */
export function trainingSet<T>(sample: readonly T[], k: number, dimension: number): T[] {
  const size = Math.max(k, Math.floor(limits.kmeansWorkPerIterationMax / (k * dimension)));
  if (sample.length <= size) return [...sample];
  const step = sample.length / size;
  return Array.from({ length: size }, (_, i) => sample[Math.floor(i * step)]!);
}
