/**
 * Runs the shard replicas the placement assigns to this node (reconcile,
 * don't script): on every catalog or placement change, start the replicas this
 * node should host and stop the others. The first replica listed for a shard
 * is the one that writes snapshots.
 */
import { constants as fsConstants } from "node:fs";
import { copyFile } from "node:fs/promises";
import type { Logger } from "../../runtime/log.ts";
import type { CollectionConfig } from "../../runtime/schemas.ts";
import type { Catalog } from "../cluster/catalog.ts";
import type { PlacementStore } from "../cluster/placement-store.ts";
import { hostsOf } from "../../runtime/placement.ts";
import { ShardReplica } from "./replica.ts";
import type { ReplicaDeps, ReplicaRole } from "./types.ts";
import type { CheckpointRef } from "./checkpoints.ts";
import { shardKey } from "../../runtime/subjects.ts";
import { Mutex } from "../../runtime/mutex.ts";

export class ReplicaHost {
  readonly #deps: ReplicaDeps;
  readonly #log: Logger;
  /** collection name → shard → replica (sparse: only the shards hosted here). */
  readonly #replicas = new Map<string, (ShardReplica | undefined)[]>();
  readonly #unsubscribe: (() => void)[] = [];
  #catalog: Catalog | undefined;
  #placements: PlacementStore | undefined;
  readonly #reconciling = new Mutex();

  constructor(deps: ReplicaDeps) {
    this.#deps = deps;
    this.#log = deps.log.child({ actor: "replica-host" });
  }

