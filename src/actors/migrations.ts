/**
 * The leader's migration runner: one `migrationMachine` actor per transfer,
 * persisted in KV `jade_migrations` so a new leader resumes them. Its effects
 * are CAS writes of the placement (learner → replica, source → draining →
 * released) and the target's progress from heartbeats. At most
 * `concurrentMax` transfers run at once; the others wait as `planned`.
 */
import { createActor, fromCallback, fromPromise, type EventObject } from "xstate";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import {
  migrationMachine,
  migrationStateOf,
  isFinal,
  isActive,
  persistTo,
  resumeOptions,
  type CutoverOutput,
  type MigrationActorRef,
  type MigrationState,
  type PersistedMigration,
  type PrepareOutput,
  type RollbackOutput,
  type StepInput,
  type WatchTargetInput,
} from "../machines/migration.ts";
import { ErrorCode, JadeError } from "../runtime/errors.ts";
import type { Logger } from "../runtime/log.ts";
import { applyCutover, applyPrepare, applyRollback, makeTransfer, transferPhase, TransferError, type Transfer, type TransferProgress, type TransferReason } from "../runtime/transfer.ts";
import type { Membership } from "./membership.ts";
import { requestReplica } from "./replica/protocol.ts";
import type { PlacementRecord, PlacementStore } from "./placement-store.ts";

export interface MigrationSettings {
  concurrentMax: number;
  catchUpLagMax: number;
  stepTimeoutMs: number;
  drainMs: number;
  /** How often the target's progress is read from heartbeats. */
  watchIntervalMs: number;
  /** A target whose applied sequence does not move for this long while catching up is given up (rolled back). */
  stallTimeoutMs: number;
  /**
   * How long `prepare` waits for a serving replica to upload a fresh snapshot for the target
   * to start from (loading a file is far cheaper than rebuilding the index from the log; the
   * upload is paced by the source's transfer budget). Past it, the target starts from the
   * newest snapshot there is and replays the rest.
   */
  seedTimeoutMs: number;
}

export const defaultMigrationSettings: MigrationSettings = {
  concurrentMax: 2,
  catchUpLagMax: 0,
  // Above seedTimeoutMs: `prepare` includes waiting for the seed snapshot.
  stepTimeoutMs: 40_000,
  drainMs: 2_000,
  watchIntervalMs: 500,
  stallTimeoutMs: 120_000,
  seedTimeoutMs: 30_000,
};

export interface MigrationView {
  id: string;
  state: MigrationState;
  transfer: Transfer;
  progress: TransferProgress;
  reason?: string;
}

interface Deps {
  nc: NatsConnection;
  kv: KV;
  placements: PlacementStore;
  membership: Membership;
  nodeDeadAfterMs: number;
  log: Logger;
  settings: MigrationSettings;
}

const encoder = new TextEncoder();

export class MigrationRunner {
  readonly #deps: Deps;
  readonly #log: Logger;
  readonly #actors = new Map<string, MigrationActorRef>();
  /** Per-id chain of KV writes, so records land in state order. */
  readonly #writes = new Map<string, Promise<unknown>>();
  #running = false;

  constructor(deps: Deps) {
    this.#deps = deps;
    this.#log = deps.log.child({ actor: "migrations" });
  }

