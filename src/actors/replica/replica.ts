/**
 * A shard replica: `replicaMachine` assembled with its effects. The machine decides
 * (restore → replay → serve, snapshot when due, retry after failure); this class binds the
 * effects — restore.ts, the log follower, apply.ts, saving.ts — and answers reads once the
 * replica is readable.
 */
import { createActor, fromCallback, fromPromise, type EventObject, type Subscription } from "xstate";
import { encodeAppliedNotice } from "../../runtime/applied-notice.ts";
import { errorMessage, ErrorCode, JadeError, unavailable } from "../../runtime/errors.ts";
import type { Filter } from "../../runtime/filter.ts";
import { Mutex } from "../../runtime/mutex.ts";
import type { CollectionConfig, StoredPoint } from "../../runtime/schemas.ts";
import type { RestoreInfo } from "../../runtime/status.ts";
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
import type { ShardDigest, ShardHit, ShardRead, ShardSearchRequest, ShardStats } from "../vector-index/api.ts";
import { applyRecords } from "./apply.ts";
import { followLog } from "./follow.ts";
import { readOfferedChunk } from "./peer-copy.ts";
import type { CheckpointOffer, TxnVoteReply } from "./protocol.ts";
import { restoreReplica } from "./restore.ts";
import { offerCheckpoint, saveSnapshot, shutdownCheckpoint } from "./saving.ts";
import type { ReplicaDeps, ReplicaParts, ReplicaRole } from "./types.ts";
import { AppliedWaiters } from "./waiters.ts";

/**
 * How often a replica whose graph is still absorbing asks its index how far it got: heartbeats
 * carry it, and the writers, held back while its fresh buffer is full, learn of the room from it
 * (write/pace.ts). A shard's graph absorbs ~250 KiB of 128-d vectors in that time at 1M × 128-d.
 */
const pendingRefreshMs = 250;

export class ShardReplica {
  readonly config: CollectionConfig;
  readonly shard: number;
  readonly #parts: ReplicaParts;
  readonly #waiters = new AppliedWaiters();
  /** Vote requests waiting for the index to read a prepare. */
  readonly #consumedWaiters = new AppliedWaiters();
  readonly #actor: ReplicaActorRef;
  #subscription: Subscription | undefined;
  #state: ReplicaState = ReplicaState.Restoring;
  /** Snapshot saves run one at a time (periodic, on request, at shutdown): they share checkpoint files. */
  readonly #saving = new Mutex();
  #pendingTimer: NodeJS.Timeout | undefined;
  #wasAbsorbing = false;

