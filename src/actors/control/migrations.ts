/**
 * The leader's migration runner: one `migrationMachine` actor per transfer,
 * persisted in KV `jade_migrations` so a new leader resumes them. Its effects
 * are CAS writes of the placement (learner → replica, source → draining →
 * released) and the target's progress from heartbeats. At most
 * `concurrentMax` transfers run at once; the others wait as `planned`.
 */
import { createActor, fromPromise } from "xstate";
import type { ListedKv } from "../../nats/kv-keys.ts";
import type { JetStreamManager } from "@nats-io/jetstream";
import { z } from "zod";
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
} from "../../machines/migration.ts";
import { ErrorCode, errorMessage, JadeError } from "../../runtime/errors.ts";
import type { Logger } from "../../runtime/log.ts";
import {
  applyCutover,
  applyPrepare,
  applyRollback,
  makeTransfer,
  markDraining,
  releaseDraining,
  Transfer,
  TransferError,
  transferPhase,
  TransferProgress,
  type TransferReason,
} from "../../runtime/transfer.ts";
import type { Membership } from "../cluster/membership.ts";
import type { PlacementStore } from "../cluster/placement-store.ts";
import type { PlacementRecord } from "../../runtime/placement.ts";
import { KeyedMutex } from "../../runtime/mutex.ts";
import { Backoff } from "../../runtime/async.ts";
import { watchTarget } from "./watch-target.ts";

export interface MigrationSettings {
  /** This node's own setting; the cluster's (`jade config`, migration.concurrentMax) overrides it, live. */
  concurrentMax: number;
  catchUpLagMax: number;
  stepTimeoutMs: number;
  drainMs: number;
  /** How often the target's progress is read from heartbeats. */
  watchIntervalMs: number;
  /** A target whose applied sequence does not move for this long while catching up is given up (rolled back). */
  stallTimeoutMs: number;
}

export const defaultMigrationSettings: MigrationSettings = {
  concurrentMax: 2,
  catchUpLagMax: 0,
  stepTimeoutMs: 10_000,
  drainMs: 2_000,
  watchIntervalMs: 500,
  stallTimeoutMs: 120_000,
};

export interface MigrationView {
  id: string;
  state: MigrationState;
  transfer: Transfer;
  progress: TransferProgress;
  reason?: string;
}

interface Deps {
  jsm: JetStreamManager;
  kv: ListedKv;
  placements: PlacementStore;
  membership: Membership;
  nodeDeadAfterMs: number;
  log: Logger;
  settings: MigrationSettings;
  /** Transfers run at once, as the cluster's settings say now (actors/config). */
  concurrentMax: () => number;
}

const encoder = new TextEncoder();

/**
 * The envelope of a record in KV `jade_migrations` (an xstate persisted snapshot): checked
 * where the runner and operators read it; the machine's own restore checks the rest.
 */
const MigrationRecord = z
  .object({
    status: z.enum(["active", "done", "error", "stopped"]),
    value: z.union([z.string(), z.record(z.string(), z.unknown())]),
    context: z.object({ transfer: Transfer, progress: TransferProgress }).loose(),
  })
  .loose();

/** Between tries at listing the records to resume: a listing fails while NATS elects leaders, for seconds. */
const resumeRetryMsMin = 500;
const resumeRetryMsMax = 5_000;

/** A placement CAS that lost this many times in a row means another writer keeps winning: the step fails and the machine retries it. */
const placementCasAttemptsMax = 5;

export class MigrationRunner {
  readonly #deps: Deps;
  readonly #log: Logger;
  readonly #actors = new Map<string, MigrationActorRef>();
  /** States of stored records read by `list`, by KV revision (restoring a machine per poll is not free). */
  readonly #recordStates = new Map<string, { revision: number; state: MigrationState }>();
  /** Per id, one KV write at a time, so records land in state order. */
  readonly #writes = new KeyedMutex();
  #running = false;
  /** Counts leadership terms (start and stop): a resume of an ended term stops. */
  #term = 0;

  constructor(deps: Deps) {
    this.#deps = deps;
    this.#log = deps.log.child({ actor: "migrations" });
  }

