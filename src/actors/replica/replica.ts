/**
 * A shard replica: `replicaMachine` assembled with its effects. The machine
 * decides (restore → replay → serve, snapshot when due, retry after failure);
 * this class binds the effects — the object store, the shard log, the index
 * actor in its worker — and answers reads once the replica is readable.
 */
import { mkdir, rm, stat } from "node:fs/promises";
import path from "node:path";
import { createActor, fromCallback, fromPromise, type EventObject, type Subscription } from "xstate";
import { withDeadline } from "../../runtime/async.ts";
import { errorMessage, ErrorCode, JadeError, unavailable } from "../../runtime/errors.ts";
import type { Filter } from "../../runtime/filter.ts";
import type { Logger } from "../../runtime/log.ts";
import type { NatsContext } from "../../nats/connect.ts";
import type { RateLimiter } from "../../runtime/rate-limit.ts";
import { RestoreSource, type CollectionConfig, type RestoreInfo, type StoredPoint } from "../../runtime/schemas.ts";
import { names, shardKey, subjects } from "../../runtime/subjects.ts";
import {
  isReadable,
  replicaMachine,
  replicaStateOf,
  ReplicaState,
  type ReplicaActorRef,
  type FollowInput,
  type RestoreInput,
  type RestoreOutput,
  type SnapshotInput,
  type SnapshotOutput,
} from "../../machines/replica.ts";
import type { IndexPool, ShardIndexClient } from "../vector-index/pool.ts";
import { type ApplyResult, type LogRecord, type ShardHit, type ShardIndexConfig, type ShardSearchRequest } from "../vector-index/api.ts";
import type { LocalCheckpoints } from "./checkpoints.ts";
import { followLog } from "./follow.ts";
import { copyCheckpoint, readOfferedChunk } from "./peer-copy.ts";
import type { CheckpointOffer } from "./protocol.ts";
import type { SnapshotStore, Throttle } from "./snapshots.ts";
import { AppliedWaiters } from "./waiters.ts";
import { Mutex } from "../../runtime/mutex.ts";

export interface ReplicaSettings {
  lagThresholdEntries: number;
  retryDelayMs: number;
  retryDelayMaxMs: number;
  /**
   * Bytes per second this node spends on copying shards it is joining while another replica
   * already serves them (rebalancing moves, RF top-ups): snapshot download plus log replay,
   * shared by all such replicas. 0 = unlimited. A shard with no serving replica is always
   * restored at full speed: there, every second counts.
   */
  transferBytesPerSecMax: number;
  /** A throttled catch-up hands the index actor at most this much log per call, so searches of other shards on the same worker never queue behind a long apply. */
  transferChunkBytesMax: number;
}

export const defaultReplicaSettings: ReplicaSettings = {
  lagThresholdEntries: 64,
  retryDelayMs: 500,
  retryDelayMaxMs: 30_000,
  // Sized for small nodes: on 2 saturated cores, moving shards at 2 MiB/s kept QPS within 10 % in
  // three runs (p95 in two), 4 MiB/s cost 15–28 % of QPS (docs/decisions/003). Raise it where cores are spare.
  transferBytesPerSecMax: 2 * 1024 * 1024,
  transferChunkBytesMax: 256 * 1024,
};

/** How this node holds a shard right now (from the placement). */
export interface ReplicaRole {
  /** Write snapshots for the shard (the first replica listed). */
  designated: boolean;
  /** A learner of a shard that another replica already serves: its copy is throttled. */
  throttled: boolean;
  /** The shard's other replicas, in placement order: where a joining replica copies from. */
  peers: string[];
}

/** A shutdown checkpoint gives up after this long so a stopping node never hangs on a slow disk. */
const shutdownCheckpointTimeoutMs = 30_000;
/** How long a serving replica may take to save the checkpoint a joining one copies. */

export interface ReplicaDeps {
  nats: NatsContext;
  pool: IndexPool;
  snapshots: SnapshotStore;
  nodeId: string;
  /** Scratch space for downloaded snapshot files. */
  scratchDir: string;
  checkpoints: LocalCheckpoints;
  log: Logger;
  settings: ReplicaSettings;
  /** The node's transfer budget (see `transferBytesPerSecMax`). */
  transfer: RateLimiter;
}