  /** `role` reads how this node holds the shard from the current placement. */
  constructor(config: CollectionConfig, shard: number, deps: ReplicaDeps, role: () => ReplicaRole) {
    this.config = config;
    this.shard = shard;
    this.#parts = {
      config,
      shard,
      deps,
      role,
      index: deps.pool.pin(shardKey(config.uid, shard)),
      log: deps.log.child({ actor: "replica", collection: config.name, shard }),
      progress: { count: 0, checkpointSeq: 0, transferredBytes: 0, copyGoalBytes: 0, restored: undefined, pendingRows: 0, freshBytes: 0, consumedSeq: 0 },
    };
    this.#actor = createActor(this.#machine(), {
      input: {
        collection: config.name,
        shard,
        lagThresholdEntries: deps.settings.lagThresholdEntries,
        snapshotEveryEntries: config.snapshot.everyEntries,
        snapshotIntervalMs: config.snapshot.intervalMs ?? deps.snapshotIntervalMs(),
        retryDelayMs: deps.settings.retryDelayMs,
        retryDelayMaxMs: deps.settings.retryDelayMaxMs,
      },
    });
  }

  start(): void {
    this.#subscription = this.#actor.subscribe({
      next: (snapshot) => (this.#state = replicaStateOf(snapshot)),
      error: (err) => this.#parts.log.error({ err }, "replica actor crashed"),
    });
    this.#actor.start();
    this.#pendingTimer = setInterval(() => this.#refreshPending(), pendingRefreshMs);
    this.#pendingTimer.unref();
  }

  /**
   * The graph absorbs between applies: while it has rows left, ask the index how many (and tell
   * the writers); once none are left, tell the machine (a snapshot saved meanwhile may be worth
   * saving again).
   */
  #refreshPending(): void {
    const { index, progress } = this.#parts;
    const absorbing = progress.pendingRows > 0;
    if (this.#wasAbsorbing && !absorbing) this.#actor.send({ type: "ABSORBED" });
    this.#wasAbsorbing = absorbing;
    if (!absorbing || !isReadable(this.#state)) return;
    index.stats().then(
      (stats) => {
        progress.pendingRows = stats.pendingRows;
        progress.freshBytes = stats.freshBytes;
        // Also when nothing changed (a save holds the graph): a report the writers stop hearing goes stale.
        this.#publishApplied(this.appliedSeq);
      },
      () => undefined,
    );
  }

  /** Tells the writers how far this replica applied the log, and how full its fresh buffer is. */
  #publishApplied(seq: number): void {
    const { deps, progress } = this.#parts;
    const notice = encodeAppliedNotice({ node: deps.nodeId, seq, freshBytes: progress.freshBytes });
    deps.nats.nc.publish(subjects.applied(this.config.name, this.shard), notice);
  }

  get state(): ReplicaState {
    return this.#state;
  }

  /** The cluster's snapshot interval changed: applies unless the collection has its own. */
  snapshotIntervalChanged(): void {
    const { config, deps } = this.#parts;
    if (config.snapshot.intervalMs === undefined) this.#actor.send({ type: "SNAPSHOT_INTERVAL", intervalMs: deps.snapshotIntervalMs() });
  }

  get appliedSeq(): number {
    return this.#actor.getSnapshot().context.appliedSeq;
  }

  get lastSeq(): number {
    return this.#actor.getSnapshot().context.lastSeq;
  }

  /** Points in the index after the last apply or restore (for heartbeats and status). */
  get pointCount(): number {
    return this.#parts.progress.count;
  }

  /** How the current index was restored; undefined until the first restore finished. */
  get restored(): RestoreInfo | undefined {
    return this.#parts.progress.restored;
  }

  get transferredBytes(): number {
    return this.#parts.progress.transferredBytes;
  }

  /** What `transferredBytes` reads once the copy under way is in (0: none started). */
  get copyGoalBytes(): number {
    return this.#parts.progress.copyGoalBytes;
  }

  /** The sequence this node's local checkpoint of the shard covers (0: none). */
  get checkpointSeq(): number {
    return this.#parts.progress.checkpointSeq;
  }

  /** Points applied and searchable (exactly) that the graph has not absorbed yet. */
  get pendingRows(): number {
    return this.#parts.progress.pendingRows;
  }

  /** Points of the newest snapshot (saved or restored) that its graph did not hold. */
  get snapshotUnabsorbed(): number {
    return this.#actor.getSnapshot().context.snapshotUnabsorbed;
  }

  /** The index's own figures (its memory), asked of its worker; undefined while it has none to give. */
  async indexStats(): Promise<ShardStats | undefined> {
    if (!isReadable(this.#state)) return undefined;
    return this.#parts.index.stats().catch(() => undefined);
  }

  /** Resolves once the replica applied `seq` (read-your-writes), or rejects with a timeout error. */
  waitApplied(seq: number, timeoutMs: number): Promise<void> {
    if (this.appliedSeq >= seq) return Promise.resolve();
    return this.#waiters.wait(seq, timeoutMs, () =>
      new JadeError(ErrorCode.Timeout, `shard ${this.shard} of ${this.config.name} did not apply sequence ${seq} within ${timeoutMs} ms`),
    );
  }

  /** Reads answer with what they saw of transactions (decision 013, "Reads"); `request.assume` as for `get`. */
  async search(request: ShardSearchRequest, minSeq: number, timeoutMs: number): Promise<ShardRead<ShardHit[]>> {
    await this.#readable(minSeq, timeoutMs);
    return this.#parts.index.search(request);
  }

  /** `assume`: staged transactions the router found committed in their records, read as committed. */
  async get(ids: string[], withVectors: boolean, minSeq: number, timeoutMs: number, assume?: string[]): Promise<ShardRead<StoredPoint[]>> {
    await this.#readable(minSeq, timeoutMs);
    return this.#parts.index.get(ids, withVectors, assume);
  }

  async count(filter: Filter | undefined, minSeq: number, timeoutMs: number, assume?: string[]): Promise<ShardRead<number>> {
    await this.#readable(minSeq, timeoutMs);
    return this.#parts.index.count(filter, assume);
  }

  /**
   * This shard's vote on transaction `txn`, once the entry at `prepareSeq` (its prepare, or any
   * later one: recovery asks with the log's end) is read: a pure function of the log up to the
   * prepare (decision 013). Waits on what was read, not on what took effect, so a vote never
   * waits for another transaction's marker.
   */
  async vote(txn: string, prepareSeq: number, timeoutMs: number): Promise<TxnVoteReply> {
    this.#requireReadable();
    if (this.#parts.progress.consumedSeq < prepareSeq) {
      await this.#consumedWaiters.wait(prepareSeq, timeoutMs, () => new JadeError(ErrorCode.Timeout, `shard ${this.shard} of ${this.config.name} did not read sequence ${prepareSeq} within ${timeoutMs} ms`));
    }
    const known = await this.#parts.index.txnOutcome(txn);
    // Not seen: its prepare was skipped as invalid, or the outcome was forgotten long ago. (Ids are
    // unique, so what is known is this transaction's, whatever sequence `prepareSeq` asked to read.)
    if (!known) return { yes: false, reason: `no prepare of ${txn} read up to ${prepareSeq} on this shard`, outcome: "unknown" };
    return { ...known.vote, outcome: known.outcome, ...(known.outcome === "staged" ? { prepareSeq: known.seq } : {}) };
  }

  /** The content digest and the sequence it covers (at least `minSeq`): restores and deep verification compare it with a backup's. */
  async contentDigest(minSeq: number, timeoutMs: number): Promise<ShardDigest> {
    await this.#readable(minSeq, timeoutMs);
    return this.#parts.index.contentDigest();
  }

  /**
   * For a replica joining this shard: this replica's local checkpoint, covering what it
   * applied, offered to be read in chunks. Loading that file is far cheaper for the joiner
   * than rebuilding the index from the log.
   */
  async offerCheckpoint(): Promise<CheckpointOffer> {
    this.#requireReadable();
    // Inside the save lock: an offer repeated while the first save runs then finds it done.
    return this.#saving.run(() => offerCheckpoint(this.#parts, this.appliedSeq));
  }

  /** A byte range of the checkpoint offered at `seq` (the request schema bounds it); not_found once the offer expired. */
  async readCheckpoint(seq: number, offset: number, length: number): Promise<Uint8Array> {
    const chunk = await readOfferedChunk(await this.#parts.deps.checkpoints.offered(this.config.uid, this.shard, seq), offset, length);
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
    const { deps, index, log, progress } = this.#parts;
    const worthCheckpointing = isReadable(this.#state) && this.appliedSeq > progress.checkpointSeq;
    this.#actor.send({ type: "STOP" });
    this.#subscription?.unsubscribe();
    clearInterval(this.#pendingTimer);
    this.#waiters.rejectAll(() => unavailable(`shard ${this.shard} of ${this.config.name} stopped`));
    this.#consumedWaiters.rejectAll(() => unavailable(`shard ${this.shard} of ${this.config.name} stopped`));
    // Keeping the shard: save what the checkpoint lacks (an idle replica's checkpoint is kept as
    // it is: deleting it sent an idle node's clean restart to the shared snapshot). Giving it up: delete.
    if (options.checkpoint) {
      if (worthCheckpointing) await this.#saving.run(() => shutdownCheckpoint(this.#parts));
    } else await deps.checkpoints.drop(this.config.uid, this.shard).catch((err) => log.warn({ err }, "could not delete checkpoint"));
    await index.close().catch(() => undefined);
    deps.pool.unpin(shardKey(this.config.uid, this.shard));
  }

  async #readable(minSeq: number, timeoutMs: number): Promise<void> {
    this.#requireReadable();
    if (minSeq > 0) await this.waitApplied(minSeq, timeoutMs);
  }

  #requireReadable(): void {
    if (!isReadable(this.#state)) throw unavailable(`shard ${this.shard} of ${this.config.name} is ${this.#state}, not serving`);
  }

  #machine() {
    const parts = this.#parts;
    const { nats, nodeId } = parts.deps;
    const { name } = this.config;
    const shard = this.shard;
    return replicaMachine.provide({
      actors: {
        restore: fromPromise<RestoreOutput, RestoreInput>(async () => {
          const snapshotSeq = await restoreReplica(parts);
          return { snapshotSeq, unabsorbed: parts.progress.pendingRows, points: parts.progress.count };
        }),
        follow: fromCallback<EventObject, FollowInput>(({ input, sendBack }) => {
          const abort = new AbortController();
          followLog({
            js: nats.js,
            jsm: nats.jsm,
            stream: names.logStream(name, shard),
            fromSeq: input.fromSeq,
            apply: (records) => applyRecords(parts, records, abort.signal),
            onProgress: (appliedSeq, lastSeq) => {
              this.#consumedWaiters.progress(parts.progress.consumedSeq);
              sendBack({ type: "PROGRESS", appliedSeq, lastSeq });
            },
            signal: abort.signal,
            traceAttributes: { "jade.node": nodeId, "jade.collection": name, "jade.shard": shard },
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
        snapshot: fromPromise<SnapshotOutput, SnapshotInput>(async () => {
          const saved = await this.#saving.run(() => saveSnapshot(parts, { upload: "ifDesignated" }));
          return { seq: saved.seq, durationMs: saved.saveMs, unabsorbed: saved.unabsorbed, points: saved.points };
        }),
      },
      actions: {
        notifyState: (_, params) => parts.log.info({ state: params.state, appliedSeq: this.appliedSeq }, "replica state"),
        notifyProgress: (_, params) => {
          this.#waiters.progress(params.appliedSeq);
          this.#publishApplied(params.appliedSeq);
        },
        reportFailure: (_, params) => parts.log.warn({ error: params.error, retries: params.retries }, "replica failed; will retry"),
        reportSnapshotError: (_, params) => parts.log.warn({ error: params.error }, "snapshot failed; will retry"),
      },
    });
  }
}