  /** Becoming leader: resume every unfinished transfer from its record. */
  async start(): Promise<void> {
    this.#running = true;
    for (const [id, payload] of await this.#records()) {
      if (this.#actors.has(id)) continue;
      if (isFinal(stateOfPayload(payload))) continue;
      this.#spawn(id, payload);
    }
    this.#schedule();
  }

  /** Stepping down: stop the actors (their records stay; the next leader resumes them). */
  stop(): void {
    this.#running = false;
    for (const actor of this.#actors.values()) actor.stop();
    this.#actors.clear();
  }

  /** Plans a transfer; it starts when a slot is free. Idempotent for the same move. */
  async plan(fields: { collection: string; uid: string; shard: number; from: string | null; to: string; reason: TransferReason }): Promise<MigrationView> {
    const transfer = makeTransfer({ ...fields, createdAt: new Date().toISOString() });
    const existing = this.#actors.get(transfer.id);
    // The same move again: a running one is returned; a finished one (e.g. rolled back) is replaced.
    if (existing && !isFinal(migrationStateOf(existing.getSnapshot()))) return view(existing);
    existing?.stop();
    this.#spawn(transfer.id, undefined, transfer);
    this.#schedule();
    return view(this.#actors.get(transfer.id)!);
  }

  async list(): Promise<MigrationView[]> {
    const views = new Map<string, MigrationView>();
    for (const [id, payload] of await this.#records()) {
      views.set(id, { id, state: stateOfPayload(payload), transfer: payload.context.transfer, progress: payload.context.progress });
    }
    for (const actor of this.#actors.values()) {
      const v = view(actor);
      views.set(v.id, v);
    }
    return [...views.values()].sort((a, b) => a.transfer.createdAt.localeCompare(b.transfer.createdAt));
  }

  control(id: string, command: "pause" | "resume" | "cancel"): MigrationView {
    const actor = this.#actors.get(id);
    if (!actor) throw new JadeError(ErrorCode.NotFound, `no running migration ${id}`);
    actor.send({ type: command === "pause" ? "PAUSE" : command === "resume" ? "RESUME" : "CANCEL" } as never);
    return view(actor);
  }

  /** Transfers not finished yet (active or waiting). */
  pending(): Transfer[] {
    return [...this.#actors.values()].filter((a) => !isFinal(migrationStateOf(a.getSnapshot()))).map((a) => a.getSnapshot().context.transfer);
  }

  #spawn(id: string, payload: PersistedMigration | undefined, transfer?: Transfer): void {
    const machine = this.#machine();
    const s = this.#deps.settings;
    const actor = payload
      ? createActor(machine, resumeOptions(payload))
      : createActor(machine, {
          input: {
            transfer: transfer!,
            catchUpLagMax: s.catchUpLagMax,
            stepTimeoutMs: s.stepTimeoutMs,
            drainMs: s.drainMs,
            stallTimeoutMs: s.stallTimeoutMs,
          },
        });
    this.#actors.set(id, actor);
    actor.subscribe({
      next: (snapshot) => {
        if (isFinal(migrationStateOf(snapshot))) this.#schedule();
      },
      error: (err) => this.#log.error({ err, id }, "migration actor crashed"),
    });
    actor.start();
  }

  /** Starts planned transfers while fewer than concurrentMax are active. */
  #schedule(): void {
    if (!this.#running) return;
    const states = [...this.#actors.values()].map((a) => migrationStateOf(a.getSnapshot()));
    let active = states.filter((st) => isActive(st) && st !== "planned").length;
    for (const actor of this.#actors.values()) {
      if (active >= this.#deps.settings.concurrentMax) break;
      if (migrationStateOf(actor.getSnapshot()) !== "planned") continue;
      actor.send({ type: "START", atMs: Date.now() } as never);
      active++;
    }
  }

  async #records(): Promise<[string, PersistedMigration][]> {
    const out: [string, PersistedMigration][] = [];
    for await (const key of await this.#deps.kv.keys()) {
      const entry = await this.#deps.kv.get(key);
      if (entry?.operation === "PUT") out.push([key, entry.json<PersistedMigration>()]);
    }
    return out;
  }

  #persist(id: string, payload: PersistedMigration): void {
    const previous = this.#writes.get(id) ?? Promise.resolve();
    const next = previous
      .then(() => this.#deps.kv.put(id, encoder.encode(JSON.stringify(payload))))
      .catch((err) => this.#log.warn({ err: String(err), id }, "could not persist a migration"));
    this.#writes.set(id, next);
  }

  /** CAS on the shard's placement record: re-read and re-apply `change` on conflict. */
  async #updatePlacement(transfer: Transfer, change: (record: PlacementRecord) => PlacementRecord): Promise<PlacementRecord> {
    return this.#deps.placements.exclusive(transfer.collection, () => this.#casPlacement(transfer, change));
  }

  async #casPlacement(transfer: Transfer, change: (record: PlacementRecord) => PlacementRecord): Promise<PlacementRecord> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const stored = this.#deps.placements.get(transfer.collection);
      if (!stored || stored.record.uid !== transfer.uid) throw new TransferError(`collection ${transfer.collection} is gone`);
      const next = change(stored.record);
      if (next === stored.record) return next;
      try {
        await this.#deps.placements.write(next, stored.revision);
        this.#log.info({ id: transfer.id, epoch: next.epoch, shard: next.shards[transfer.shard] }, "placement updated by a migration");
        return next;
      } catch (err) {
        this.#log.debug({ err: String(err) }, "placement CAS conflict; retrying");
      }
    }
    throw new Error("placement kept changing under the migration");
  }

  /**
   * Best effort, before the target becomes a learner: a serving replica (the source if it is
   * live) uploads a snapshot of what it applied, so the target restores it and replays only
   * what came after. Failing or slow, the target starts from an older snapshot instead.
   */
  async #seed(t: Transfer, record: PlacementRecord): Promise<void> {
    const { membership, nodeDeadAfterMs, settings, nc } = this.#deps;
    const replicas = record.shards[t.shard]?.replicas ?? [];
    const source = [...(t.from ? [t.from] : []), ...replicas].find((n) => n !== t.to && replicas.includes(n) && membership.isLive(n, nodeDeadAfterMs));
    if (!source) return;
    const started = performance.now();
    try {
      const { seq } = await requestReplica<{ seq: number }>(
        nc,
        { node: source, collection: t.collection, shard: t.shard, op: "snapshot" },
        { uid: t.uid, minSeq: 0, timeoutMs: settings.seedTimeoutMs, snapshot: {} },
        settings.seedTimeoutMs,
      );
      this.#log.info({ id: t.id, source, seq, ms: Math.round(performance.now() - started) }, "seeded the target with a fresh snapshot");
    } catch (err) {
      this.#log.warn({ id: t.id, source, err: String(err) }, "no fresh snapshot for the target; it replays from an older one");
    }
  }

  #machine() {
    const { membership, nodeDeadAfterMs, settings } = this.#deps;
    const shardOf = (record: PlacementRecord, shard: number) => record.shards[shard];
    return migrationMachine.provide({
      actors: {
        prepare: fromPromise<PrepareOutput, StepInput>(async ({ input }) => {
          const t = input.transfer;
          const current = this.#deps.placements.get(t.collection)?.record;
          if (current && transferPhase(current, t) === "cutOver") return { epoch: current.epoch, alreadyCutOver: true };
          if (current && transferPhase(current, t) === "pending") await this.#seed(t, current);
          const record = await this.#updatePlacement(t, (r) => applyPrepare(r, t));
          return { epoch: record.epoch, alreadyCutOver: false };
        }),
        cutover: fromPromise<CutoverOutput, StepInput>(async ({ input }) => {
          const t = input.transfer;
          const record = await this.#updatePlacement(t, (r) => {
            const next = applyCutover(r, t);
            if (next === r || t.from === null) return next;
            // The source keeps its replica, unrouted, while in-flight reads finish.
            return withShard(next, t.shard, (s) => ({ ...s, draining: [...new Set([...(s.draining ?? []), t.from!])] }));
          });
          return { epoch: record.epoch };
        }),
        release: fromPromise<void, StepInput>(async ({ input }) => {
          const t = input.transfer;
          await this.#updatePlacement(t, (r) => {
            const s = shardOf(r, t.shard);
            if (!s?.draining?.includes(t.from!)) return r;
            return withShard(r, t.shard, (x) => dropDraining(x, t.from!));
          });
        }),
        rollback: fromPromise<RollbackOutput, StepInput>(async ({ input }) => {
          const t = input.transfer;
          const current = this.#deps.placements.get(t.collection)?.record;
          if (current && transferPhase(current, t) === "cutOver") return { epoch: current.epoch, alreadyCutOver: true };
          const record = await this.#updatePlacement(t, (r) => applyRollback(r, t));
          return { epoch: record.epoch, alreadyCutOver: false };
        }),
        watchTarget: fromCallback<EventObject, WatchTargetInput>(({ input, sendBack }) => {
          const t = input.transfer;
          let sourceDown = false;
          const timer = setInterval(() => {
            const stored = this.#deps.placements.get(t.collection);
            // A dropped (or re-created) collection: the transfer has nothing left to move.
            if (!membership.isLive(t.to, nodeDeadAfterMs) || !stored || stored.record.uid !== t.uid) {
              sendBack({ type: "TARGET_DOWN" });
              return;
            }
            if (t.from && !sourceDown && !membership.isLive(t.from, nodeDeadAfterMs)) {
              sourceDown = true;
              sendBack({ type: "SOURCE_DOWN" });
            }
            const beat = membership.member(t.to)?.heartbeat.replicas.find((r) => r.uid === t.uid && r.shard === t.shard);
            // A serving or lagging target knows the log's end. A replaying one counts as progress
            // only while it shows lag: right after its restore it reports none until it has
            // asked the log, and that must never pass for caught up.
            const counts = beat && (beat.state === "serving" || beat.state === "lagging" || (beat.state === "replaying" && beat.lag > settings.catchUpLagMax));
            if (counts) {
              sendBack({
                type: "TARGET_PROGRESS",
                appliedSeq: beat.appliedSeq,
                lastSeq: beat.appliedSeq + beat.lag,
                bytes: beat.transferredBytes,
                atMs: Date.now(),
              });
            }
          }, settings.watchIntervalMs);
          return () => clearInterval(timer);
        }),
      },
      actions: {
        persist: persistTo((id, payload) => this.#persist(id, payload)),
        reportError: (_, params) => this.#log.warn({ step: params.step, error: params.error, attempt: params.attempt }, "migration step failed; will retry"),
      },
    });
  }
}