export class ShardReplica {
  readonly config: CollectionConfig;
  readonly shard: number;
  readonly #deps: ReplicaDeps;
  readonly #index: ShardIndexClient;
  readonly #log: Logger;
  readonly #waiters = new AppliedWaiters();
  readonly #actor: ReplicaActorRef;
  #subscription: Subscription | undefined;
  #state: ReplicaState = ReplicaState.Restoring;
  readonly #role: () => ReplicaRole;
  /** Points in the index after the last apply or restore (for heartbeats and status). */
  #count = 0;
  #restored: RestoreInfo | undefined;
  /** The sequence of this replica's local checkpoint (0: none yet). */
  #checkpointSeq = 0;
  /** Bytes copied into this replica since it started: snapshot or checkpoint loaded, then log replayed. */
  #transferredBytes = 0;
  /** Snapshot saves run one at a time (periodic, on request, at shutdown): they share checkpoint files. */
  readonly #saving = new Mutex();

  /** `role` reads how this node holds the shard from the current placement. */
  constructor(config: CollectionConfig, shard: number, deps: ReplicaDeps, role: () => ReplicaRole) {
    this.config = config;
    this.shard = shard;
    this.#deps = deps;
    this.#role = role;
    this.#log = deps.log.child({ actor: "replica", collection: config.name, shard });
    this.#index = deps.pool.pin(shardKey(config.uid, shard));
    this.#actor = createActor(this.#machine(), {
      input: {
        collection: config.name,
        shard,
        lagThresholdEntries: deps.settings.lagThresholdEntries,
        snapshotEveryEntries: config.snapshot.everyEntries,
        snapshotIntervalMs: config.snapshot.intervalMs,
        retryDelayMs: deps.settings.retryDelayMs,
        retryDelayMaxMs: deps.settings.retryDelayMaxMs,
      },
    });
  }

  start(): void {
    this.#subscription = this.#actor.subscribe({
      next: (snapshot) => (this.#state = replicaStateOf(snapshot)),
      error: (err) => this.#log.error({ err }, "replica actor crashed"),
    });
    this.#actor.start();
  }

  get state(): ReplicaState {
    return this.#state;
  }

  get appliedSeq(): number {
    return this.#actor.getSnapshot().context.appliedSeq;
  }

  get pointCount(): number {
    return this.#count;
  }

  /** How the current index was restored; undefined until the first restore finished. */
  get restored(): RestoreInfo | undefined {
    return this.#restored;
  }

  get transferredBytes(): number {
    return this.#transferredBytes;
  }

  get lastSeq(): number {
    return this.#actor.getSnapshot().context.lastSeq;
  }

  /** Resolves once the replica applied `seq` (read-your-writes), or rejects with a timeout error. */
  waitApplied(seq: number, timeoutMs: number): Promise<void> {
    if (this.appliedSeq >= seq) return Promise.resolve();
    return this.#waiters.wait(seq, timeoutMs, () =>
      new JadeError(ErrorCode.Timeout, `shard ${this.shard} of ${this.config.name} did not apply sequence ${seq} within ${timeoutMs} ms`),
    );
  }

  async search(request: ShardSearchRequest, minSeq: number, timeoutMs: number): Promise<ShardHit[]> {
    await this.#readable(minSeq, timeoutMs);
    return this.#index.search(request);
  }

  async get(ids: string[], withVectors: boolean, minSeq: number, timeoutMs: number): Promise<StoredPoint[]> {
    await this.#readable(minSeq, timeoutMs);
    return this.#index.get(ids, withVectors);
  }

  async count(filter: Filter | undefined, minSeq: number, timeoutMs: number): Promise<number> {
    await this.#readable(minSeq, timeoutMs);
    return this.#index.count(filter);
  }

  /**
   * For a replica joining this shard: makes sure this replica's local checkpoint covers what
   * it applied (saving one if not) and offers it to be read in chunks. Loading that file is
   * far cheaper for the joiner than rebuilding the index from the log.
   */
  async offerCheckpoint(): Promise<CheckpointOffer> {
    if (!isReadable(this.#state)) throw unavailable(`shard ${this.shard} of ${this.config.name} is ${this.#state}, not serving`);
    // Inside the queue: an offer repeated while the first save runs then finds it done.
    return this.#serialized(async () => {
      const { uid } = this.config;
      const latest = await this.#deps.checkpoints.latest(uid, this.shard);
      // Local only: the copy goes peer to peer, not through the replicated object store.
      if (!latest || latest.seq < this.appliedSeq) await this.#saveSnapshot({ upload: "never" });
      const offer = await this.#deps.checkpoints.offer(uid, this.shard);
      if (!offer) throw unavailable(`shard ${this.shard} of ${this.config.name} has no checkpoint to offer`);
      return { seq: offer.seq, bytes: (await stat(offer.file)).size };
    });
  }

  /** A byte range of the checkpoint offered at `seq` (the request schema bounds it); not_found once the offer expired. */
  async readCheckpoint(seq: number, offset: number, length: number): Promise<Uint8Array> {
    const chunk = await readOfferedChunk(await this.#deps.checkpoints.offered(this.config.uid, this.shard, seq), offset, length);
    if (!chunk) throw new JadeError(ErrorCode.NotFound, `no checkpoint ${seq} of shard ${this.shard} is offered`);
    return chunk;
  }

  /** The index behind this replica was lost (its worker died): rebuild from snapshot + log. */
  indexLost(reason: string): void {
    this.#actor.send({ type: "FOLLOW_FAILED", error: reason });
  }

  /**
   * Stops the replica. `checkpoint`: the node is shutting down and keeps the shard, so save
   * a local checkpoint first (the restart then replays only what it missed); otherwise the
   * shard left this node and its checkpoint is deleted.
   */
  async stop(options: { checkpoint: boolean }): Promise<void> {
    const worthCheckpointing = isReadable(this.#state) && this.appliedSeq > this.#checkpointSeq;
    this.#actor.send({ type: "STOP" });
    this.#subscription?.unsubscribe();
    this.#waiters.rejectAll(() => unavailable(`shard ${this.shard} of ${this.config.name} stopped`));
    if (options.checkpoint && worthCheckpointing) await this.#serialized(() => this.#shutdownCheckpoint());
    else await this.#deps.checkpoints.drop(this.config.uid, this.shard).catch((err) => this.#log.warn({ err }, "could not delete checkpoint"));
    await this.#index.close().catch(() => undefined);
    this.#deps.pool.unpin(shardKey(this.config.uid, this.shard));
  }

  async #readable(minSeq: number, timeoutMs: number): Promise<void> {
    if (!isReadable(this.#state)) {
      throw unavailable(`shard ${this.shard} of ${this.config.name} is ${this.#state}, not serving`);
    }
    if (minSeq > 0) await this.waitApplied(minSeq, timeoutMs);
  }

  #indexConfig(): ShardIndexConfig {
    return { dimension: this.config.dimension, metric: this.config.metric, index: this.config.index };
  }

  #machine() {
    const { nats } = this.#deps;
    const { name } = this.config;
    const shard = this.shard;
    return replicaMachine.provide({
      actors: {
        restore: fromPromise<RestoreOutput, RestoreInput>(async () => ({ snapshotSeq: await this.#restore() })),
        follow: fromCallback<EventObject, FollowInput>(({ input, sendBack }) => {
          const abort = new AbortController();
          followLog({
            js: nats.js,
            jsm: nats.jsm,
            stream: names.logStream(name, shard),
            fromSeq: input.fromSeq,
            apply: (records) => this.#apply(records, abort.signal),
            onProgress: (appliedSeq, lastSeq) => sendBack({ type: "PROGRESS", appliedSeq, lastSeq }),
            signal: abort.signal,
          }).then(
            () => {
              if (!abort.signal.aborted) sendBack({ type: "FOLLOW_FAILED", error: "the log consumer ended" });
            },
            (err: unknown) => {
              if (!abort.signal.aborted) sendBack({ type: "FOLLOW_FAILED", error: errorMessage(err) });
            },
          );
          return () => abort.abort();
        }),
        snapshot: fromPromise<SnapshotOutput, SnapshotInput>(async () => ({ seq: await this.#serialized(() => this.#saveSnapshot({ upload: "ifDesignated" })) })),
      },
      actions: {
        notifyState: (_, params) => {
          this.#log.info({ state: params.state, appliedSeq: this.appliedSeq }, "replica state");
        },
        notifyProgress: (_, params) => {
          this.#waiters.progress(params.appliedSeq);
          nats.nc.publish(subjects.applied(name, shard), JSON.stringify({ node: this.#deps.nodeId, seq: params.appliedSeq }));
        },
        reportFailure: (_, params) => this.#log.warn({ error: params.error, retries: params.retries }, "replica failed; will retry"),
        reportSnapshotError: (_, params) => this.#log.warn({ error: params.error }, "snapshot failed; will retry"),
      },
    });
  }

  /**
   * Loads the best valid starting state into a fresh index and returns its sequence: this
   * node's own checkpoint when the log still covers everything after it and no shared
   * snapshot is more than a snapshot interval newer; else the newest readable shared snapshot;
   * else nothing (replay the whole log).
   */
  async #restore(): Promise<number> {
    const { name, uid } = this.config;
    await this.#index.open(this.#indexConfig());
    this.#count = 0;
    const shared = await this.#deps.snapshots.list(name, uid, this.shard);
    const local = await this.#deps.checkpoints.latest(uid, this.shard);
    if (local && local.seq + this.config.snapshot.everyEntries >= (shared[0]?.seq ?? 0)) {
      const seq = await this.#loadCheckpoint(local.file, local.seq);
      if (seq !== undefined) return this.#restoredFrom(RestoreSource.Checkpoint, seq);
    }
    const { scratchDir } = this.#deps;
    await mkdir(scratchDir, { recursive: true });
    if (this.#role().throttled) {
      const seq = await this.#copyFromPeer();
      if (seq !== undefined) return this.#restoredFrom(RestoreSource.Peer, seq);
    }
    for (const ref of shared) {
      const file = path.join(scratchDir, `restore-${uid}-${this.shard}-${ref.seq}.snap`);
      try {
        const throttle: Throttle | undefined = this.#role().throttled ? (bytes) => this.#deps.transfer.take(bytes) : undefined;
        await this.#deps.snapshots.download(ref.name, file, { throttle, onBytes: (bytes) => (this.#transferredBytes += bytes) });
        const loaded = await this.#index.load(this.#indexConfig(), file);
        this.#count = loaded.count;
        this.#log.info({ snapshot: ref.name, appliedSeq: loaded.appliedSeq, count: loaded.count }, "restored snapshot");
        return this.#restoredFrom(RestoreSource.Snapshot, loaded.appliedSeq);
      } catch (err) {
        this.#log.warn({ err, snapshot: ref.name }, "snapshot unreadable; trying an older one");
        await this.#index.open(this.#indexConfig());
      } finally {
        await rm(file, { force: true });
      }
    }
    return this.#restoredFrom(RestoreSource.Log, 0);
  }

  /** Loads the local checkpoint if it is still valid; otherwise deletes it and returns undefined. */
  async #loadCheckpoint(file: string, seq: number): Promise<number | undefined> {
    const { uid } = this.config;
    // Failing to read the log's state fails the restore (the machine retries); it says nothing about the checkpoint.
    const info = await this.#deps.nats.jsm.streams.info(names.logStream(this.config.name, this.shard));
    const { first_seq: firstSeq, last_seq: lastSeq } = info.state;
    // The log must hold every entry after the checkpoint, and must not be behind it (a log
    // that lost entries the checkpoint has seen would make this replica diverge).
    if (seq > lastSeq || (lastSeq > 0 && firstSeq > seq + 1)) {
      this.#log.warn({ checkpointSeq: seq, firstSeq, lastSeq }, "local checkpoint no longer matches the log; discarding it");
      await this.#deps.checkpoints.drop(uid, this.shard);
      return undefined;
    }
    try {
      const loaded = await this.#index.load(this.#indexConfig(), file);
      this.#count = loaded.count;
      this.#checkpointSeq = loaded.appliedSeq;
      this.#transferredBytes += (await stat(file)).size;
      this.#log.info({ appliedSeq: loaded.appliedSeq, count: loaded.count, deltaEntries: lastSeq - loaded.appliedSeq }, "restored local checkpoint");
      return loaded.appliedSeq;
    } catch (err) {
      this.#log.warn({ err, file }, "local checkpoint unreadable; discarding it");
      await this.#deps.checkpoints.drop(uid, this.shard);
      await this.#index.open(this.#indexConfig());
      return undefined;
    }
  }

  /**
   * A joining replica copies a serving replica's checkpoint straight from it, chunk by chunk
   * within this node's transfer budget, and loads it: no rebuild from the log, and nothing
   * written to the replicated object store. Any failure falls back to the shared snapshot.
   */
  async #copyFromPeer(): Promise<number | undefined> {
    const { nats, scratchDir } = this.#deps;
    const { name, uid } = this.config;
    for (const peer of this.#role().peers) {
      const file = path.join(scratchDir, `peer-${uid}-${this.shard}-${process.hrtime.bigint()}.snap`);
      try {
        const offer = await copyCheckpoint(
          { nc: nats.nc, peer, collection: name, uid, shard: this.shard, take: (bytes) => this.#deps.transfer.take(bytes), onBytes: (bytes) => (this.#transferredBytes += bytes) },
          file,
        );
        const loaded = await this.#index.load(this.#indexConfig(), file);
        this.#count = loaded.count;
        this.#log.info({ peer, appliedSeq: loaded.appliedSeq, count: loaded.count, bytes: offer.bytes }, "copied the shard from a serving replica");
        return loaded.appliedSeq;
      } catch (err) {
        this.#log.warn({ err: errorMessage(err), peer }, "could not copy the shard from a serving replica; trying the next source");
        await this.#index.open(this.#indexConfig());
      } finally {
        await rm(file, { force: true });
      }
    }
    return undefined;
  }

  #restoredFrom(source: RestoreSource, seq: number): number {
    this.#restored = { source, seq };
    return seq;
  }

  /** Applies log records; a throttled catch-up goes in budgeted chunks (see `transferBytesPerSecMax`). */
  async #apply(records: LogRecord[], signal: AbortSignal): Promise<ApplyResult> {
    const throttled = this.#role().throttled;
    let result: ApplyResult | undefined;
    for (const chunk of throttled ? chunksOf(records, this.#deps.settings.transferChunkBytesMax) : [records]) {
      const bytes = chunk.reduce((sum, r) => sum + r.data.byteLength, 0);
      if (throttled) await this.#deps.transfer.take(bytes, signal);
      result = await this.#index.apply(chunk);
      for (const entry of result.rejected ?? []) {
        this.#log.error({ seq: entry.seq, reason: entry.reason }, "skipped a shard-log entry that no writer could have made");
      }
      this.#transferredBytes += bytes;
      this.#count = result.count;
    }
    return result!;
  }

  #serialized<T>(save: () => Promise<T>): Promise<T> {
    return this.#saving.run(save);
  }

  /**
   * Saves the index as this replica's local checkpoint; if this is the shard's designated
   * replica (and `upload` allows it) it then uploads that file as the shared snapshot new
   * replicas start from. Local first, so a crash in between never leaves this node's
   * checkpoint older than the shared snapshot.
   */
  async #saveSnapshot(options: { upload: "ifDesignated" | "never" }): Promise<number> {
    const { snapshots, checkpoints } = this.#deps;
    const { name, uid } = this.config;
    const file = await checkpoints.scratchFile(uid, this.shard);
    let saved: { appliedSeq: number; bytes: number };
    try {
      saved = await this.#index.save(file);
    } catch (err) {
      await rm(file, { force: true });
      throw err;
    }
    const checkpoint = await checkpoints.commit(uid, this.shard, file, saved.appliedSeq);
    this.#checkpointSeq = Math.max(this.#checkpointSeq, saved.appliedSeq);
    if (options.upload === "ifDesignated" && this.#role().designated) {
      const ref = await snapshots.upload(name, uid, this.shard, saved.appliedSeq, checkpoint.file);
      await snapshots.prune(name, uid, this.shard);
      this.#log.info({ snapshot: ref.name, bytes: saved.bytes }, "snapshot saved");
    }
    return saved.appliedSeq;
  }

  async #shutdownCheckpoint(): Promise<void> {
    try {
      const seq = await withDeadline(this.#saveSnapshot({ upload: "never" }), shutdownCheckpointTimeoutMs, () => new Error(`save took over ${shutdownCheckpointTimeoutMs} ms`));
      this.#log.info({ appliedSeq: seq }, "checkpoint saved at shutdown");
    } catch (err) {
      this.#log.warn({ err }, "no checkpoint at shutdown; the restart restores from the shared snapshot");
    }
  }
}

/** Splits records into runs of at most `bytesMax` (a record larger than that is a run of its own). */
function chunksOf(records: LogRecord[], bytesMax: number): LogRecord[][] {
  const chunks: LogRecord[][] = [];
  let current: LogRecord[] = [];
  let bytes = 0;
  for (const record of records) {
    if (current.length > 0 && bytes + record.data.byteLength > bytesMax) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(record);
    bytes += record.data.byteLength;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}
