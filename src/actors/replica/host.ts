/**
 * Runs the shard replicas this node should host. On a single node that is
 * every shard of every collection; the catalog watch starts and stops them
 * (reconcile, don't script).
 */
import type { Logger } from "../../runtime/log.ts";
import type { CollectionConfig } from "../../runtime/schemas.ts";
import type { Catalog } from "../catalog.ts";
import { shardKeyOf } from "../index/api.ts";
import { ShardReplica, type ReplicaDeps } from "./replica.ts";

export class ReplicaHost {
  readonly #deps: ReplicaDeps;
  readonly #log: Logger;
  /** collection name → shard → replica. */
  readonly #replicas = new Map<string, ShardReplica[]>();
  #unsubscribe: (() => void) | undefined;

  constructor(deps: ReplicaDeps) {
    this.#deps = deps;
    this.#log = deps.log.child({ actor: "replica-host" });
  }

  start(catalog: Catalog): void {
    for (const config of catalog.cached()) this.#startCollection(config);
    this.#unsubscribe = catalog.onChange((change) => {
      if (change.type === "put") this.#startCollection(change.config);
      else void this.#stopCollection(change.name);
    });
  }

  /** Replicas of a collection by shard (undefined where this node hosts none). */
  replicas(collection: string): readonly (ShardReplica | undefined)[] {
    return this.#replicas.get(collection) ?? [];
  }

  all(): ShardReplica[] {
    return [...this.#replicas.values()].flat();
  }

  /** A worker died: the replicas whose index lived there rebuild from snapshot + log. */
  indexesLost(shardKeys: string[]): void {
    const lost = new Set(shardKeys);
    for (const replica of this.all()) {
      if (lost.has(shardKeyOf(replica.config.uid, replica.shard))) replica.indexLost("index worker died");
    }
  }

  async stop(): Promise<void> {
    this.#unsubscribe?.();
    await Promise.all([...this.#replicas.keys()].map((name) => this.#stopCollection(name)));
  }

  #startCollection(config: CollectionConfig): void {
    const existing = this.#replicas.get(config.name);
    if (existing?.[0]?.config.uid === config.uid) return;
    const replicas = Array.from({ length: config.shards }, (_, shard) => new ShardReplica(config, shard, this.#deps));
    this.#replicas.set(config.name, replicas);
    for (const r of replicas) r.start();
    this.#log.info({ collection: config.name, shards: config.shards }, "hosting replicas");
  }

  async #stopCollection(name: string): Promise<void> {
    const replicas = this.#replicas.get(name);
    if (!replicas) return;
    this.#replicas.delete(name);
    await Promise.all(replicas.map((r) => r.stop()));
    this.#log.info({ collection: name }, "stopped replicas");
  }
}