function withShard(record: PlacementRecord, shard: number, change: (s: PlacementRecord["shards"][number]) => PlacementRecord["shards"][number]): PlacementRecord {
  return { ...record, epoch: record.epoch + 1, shards: record.shards.map((s) => (s.shard === shard ? change(s) : s)) };
}

function dropDraining(s: PlacementRecord["shards"][number], node: string): PlacementRecord["shards"][number] {
  const draining = (s.draining ?? []).filter((n) => n !== node);
  const { draining: _, ...rest } = s;
  return draining.length > 0 ? { ...rest, draining } : rest;
}

/**
 * The state a persisted migration record is in, read the way the machine itself reads it
 * (a running migration is a nested state value). A record it cannot restore reads as failed.
 */
export function stateOfPayload(payload: PersistedMigration): MigrationState {
  try {
    return migrationStateOf(createActor(migrationMachine, resumeOptions(payload)).getSnapshot());
  } catch {
    return "failed";
  }
}

function view(actor: MigrationActorRef): MigrationView {
  const snapshot = actor.getSnapshot();
  const context = snapshot.context as { transfer: Transfer; progress: TransferProgress; reason?: string };
  return { id: context.transfer.id, state: migrationStateOf(snapshot), transfer: context.transfer, progress: context.progress, reason: context.reason };
}