  /**
   * Becoming leader: resume every unfinished transfer from its record. A listing that fails
   * (NATS busy electing, a server down) is tried again for as long as this term lasts: a
   * transfer left unresumed keeps its learner in the placement for good.
   */
  async start(): Promise<void> {
    this.#running = true;
    const term = ++this.#term;
    const backoff = new Backoff({ initialMs: resumeRetryMsMin, maxMs: resumeRetryMsMax });
    for (;;) {
      try {
        const records = await this.#records((id) => !this.#actors.has(id));
        if (term !== this.#term) return;
        for (const [id, { payload }] of records) {
          if (!this.#actors.has(id) && !isFinal(stateOfPayload(payload))) this.#spawn(id, payload);
        }
        break;
      } catch (err) {
        if (term !== this.#term) return;
        this.#log.warn({ err: errorMessage(err), retryInMs: backoff.nextMs }, "could not list the migrations to resume; trying again");
        await backoff.wait();
        if (term !== this.#term) return;
      }
    }
    this.schedule();
  }

  /** Stepping down: stop the actors (their records stay; the next leader resumes them). */
  stop(): void {
    this.#running = false;
    this.#term++;
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
    this.schedule();
    return view(this.#actors.get(transfer.id)!);
  }

  async list(): Promise<MigrationView[]> {
    const views = new Map<string, MigrationView>();
    // Records of transfers this leader runs are read from their actors; the others (finished,
    // or left by an earlier leader) are restored once per revision: operators and dashboards poll this.
    for (const [id, { payload, revision }] of await this.#records((id) => !this.#actors.has(id))) {
      let state = this.#recordStates.get(id);
      if (state?.revision !== revision) this.#recordStates.set(id, (state = { revision, state: stateOfPayload(payload) }));
      views.set(id, { id, state: state.state, transfer: payload.context.transfer, progress: payload.context.progress });
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
    actor.send({ type: command === "pause" ? "PAUSE" : command === "resume" ? "RESUME" : "CANCEL" });
    return view(actor);
  }

  /** Migrations this leader runs and that have not finished, with their progress (metrics). */
  running(): MigrationView[] {
    return [...this.#actors.values()].filter((a) => !isFinal(migrationStateOf(a.getSnapshot()))).map(view);
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
        if (isFinal(migrationStateOf(snapshot))) this.schedule();
      },
      error: (err) => this.#log.error({ err, id }, "migration actor crashed"),
    });
    actor.start();
  }

  /** Starts planned transfers while fewer than concurrentMax are active (again after that setting changed). */
  schedule(): void {
    if (!this.#running) return;
    const states = [...this.#actors.values()].map((a) => migrationStateOf(a.getSnapshot()));
    let active = states.filter((st) => isActive(st) && st !== "planned").length;
    for (const actor of this.#actors.values()) {
      if (active >= this.#deps.concurrentMax()) break;
      if (migrationStateOf(actor.getSnapshot()) !== "planned") continue;
      actor.send({ type: "START", atMs: Date.now() });
      active++;
    }
  }

  /** The stored records (those `wanted` by id), with their KV revision. */
  async #records(wanted: (id: string) => boolean = () => true): Promise<[string, { payload: PersistedMigration; revision: number }][]> {
    const out: [string, { payload: PersistedMigration; revision: number }][] = [];
    for (const key of await this.#deps.kv.listKeys()) {
      if (!wanted(key)) continue;
      const entry = await this.#deps.kv.get(key);
      if (entry?.operation !== "PUT") continue;
      const record = MigrationRecord.safeParse(jsonOf(entry.string()));
      // The envelope is checked; xstate's restore judges the rest (stateOfPayload reads a record it cannot restore as failed).
      if (record.success) out.push([key, { payload: record.data as unknown as PersistedMigration, revision: entry.revision }]);
      else this.#log.error({ key, issues: record.error.issues.slice(0, 3) }, "unreadable migration record; left as it is");
    }
    return out;
  }

  #persist(id: string, payload: PersistedMigration): void {
    void this.#writes
      .run(id, () => this.#deps.kv.put(id, encoder.encode(JSON.stringify(payload))))
      .catch((err) => this.#log.warn({ err: errorMessage(err), id }, "could not persist a migration"));
  }

  /** CAS on the shard's placement record: re-read and re-apply `change` on conflict. */
  async #updatePlacement(transfer: Transfer, change: (record: PlacementRecord) => PlacementRecord): Promise<PlacementRecord> {
    return this.#deps.placements.exclusive(transfer.collection, () => this.#casPlacement(transfer, change));
  }

  async #casPlacement(transfer: Transfer, change: (record: PlacementRecord) => PlacementRecord): Promise<PlacementRecord> {
    for (let attempt = 0; attempt < placementCasAttemptsMax; attempt++) {
      const stored = this.#deps.placements.get(transfer.collection);
      if (!stored || stored.record.uid !== transfer.uid) throw new TransferError(`collection ${transfer.collection} is gone`);
      const next = change(stored.record);
      if (next === stored.record) return next;
      try {
        await this.#deps.placements.write(next, stored.revision);
        this.#log.info({ id: transfer.id, epoch: next.epoch, shard: next.shards[transfer.shard] }, "placement updated by a migration");
        return next;
      } catch (err) {
        this.#log.debug({ err: errorMessage(err) }, "placement CAS conflict; retrying");
      }
    }
    throw new Error("placement kept changing under the migration");
  }

  /** Prepare and rollback: nothing to do once the placement shows the cutover landed (the migration then continues). */
  async #unlessCutOver(
    t: Transfer,
    transform: (record: PlacementRecord, t: Transfer) => PlacementRecord,
  ): Promise<{ epoch: number; alreadyCutOver: boolean }> {
    const current = this.#deps.placements.get(t.collection)?.record;
    if (current && transferPhase(current, t) === "cutOver") return { epoch: current.epoch, alreadyCutOver: true };
    const record = await this.#updatePlacement(t, (r) => transform(r, t));
    return { epoch: record.epoch, alreadyCutOver: false };
  }

  #machine() {
    const { jsm, placements, membership, nodeDeadAfterMs, settings } = this.#deps;
    return migrationMachine.provide({
      actors: {
        prepare: fromPromise<PrepareOutput, StepInput>(({ input }) => this.#unlessCutOver(input.transfer, applyPrepare)),
        cutover: fromPromise<CutoverOutput, StepInput>(({ input }) => this.#cutover(input.transfer)),
        release: fromPromise<void, StepInput>(({ input }) => this.#release(input.transfer)),
        rollback: fromPromise<RollbackOutput, StepInput>(({ input }) => this.#unlessCutOver(input.transfer, applyRollback)),
        watchTarget: watchTarget({ jsm, placements, membership, nodeDeadAfterMs, ...settings }),
      },
      actions: {
        persist: persistTo((id, payload) => this.#persist(id, payload)),
        reportError: (_, params) => this.#log.warn({ step: params.step, error: params.error, attempt: params.attempt }, "migration step failed; will retry"),
      },
    });
  }

  async #cutover(t: Transfer): Promise<CutoverOutput> {
    const record = await this.#updatePlacement(t, (r) => {
      const next = applyCutover(r, t);
      // The source keeps its replica, unrouted, while in-flight reads finish.
      return next === r || t.from === null ? next : markDraining(next, t.shard, t.from);
    });
    return { epoch: record.epoch };
  }

  async #release(t: Transfer): Promise<void> {
    await this.#updatePlacement(t, (r) => (t.from === null ? r : releaseDraining(r, t.shard, t.from)));
  }
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

/** The value of a JSON text, or undefined where it is none (the schema then refuses it). */
function jsonOf(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function view(actor: MigrationActorRef): MigrationView {
  const snapshot = actor.getSnapshot();
  const context = snapshot.context as { transfer: Transfer; progress: TransferProgress; reason?: string };
  return { id: context.transfer.id, state: migrationStateOf(snapshot), transfer: context.transfer, progress: context.progress, reason: context.reason };
}
