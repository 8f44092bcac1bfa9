/**
 * A shard replica: `replicaMachine` assembled with its effects. The machine
 * decides (restore → replay → serve, snapshot when due, retry after failure);
 * this class binds the effects — the object store, the shard log, the index
 * actor in its worker — and answers reads once the replica is readable.
 */
import { mkdir, rm } from "node:fs/promises";
import path from "node:path";
import { createActor, fromCallback, fromPromise, type EventObject, type Subscription } from "xstate";
import { ErrorCode, JadeError, unavailable } from "../../runtime/errors.ts";
import type { Filter } from "../../runtime/filter.ts";
import type { Logger } from "../../runtime/log.ts";
import type { NatsContext } from "../../runtime/nats.ts";
import type { CollectionConfig, StoredPoint } from "../../runtime/schemas.ts";
import { names, subjects } from "../../runtime/subjects.ts";
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
import type { IndexPool, ShardIndexClient } from "../index/pool.ts";
import { shardKeyOf, type ShardHit, type ShardIndexConfig, type ShardSearchRequest } from "../index/api.ts";
import { followLog } from "./follow.ts";
import type { SnapshotStore } from "./snapshots.ts";
import { AppliedWaiters } from "./waiters.ts";

export interface ReplicaSettings {
  lagThresholdEntries: number;
  retryDelayMs: number;
  retryDelayMaxMs: number;
}

export const defaultReplicaSettings: ReplicaSettings = {
  lagThresholdEntries: 64,
  retryDelayMs: 500,
  retryDelayMaxMs: 30_000,
};

export interface ReplicaDeps {
  nats: NatsContext;
  pool: IndexPool;
  snapshots: SnapshotStore;
  nodeId: string;
  /** Scratch space for snapshot files. */
  scratchDir: string;
  log: Logger;
  settings: ReplicaSettings;
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
  readonly #designated: () => boolean;
  /** Points in the index after the last apply or restore (for heartbeats and status). */
  #count = 0;

  /** `designated` tells whether this replica is the one of its shard that writes snapshots. */
  constructor(config: CollectionConfig, shard: number, deps: ReplicaDeps, designated: () => boolean) {
    this.config = config;
    this.shard = shard;
    this.#deps = deps;
    this.#designated = designated;
    this.#log = deps.log.child({ actor: "replica", collection: config.name, shard });
    this.#index = deps.pool.pin(shardKeyOf(config.uid, shard));
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

  /** The index behind this replica was lost (its worker died): rebuild from snapshot + log. */
  indexLost(reason: string): void {
    this.#actor.send({ type: "FOLLOW_FAILED", error: reason });
  }

  async stop(): Promise<void> {
    this.#actor.send({ type: "STOP" });
    this.#subscription?.unsubscribe();
    this.#waiters.rejectAll(() => unavailable(`shard ${this.shard} of ${this.config.name} stopped`));
    await this.#index.close().catch(() => undefined);
    this.#deps.pool.unpin(shardKeyOf(this.config.uid, this.shard));
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
            apply: async (records) => {
              const result = await this.#index.apply(records);
              this.#count = result.count;
              return result;
            },
            onProgress: (appliedSeq, lastSeq) => sendBack({ type: "PROGRESS", appliedSeq, lastSeq }),
            signal: abort.signal,
          }).then(
            () => {
              if (!abort.signal.aborted) sendBack({ type: "FOLLOW_FAILED", error: "the log consumer ended" });
            },
            (err: unknown) => {
              if (!abort.signal.aborted) sendBack({ type: "FOLLOW_FAILED", error: String((err as Error)?.message ?? err) });
            },
          );
          return () => abort.abort();
        }),
        snapshot: fromPromise<SnapshotOutput, SnapshotInput>(async () => ({ seq: await this.#snapshot() })),
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

  /** Loads the newest readable snapshot of this incarnation into a fresh index; returns its sequence. */
  async #restore(): Promise<number> {
    const { snapshots, scratchDir } = this.#deps;
    const { name, uid } = this.config;
    await this.#index.open(this.#indexConfig());
    this.#count = 0;
    await mkdir(scratchDir, { recursive: true });
    for (const ref of await snapshots.list(name, uid, this.shard)) {
      const file = path.join(scratchDir, `restore-${uid}-${this.shard}-${ref.seq}.snap`);
      try {
        await snapshots.download(ref.name, file);
        const loaded = await this.#index.load(this.#indexConfig(), file);
        this.#count = loaded.count;
        this.#log.info({ snapshot: ref.name, appliedSeq: loaded.appliedSeq, count: loaded.count }, "restored snapshot");
        return loaded.appliedSeq;
      } catch (err) {
        this.#log.warn({ err, snapshot: ref.name }, "snapshot unreadable; trying an older one");
        await this.#index.open(this.#indexConfig());
      } finally {
        await rm(file, { force: true });
      }
    }
    return 0;
  }

  async #snapshot(): Promise<number> {
    const { snapshots, scratchDir } = this.#deps;
    const { name, uid } = this.config;
    // Only one replica per shard uploads; the others just record that the cut is covered.
    if (!this.#designated()) return this.appliedSeq;
    await mkdir(scratchDir, { recursive: true });
    const file = path.join(scratchDir, `save-${uid}-${this.shard}-${process.hrtime.bigint()}.snap`);
    try {
      const saved = await this.#index.save(file);
      const ref = await snapshots.upload(name, uid, this.shard, saved.appliedSeq, file);
      await snapshots.prune(name, uid, this.shard);
      this.#log.info({ snapshot: ref.name, bytes: saved.bytes }, "snapshot saved");
      return saved.appliedSeq;
    } finally {
      await rm(file, { force: true });
    }
  }
}