  start(catalog: Catalog, placements: PlacementStore): void {
    this.#catalog = catalog;
    this.#placements = placements;
    this.#unsubscribe.push(catalog.onChange(() => this.#schedule()), placements.onChange(() => this.#schedule()));
    // Before any replica starts (so no save is in flight): forget checkpoints of collections
    // dropped while the node was down. Those of live collections stay even if the shard was
    // re-placed meanwhile: it may come back here (RF restored on rejoin) and start from them.
    const live = new Set(catalog.cached().map((c) => c.uid));
    void this.#reconciling.run(async () => {
      try {
        const removed = await this.#deps.checkpoints.sweep((uid) => live.has(uid));
        if (removed > 0) this.#log.info({ removed }, "deleted checkpoints of dropped collections and unfinished saves");
      } catch (err) {
        this.#log.warn({ err }, "checkpoint sweep failed");
      }
    });
    this.#schedule();
  }

  /** Replicas of a collection hosted here, indexed by shard (undefined where not hosted). */
  replicas(collection: string): readonly (ShardReplica | undefined)[] {
    return this.#replicas.get(collection) ?? [];
  }

  /** The cluster's snapshot interval changed: every replica hosted here is told. */
  snapshotIntervalChanged(): void {
    for (const replica of this.all()) replica.snapshotIntervalChanged();
  }

  all(): ShardReplica[] {
    return [...this.#replicas.values()].flat().filter((r): r is ShardReplica => r !== undefined);
  }

  /**
   * Every replica the placement puts on this node, with the replica hosting it (undefined
   * until the next reconcile starts it, or while its collection's uid changes): readiness.
   */
  placed(): { collection: string; shard: number; replica: ShardReplica | undefined }[] {
    return (this.#catalog?.cached() ?? []).flatMap((config) =>
      [...this.#wantedShards(config)].map((shard) => {
        const replica = this.#replicas.get(config.name)?.[shard];
        return { collection: config.name, shard, replica: replica?.config.uid === config.uid ? replica : undefined };
      }),
    );
  }

  /**
   * A restore on this node hands over the snapshot it just stored for a shard, as this node's
   * checkpoint of it: a replica placed here then loads it instead of downloading the same bytes
   * back (a Fashion-MNIST restore spent ~1 s per shard downloading, one shard at a time). The
   * restore seeds every shard before the collection is placed, then `unseedCheckpoints` drops
   * those of shards that were placed elsewhere.
   */
  async seedCheckpoint(config: CollectionConfig, shard: number, seq: number, file: string): Promise<void> {
    const { checkpoints } = this.#deps;
    const scratch = await checkpoints.scratchFile(config.uid, shard);
    await copyFile(file, scratch, fsConstants.COPYFILE_FICLONE);
    await checkpoints.commit(config.uid, shard, scratch, seq);
  }

  /** Drops the seeded checkpoints of the collection's shards that no replica here hosts. */
  async unseedCheckpoints(config: CollectionConfig): Promise<void> {
    const placed = this.#placements?.get(config.name)?.record;
    if (placed?.uid !== config.uid) return;
    for (let shard = 0; shard < config.shards; shard++) {
      if (!hostsOf(placed.shards[shard]!).includes(this.#deps.nodeId)) await this.#deps.checkpoints.drop(config.uid, shard);
    }
  }

  /** Pins this node's newest checkpoint of a shard for a backup to copy (LocalCheckpoints.pin). */
  pinCheckpoint(uid: string, shard: number, dir: string, accept: (seq: number) => boolean): Promise<CheckpointRef | undefined> {
    return this.#deps.checkpoints.pin(uid, shard, dir, accept);
  }

  /** How this node holds the shard: designated snapshot writer (first replica), or a throttled learner. */
  role(collection: string, shard: number): ReplicaRole {
    const placed = this.#placements?.get(collection)?.record.shards[shard];
    const me = this.#deps.nodeId;
    const peers = (placed?.replicas ?? []).filter((node) => node !== me);
    return {
      designated: placed?.replicas[0] === me,
      throttled: (placed?.learners ?? []).includes(me) && peers.length > 0,
      peers,
    };
  }

  /** A worker died: the replicas whose index lived there rebuild from snapshot + log. */
  indexesLost(shardKeys: string[]): void {
    const lost = new Set(shardKeys);
    for (const replica of this.all()) {
      if (lost.has(shardKey(replica.config.uid, replica.shard))) replica.indexLost("index worker died");
    }
  }

  /**
   * Stops following catalog and placement changes. A stopping node calls this before it says
   * goodbye: the coordinator then re-places its replicas, and reacting to that would delete
   * the checkpoints the node is about to save for its restart.
   */
  freeze(): void {
    this.#unsubscribe.forEach((off) => off());
    this.#unsubscribe.length = 0;
  }

  async stop(): Promise<void> {
    this.freeze();
    // An empty section queued behind the running reconcile: it settles once that one has.
    await this.#reconciling.run(async () => undefined);
    // The node keeps its shards across a restart: checkpoint them so it replays only the delta.
    await Promise.all(this.all().map((r) => r.stop({ checkpoint: true })));
    this.#replicas.clear();
  }

  #schedule(): void {
    void this.#reconciling.run(() => this.#reconcile()).catch((err) => this.#log.error({ err }, "replica reconcile failed"));
  }

  async #reconcile(): Promise<void> {
    const configs = new Map((this.#catalog?.cached() ?? []).map((c) => [c.name, c]));
    for (const [name, replicas] of [...this.#replicas]) {
      const config = configs.get(name);
      const wanted = config ? this.#wantedShards(config) : new Set<number>();
      for (const replica of replicas) {
        if (replica && (replica.config.uid !== config?.uid || !wanted.has(replica.shard))) {
          replicas[replica.shard] = undefined;
          await replica.stop({ checkpoint: false });
          this.#log.info({ collection: name, shard: replica.shard, epoch: this.#placements?.get(name)?.record.epoch }, "stopped replica");
        }
      }
      if (replicas.every((r) => r === undefined)) this.#replicas.delete(name);
    }
    for (const config of configs.values()) {
      for (const shard of this.#wantedShards(config)) {
        let replicas = this.#replicas.get(config.name);
        if (!replicas) this.#replicas.set(config.name, (replicas = []));
        if (replicas[shard]) continue;
        const replica = new ShardReplica(config, shard, this.#deps, () => this.role(config.name, shard));
        replicas[shard] = replica;
        replica.start();
        this.#log.info({ collection: config.name, shard, epoch: this.#placements?.get(config.name)?.record.epoch }, "hosting replica");
      }
    }
  }

  #wantedShards(config: CollectionConfig): Set<number> {
    const stored = this.#placements?.get(config.name);
    if (!stored || stored.record.uid !== config.uid) return new Set();
    return new Set(stored.record.shards.filter((s) => hostsOf(s).includes(this.#deps.nodeId)).map((s) => s.shard));
  }
}
