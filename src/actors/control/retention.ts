/**
 * The coordinator's retention pass (decision 007): for every shard of every collection,
 * compute the purge floor (runtime/retention.ts), purge the shard log below it, delete the
 * shared snapshots no restore needs any more, and publish each log's state in KV
 * `jade_retention` for `cluster.status`. Runs only on the leader, every `intervalMs`; a pass
 * that fails is logged and retried on the next one (a purge is idempotent).
 */
import type { ClusterSettings } from "../config/schemas.ts";
import type { JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { ListedKv } from "../../nats/kv-keys.ts";
import { z } from "zod";
import type { Logger } from "../../runtime/log.ts";
import { Periodic } from "../../runtime/async.ts";
import { errorMessage } from "../../runtime/errors.ts";
import { hostsOf } from "../../runtime/placement.ts";
import { replicaNeedSeq, shardFloor, type LogNeed } from "../../runtime/retention.ts";
import type { CollectionConfig } from "../../runtime/schemas.ts";
import { names } from "../../runtime/subjects.ts";
import type { Catalog } from "../cluster/catalog.ts";
import type { Membership } from "../cluster/membership.ts";
import type { PlacementStore } from "../cluster/placement-store.ts";
import type { SnapshotStore, StoredSnapshot } from "../../nats/snapshots.ts";
import type { Hold } from "../../runtime/backup-schemas.ts";

/** One shard log's state after a pass. */
export const ShardLogState = z.object({
  shard: z.number().int(),
  firstSeq: z.number().int(),
  lastSeq: z.number().int(),
  messages: z.number().int(),
  bytes: z.number().int(),
  /** Entries at or below this sequence were purged (or may be: the log keeps no entry it needs). */
  floor: z.number().int(),
  /** What holds the floor where it is. */
  heldBy: z.string(),
});
export type ShardLogState = z.infer<typeof ShardLogState>;

/** The value of a collection's key in KV `jade_retention`. */
export const CollectionLogState = z.object({
  uid: z.string(),
  at: z.string(),
  shards: z.array(ShardLogState),
});
export type CollectionLogState = z.infer<typeof CollectionLogState>;

export interface RetentionSettings {
  /** How often the leader runs a pass. */
  intervalMs: number;
}

export const defaultRetentionSettings: RetentionSettings = { intervalMs: 5_000 };

interface Deps {
  jsm: JetStreamManager;
  kv: ListedKv;
  snapshots: SnapshotStore;
  catalog: Catalog;
  membership: Membership;
  placements: PlacementStore;
  nodeDeadAfterMs: number;
  log: Logger;
  settings: RetentionSettings;
  /** The cluster settings this node runs now: the snapshot interval and window of collections without their own. */
  live: () => ClusterSettings;
  /** What running backups and restores still read. */
  holds: () => Promise<Hold[]>;
}

const encoder = new TextEncoder();

/** A snapshot bucket that no collection owns, or an unfinished upload, is deleted once this old. */
const leftoverAgeMs = 10 * 60_000;

/** The state the coordinator last published for this incarnation of the collection, if any. */
export async function readLogState(kv: KV, collection: string, uid: string): Promise<CollectionLogState | undefined> {
  const entry = await kv.get(collection);
  if (entry?.operation !== "PUT") return undefined;
  const state = CollectionLogState.safeParse(entry.json());
  return state.success && state.data.uid === uid ? state.data : undefined;
}

export class Retention {
  readonly #deps: Deps;
  readonly #log: Logger;
  /** What was last written per collection (without its time), to skip writing it again. */
  readonly #written = new Map<string, string>();
  readonly #passes: Periodic;

  constructor(deps: Deps) {
    this.#deps = deps;
    this.#log = deps.log.child({ actor: "retention" });
    this.#passes = new Periodic(() => this.#pass(), deps.settings.intervalMs);
  }

  start(): void {
    this.#passes.start();
  }

  stop(): Promise<void> {
    return this.#passes.stop();
  }

  /** One pass over every collection; a pass already running is joined, not doubled. */
  runOnce(): Promise<void> {
    return this.#passes.runOnce();
  }

  async #pass(): Promise<void> {
    try {
      const [snapshots, holds] = await Promise.all([this.#deps.snapshots.all(), this.#deps.holds()]);
      // One collection that fails (its log dropped a moment ago, a JetStream hiccup) does not hold back the others.
      for (const config of this.#deps.catalog.cached()) {
        await this.#collection(config, snapshots, holds).catch((err: unknown) =>
          this.#log.warn({ collection: config.name, err: errorMessage(err) }, "retention of a collection failed; will retry"),
        );
      }
      await this.#deleteLeftovers(snapshots);
      await this.#forgetDropped();
    } catch (err) {
      this.#log.warn({ err: errorMessage(err) }, "retention pass failed; will retry");
    }
  }

  async #collection(config: CollectionConfig, snapshots: readonly StoredSnapshot[], holds: readonly Hold[]): Promise<void> {
    const placement = this.#deps.placements.get(config.name)?.record;
    // Placed by this incarnation: until then nothing reads the log and nothing is purged.
    if (placement === undefined || placement.uid !== config.uid) return;
    const live = new Set(this.#deps.membership.liveNodes(this.#deps.nodeDeadAfterMs));
    const shards: ShardLogState[] = [];
    for (let shard = 0; shard < config.shards; shard++) {
      const placed = placement.shards[shard];
      const nodes = (placed ? hostsOf(placed) : []).filter((node) => live.has(node));
      const replicas: LogNeed[] = nodes.map((node) => ({
        what: `replica on ${node}`,
        seq: replicaNeedSeq(this.#deps.membership.replicaBeat(node, config.uid, shard)),
      }));
      const own = snapshots.filter((s) => s.complete && s.collection === config.name && s.shard === shard && s.uid === config.uid);
      const held = holds.filter((h) => h.uid === config.uid && h.shard === shard).map(({ what, seq, snapshot }) => ({ what, seq, ...(snapshot ? { snapshot } : {}) }));
      shards.push(await this.#shard(config, shard, own, replicas, held));
    }
    // Written when something changed, not every pass: the bucket is replicated.
    const shape = JSON.stringify({ uid: config.uid, shards });
    if (this.#written.get(config.name) === shape) return;
    const state: CollectionLogState = { uid: config.uid, at: new Date().toISOString(), shards };
    await this.#deps.kv.put(config.name, encoder.encode(JSON.stringify(state)));
    this.#written.set(config.name, shape);
  }

  /**
   * Snapshot buckets nothing will read: of a collection incarnation that no longer exists, or
   * an upload that never completed (a crash) and that a newer complete snapshot replaced.
   * Both only once older than `leftoverAgeMs`, so a collection created a moment ago (not in
   * this leader's catalog yet) or an upload in progress is never touched.
   */
  async #deleteLeftovers(snapshots: readonly StoredSnapshot[]): Promise<void> {
    const uids = new Map(this.#deps.catalog.stored().map((c) => [c.name, c.uid]));
    const nowMs = Date.now();
    for (const s of snapshots) {
      if (nowMs - s.savedAtMs < leftoverAgeMs) continue;
      const foreign = uids.get(s.collection) !== s.uid;
      const replaced = !s.complete && snapshots.some((o) => o.complete && o.collection === s.collection && o.shard === s.shard && o.uid === s.uid && o.seq > s.seq);
      if (!foreign && !replaced) continue;
      await this.#deps.snapshots.delete(s.name);
      this.#log.info({ snapshot: s.name, reason: foreign ? "collection gone" : "incomplete upload replaced" }, "snapshot deleted");
    }
  }

  /** Keys of collections that no longer exist (dropped while no pass ran, or raced with one). */
  async #forgetDropped(): Promise<void> {
    const wanted = new Set(this.#deps.catalog.stored().map((c) => c.name));
    for (const key of await this.#deps.kv.listKeys()) {
      // A purged key's marker is listed too: purging it again would only add another.
      if (wanted.has(key) || (await this.#deps.kv.get(key))?.operation !== "PUT") continue;
      await this.#deps.kv.purge(key);
      this.#written.delete(key);
    }
  }

  async #shard(config: CollectionConfig, shard: number, snapshots: readonly StoredSnapshot[], replicas: LogNeed[], holds: LogNeed[]): Promise<ShardLogState> {
    const { jsm } = this.#deps;
    const stream = names.logStream(config.name, shard);
    const floor = shardFloor({
      nowMs: Date.now(),
      graceMs: config.snapshot.intervalMs ?? this.#deps.live().snapshot.intervalMs,
      pointInTimeMs: config.retention.pointInTimeMs ?? this.#deps.live().retention.pointInTimeMs,
      snapshots,
      replicas,
      holds,
    });
    let { state } = await jsm.streams.info(stream);
    if (floor.seq >= state.first_seq && state.messages > 0) {
      const { purged } = await jsm.streams.purge(stream, { seq: floor.seq + 1 });
      this.#log.info({ collection: config.name, shard, floor: floor.seq, heldBy: floor.heldBy, purged }, "log purged");
      ({ state } = await jsm.streams.info(stream));
    }
    for (const name of floor.obsoleteSnapshots) {
      await this.#deps.snapshots.delete(name);
      this.#log.info({ collection: config.name, shard, snapshot: name }, "snapshot deleted: no restore needs it");
    }
    return {
      shard,
      firstSeq: state.first_seq,
      lastSeq: state.last_seq,
      messages: state.messages,
      bytes: state.bytes,
      // A window widened later cannot bring purged entries back: the floor never moves down.
      floor: Math.max(floor.seq, state.first_seq - 1),
      heldBy: floor.heldBy,
    };
  }
}
