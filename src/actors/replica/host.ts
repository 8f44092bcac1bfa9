/**
 * Runs the shard replicas the placement assigns to this node (reconcile,
 * don't script): on every catalog or placement change, start the replicas this
 * node should host and stop the others. The first replica listed for a shard
 * is the one that writes snapshots.
 */
import type { Logger } from "../../runtime/log.ts";
import type { CollectionConfig } from "../../runtime/schemas.ts";
import type { Catalog } from "../catalog.ts";
import { shardKeyOf } from "../index/api.ts";
import { hostsOf, type PlacementStore } from "../placement-store.ts";
import { ShardReplica, type ReplicaDeps } from "./replica.ts";

export class ReplicaHost {
  readonly #deps: ReplicaDeps;
  readonly #log: Logger;
  /** collection name → shard → replica (sparse: only the shards hosted here). */
  readonly #replicas = new Map<string, (ShardReplica | undefined)[]>();
  readonly #unsubscribe: (() => void)[] = [];
  #catalog: Catalog | undefined;
  #placements: PlacementStore | undefined;
  #reconciling = Promise.resolve();

  constructor(deps: ReplicaDeps) {
    this.#deps = deps;
    this.#log = deps.log.child({ actor: "replica-host" });
  }

  start(catalog: Catalog, placements: PlacementStore): void {
    this.#catalog = catalog;
    this.#placements = placements;
    this.#unsubscribe.push(catalog.onChange(() => this.#schedule()), placements.onChange(() => this.#schedule()));
    this.#schedule();
  }

  /** Replicas of a collection hosted here, indexed by shard (undefined where not hosted). */
  replicas(collection: string): readonly (ShardReplica | undefined)[] {
    return this.#replicas.get(collection) ?? [];
  }

  all(): ShardReplica[] {
    return [...this.#replicas.values()].flat().filter((r): r is ShardReplica => r !== undefined);
  }

  /** Whether this node is the shard's designated snapshot writer (first replica in the placement). */
  designated(collection: string, shard: number): boolean {
    return this.#placements?.get(collection)?.record.shards[shard]?.replicas[0] === this.#deps.nodeId;
  }

  /** A worker died: the replicas whose index lived there rebuild from snapshot + log. */
  indexesLost(shardKeys: string[]): void {
    const lost = new Set(shardKeys);
    for (const replica of this.all()) {
      if (lost.has(shardKeyOf(replica.config.uid, replica.shard))) replica.indexLost("index worker died");
    }
  }

  async stop(): Promise<void> {
    this.#unsubscribe.forEach((off) => off());
    await this.#reconciling;
    await Promise.all(this.all().map((r) => r.stop()));
    this.#replicas.clear();
  }

  #schedule(): void {
    this.#reconciling = this.#reconciling.then(() => this.#reconcile()).catch((err) => this.#log.error({ err }, "replica reconcile failed"));
  }

  async #reconcile(): Promise<void> {
    const configs = new Map((this.#catalog?.cached() ?? []).map((c) => [c.name, c]));
    for (const [name, replicas] of [...this.#replicas]) {
      const config = configs.get(name);
      const wanted = config ? this.#wantedShards(config) : new Set<number>();
      for (const replica of replicas) {
        if (replica && (replica.config.uid !== config?.uid || !wanted.has(replica.shard))) {
          replicas[replica.shard] = undefined;
          await replica.stop();
          this.#log.info({ collection: name, shard: replica.shard }, "stopped replica");
        }
      }
      if (replicas.every((r) => r === undefined)) this.#replicas.delete(name);
    }
    for (const config of configs.values()) {
      for (const shard of this.#wantedShards(config)) {
        let replicas = this.#replicas.get(config.name);
        if (!replicas) this.#replicas.set(config.name, (replicas = []));
        if (replicas[shard]) continue;
        const replica = new ShardReplica(config, shard, this.#deps, () => this.designated(config.name, shard));
        replicas[shard] = replica;
        replica.start();
        this.#log.info({ collection: config.name, shard }, "hosting replica");
      }
    }
  }

  #wantedShards(config: CollectionConfig): Set<number> {
    const stored = this.#placements?.get(config.name);
    if (!stored || stored.record.uid !== config.uid) return new Set();
    return new Set(stored.record.shards.filter((s) => hostsOf(s).includes(this.#deps.nodeId)).map((s) => s.shard));
  }
}
