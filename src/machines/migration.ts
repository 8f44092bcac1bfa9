/**
 * migrationMachine — one shard transfer, from plan to completion (ARCHITECTURE §7).
 *
 * Zero downtime: the source keeps serving until the cutover; the target joins first as a
 * *learner* (runs the replica, restores the newest snapshot and follows the log, is never
 * read), and the cutover swaps it in by one CAS on the placement (epoch + 1). The source then
 * drains in-flight reads for `drainMs` and is released.
 *
 * This machine only decides. Every effect is a named actor/action declared in `setup()` with a
 * placeholder that throws, bound with `.provide()` by the coordinator:
 *
 * | effect        | kind         | input                  | output / contract |
 * | ------------- | ------------ | ---------------------- | ----------------- |
 * | `prepare`     | fromPromise  | `{transfer, attempt}`  | CAS placement with `applyPrepare` (target added to the shard's `learners`) → `{epoch, alreadyCutOver}`; `alreadyCutOver: true` when `transferPhase` is `cutOver` (goal already holds: a stale snapshot was restored). Reject with `TransferError` (code `obsolete`) if the transfer cannot apply (collection gone / uid changed / invalid phase): not retried. |
 * | `watchTarget` | fromCallback | `{transfer}`           | sendBack `TARGET_PROGRESS {appliedSeq, lastSeq, bytes, atMs}` from the target's heartbeats (its replica of this shard; `atMs` = Date.now() at receipt), `TARGET_DOWN` when the coordinator declares the target dead, `SOURCE_DOWN` likewise for the source. Runs from `preparing` to `completed`; cleanup on exit. |
 * | `cutover`     | fromPromise  | `{transfer, attempt}`  | CAS placement with `applyCutover` (learner → replica, source removed, epoch + 1) → `{epoch}`; already cut over → succeed with the current epoch; target not a learner → reject `TransferError`. |
 * | `release`     | fromPromise  | `{transfer, attempt}`  | tell `transfer.from` to close its replica (it left the placement at the cutover and kept serving in-flight reads). Idempotent: already closed = success. Not called when `from` is null or the source was reported down. |
 * | `rollback`    | fromPromise  | `{transfer, attempt}`  | CAS placement with `applyRollback` (learner removed) → `{epoch, alreadyCutOver}`; `alreadyCutOver: true` when `transferPhase` is `cutOver`: the rollback did nothing and the migration continues to `draining`. Nothing to remove = success. |
 * | `persist`     | action       | params `{id, state}`   | called on entering every state (and each retry back-off): write `self.getPersistedSnapshot()` to KV `jade_migrations` key `id`. Use `persistTo(write)`: an action runs mid-transition, it reads the snapshot once the transition has committed. Writes must be applied in order (latest wins). |
 * | `reportError` | action       | `{step, error, attempt}` | log a failed attempt of a step. |
 *
 * Every step is idempotent and every placement write is a CAS that re-reads and re-applies
 * the (pure) transform on conflict: a step abandoned on timeout, pause or TARGET_DOWN may
 * still land later, and a restored machine re-runs the step that was in flight.
 *
 * ```
 *  planned ─START─► preparing ─done─► catchingUp ─TARGET_PROGRESS lag ≤ catchUpLagMax─► cutover ─done─► draining ─► completed
 *     │                │  ▲              │  ▲                                          │               after drainMs: release
 *     │                ├─PAUSE─► paused ◄┘  │                                          │               (skipped: from null / SOURCE_DOWN)
 *     │                │   └──RESUME (to where it was)                                 │
 *     │   CANCEL / TARGET_DOWN / retries exhausted / obsolete / stalled                │ TARGET_DOWN / exhausted / obsolete
 *     └────────────────┴───────────────────────────────► rollingBack ◄─────────────────┘
 *                                                          │  ├─done──────────────► rolledBack (final)
 *                                                          │  ├─alreadyCutOver────► draining
 *                                                          │  └─exhausted/obsolete► failed (final)
 *  release exhausted / obsolete ─► failed (final)
 * ```
 * `prepare`, `cutover`, `release`, `rollback`: a rejection or no answer within `stepTimeoutMs`
 * is retried after `retryDelayMs · 2^(attempt-1)` (capped at `retryDelayMaxMs`), up to
 * `maxAttempts` tries in all; an `obsolete` rejection is not retried.
 *
 * ## Decisions
 * - **Rollback only before the cutover is committed.** Until the `cutover` step has succeeded the
 *   placement still serves from the source, so removing the learner restores the exact
 *   previous placement. After it, the target is a full replica: a target failure is an ordinary
 *   replica failure handled by the repair path (the coordinator re-places dead nodes' replicas
 *   from snapshot + log), and the migration still completes. TARGET_DOWN while the cutover CAS
 *   is in flight rolls back: the `rollback` effect reads the placement and reports
 *   `alreadyCutOver` if the CAS landed, and the migration then continues instead.
 * - **`failed` needs an operator**: reached when the release (after the cutover: the
 *   placement is right, the source may still hold its replica until it reconciles) or the
 *   rollback (before: a learner may be left in the placement) runs out of attempts.
 * - **Timers are invoked actors**, not `after` delays: a persisted snapshot does not carry the
 *   actor system's scheduled events, but it does carry its children, which restart on restore.
 *   So a restored migration re-arms its timers (from their full duration: a restored drain
 *   waits `drainMs` again, a restored step gets a fresh `stepTimeoutMs`). The timer uses the
 *   actor system's scheduler, i.e. its clock (SimulatedClock in tests).
 * - **No cutover decision outside `catchingUp`**, and only on a TARGET_PROGRESS received there:
 *   a paused migration never cuts over, and a resumed one cuts over on the next heartbeat.
 * - **SOURCE_DOWN** is recorded; before the cutover it changes nothing (the target catches up
 *   from the log, not from the source); after it, the drain and the release are skipped.
 * - Time: the machine reads no clock. Progress samples carry the watcher's `atMs` stamp (wall
 *   clock, so samples stay comparable when another coordinator resumes the migration).
 */
import {
  assign,
  fromCallback,
  fromPromise,
  raise,
  setup,
  stateIn,
  type ActorRefFrom,
  type EventObject,
  type Snapshot,
  type SnapshotFrom,
  type StateValue,
} from "xstate";
import { estimateEta, isObsoleteError, Transfer, type ProgressSample, type TransferProgress } from "../runtime/transfer.ts";

// ───────────────────────────── states ─────────────────────────────

export const MigrationState = {
  /** created (and persisted), waiting for START */
  Planned: "planned",
  /** adding the target as a learner */
  Preparing: "preparing",
  /** the target restores + replays the log; cut over once its lag ≤ catchUpLagMax */
  CatchingUp: "catchingUp",
  /** paused from preparing or catchingUp; the target keeps following the log */
  Paused: "paused",
  /** CAS placement: the learner becomes a replica, the source leaves */
  Cutover: "cutover",
  /** the source finishes in-flight reads, then is released */
  Draining: "draining",
  /** removing the learner from the placement */
  RollingBack: "rollingBack",
  Completed: "completed",
  RolledBack: "rolledBack",
  Failed: "failed",
} as const;
export type MigrationState = (typeof MigrationState)[keyof typeof MigrationState];

function assertNever(x: never): never {
  throw new Error(`unhandled migration state: ${String(x)}`);
}

/** Started and not finished (holds placement changes or resources); `planned` is not active. */
export function isActive(state: MigrationState): boolean {
  switch (state) {
    case MigrationState.Preparing:
    case MigrationState.CatchingUp:
    case MigrationState.Paused:
    case MigrationState.Cutover:
    case MigrationState.Draining:
    case MigrationState.RollingBack:
      return true;
    case MigrationState.Planned:
    case MigrationState.Completed:
    case MigrationState.RolledBack:
    case MigrationState.Failed:
      return false;
    default:
      return assertNever(state);
  }
}

/** Finished for good: nothing more happens (the KV record may be replaced by a new transfer). */
export function isFinal(state: MigrationState): boolean {
  switch (state) {
    case MigrationState.Completed:
    case MigrationState.RolledBack:
    case MigrationState.Failed:
      return true;
    case MigrationState.Planned:
    case MigrationState.Preparing:
    case MigrationState.CatchingUp:
    case MigrationState.Paused:
    case MigrationState.Cutover:
    case MigrationState.Draining:
    case MigrationState.RollingBack:
      return false;
    default:
      return assertNever(state);
  }
}

/** Does PAUSE do anything here? */
export function canPause(state: MigrationState): boolean {
  switch (state) {
    case MigrationState.Preparing:
    case MigrationState.CatchingUp:
      return true;
    case MigrationState.Planned:
    case MigrationState.Paused:
    case MigrationState.Cutover:
    case MigrationState.Draining:
    case MigrationState.RollingBack:
    case MigrationState.Completed:
    case MigrationState.RolledBack:
    case MigrationState.Failed:
      return false;
    default:
      return assertNever(state);
  }
}

/** Does CANCEL do anything here (i.e. is the cutover still ahead)? */
export function canCancel(state: MigrationState): boolean {
  switch (state) {
    case MigrationState.Planned:
    case MigrationState.Preparing:
    case MigrationState.CatchingUp:
    case MigrationState.Paused:
      return true;
    case MigrationState.Cutover:
    case MigrationState.Draining:
    case MigrationState.RollingBack:
    case MigrationState.Completed:
    case MigrationState.RolledBack:
    case MigrationState.Failed:
      return false;
    default:
      return assertNever(state);
  }
}

// ───────────────────────────── types ─────────────────────────────

export interface MigrationInput {
  transfer: Transfer;
  /** cut over once the target reports lastSeq - appliedSeq ≤ this */
  catchUpLagMax: number;
  /** a step (prepare, cutover, release, rollback) not answered within this is abandoned and retried */
  stepTimeoutMs: number;
  /** after the cutover, the source keeps serving in-flight reads this long before its release */
  drainMs: number;
  /** tries per step in all (default 3) */
  maxAttempts?: number;
  /** back-off before the 2nd try; doubles per try (default 1000) */
  retryDelayMs?: number;
  /** cap of the back-off (default 30000) */
  retryDelayMaxMs?: number;
  /** roll back if the target's appliedSeq does not advance for this long while catching up; 0 = never (default) */
  stallTimeoutMs?: number;
}

export type MigrationStep = "prepare" | "cutover" | "release" | "rollback";

export interface MigrationContext {
  transfer: Transfer;
  catchUpLagMax: number;
  stepTimeoutMs: number;
  drainMs: number;
  maxAttempts: number;
  retryDelayMs: number;
  retryDelayMaxMs: number;
  stallTimeoutMs: number;
  progress: TransferProgress;
  /** recent progress samples (at most PROGRESS_SAMPLES) for the ETA */
  samples: ProgressSample[];
  /** the last TARGET_PROGRESS advanced appliedSeq (resets the stall timer) */
  advanced: boolean;
  /** failed tries of the current step */
  attempts: number;
  /** where RESUME returns to */
  pausedFrom: "preparing" | "catchingUp" | null;
  /** placement epoch after our last placement write (informational) */
  placementEpoch: number | null;
  targetDown: boolean;
  sourceDown: boolean;
  /** why the migration rolled back or failed */
  reason?: string;
  /** last step error, or a note (e.g. a rollback that found the cutover done) */
  lastError?: string;
}

export interface StartEvent {
  type: "START";
  /** wall-clock ms: progress.startedAtMs */
  atMs: number;
}
export interface PauseEvent {
  type: "PAUSE";
}
export interface ResumeEvent {
  type: "RESUME";
}
export interface CancelEvent {
  type: "CANCEL";
  reason?: string;
}
/** From `watchTarget`: the target's replica of the shard, from its heartbeat. */
export interface TargetProgressEvent {
  type: "TARGET_PROGRESS";
  appliedSeq: number;
  lastSeq: number;
  /** bytes copied so far (snapshot + log), as the target reports it */
  bytes: number;
  /** wall-clock ms at receipt (Date.now()) */
  atMs: number;
}
export interface TargetDownEvent {
  type: "TARGET_DOWN";
}
export interface SourceDownEvent {
  type: "SOURCE_DOWN";
}
export type MigrationEvent =
  | StartEvent
  | PauseEvent
  | ResumeEvent
  | CancelEvent
  | TargetProgressEvent
  | TargetDownEvent
  | SourceDownEvent;
export type WatchTargetSentEvent = TargetProgressEvent | TargetDownEvent | SourceDownEvent;

type TimerFire = "migration.stepTimeout" | "migration.retry" | "migration.drained" | "migration.stalled";
interface TimerEvent {
  type: TimerFire;
}
interface CheckEvent {
  type: "migration.check";
}
type MigrationInternalEvent = MigrationEvent | TimerEvent | CheckEvent;

export interface StepInput {
  transfer: Transfer;
  /** 1-based try number of this step */
  attempt: number;
}
export interface WatchTargetInput {
  transfer: Transfer;
}
export interface PrepareOutput {
  epoch: number;
  /** the placement already shows the cutover done */
  alreadyCutOver: boolean;
}
export interface CutoverOutput {
  epoch: number;
}
export interface RollbackOutput {
  epoch: number;
  /** the cutover had landed: nothing was rolled back, the migration continues */
  alreadyCutOver: boolean;
}
export interface TimerInput {
  delayMs: number;
  fire: TimerFire;
}

export interface PersistParams {
  /** transfer id: the `jade_migrations` key */
  id: string;
  state: MigrationState;
}
export interface ReportErrorParams {
  step: MigrationStep | "timeout";
  error: string;
  attempt: number;
}
/**
 * What `persistTo` writes: `actor.getPersistedSnapshot()` (JSON-safe). A new coordinator resumes
 * it with `createActor(machine.provide(...), { ...resumeOptions(payload), clock })`.
 */
export type PersistedMigration = Snapshot<unknown> & { value: StateValue; context: MigrationContext };

// ───────────────────────────── helpers ─────────────────────────────

/** progress samples kept for the ETA */
export const PROGRESS_SAMPLES = 10;

const MAX_TIMER_MS = 2_147_483_647;
const timerMs = (ms: number) => Math.min(Math.max(1, Math.trunc(ms)), MAX_TIMER_MS);

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === "string") return err;
  try {
    return JSON.stringify(err) ?? String(err);
  } catch {
    return String(err);
  }
}

/** Back-off after the `failures`-th failed try: min(retryDelayMs · 2^(failures-1), retryDelayMaxMs). */
export function migrationRetryDelay(
  ctx: Pick<MigrationContext, "retryDelayMs" | "retryDelayMaxMs">,
  failures: number,
): number {
  const exp = Math.min(Math.max(0, failures - 1), 40);
  return Math.min(Math.max(0, ctx.retryDelayMs) * 2 ** exp, Math.max(0, ctx.retryDelayMaxMs), MAX_TIMER_MS);
}

/** Problems with an input (empty = valid). The machine fails to start on an invalid input. */
export function migrationInputProblems(input: MigrationInput): string[] {
  const problems: string[] = [];
  const parsed = Transfer.safeParse(input.transfer);
  if (!parsed.success) {
    for (const i of parsed.error.issues.slice(0, 5)) problems.push(`transfer.${i.path.join(".")}: ${i.message}`);
  }
  const check = (name: string, v: unknown, min: number, optional = false) => {
    if (optional && v === undefined) return;
    if (typeof v !== "number" || !Number.isFinite(v) || v < min) problems.push(`${name} must be a number >= ${min}`);
  };
  check("catchUpLagMax", input.catchUpLagMax, 0);
  check("stepTimeoutMs", input.stepTimeoutMs, 1);
  check("drainMs", input.drainMs, 0);
  check("maxAttempts", input.maxAttempts, 1, true);
  check("retryDelayMs", input.retryDelayMs, 0, true);
  check("retryDelayMaxMs", input.retryDelayMaxMs, 0, true);
  check("stallTimeoutMs", input.stallTimeoutMs, 0, true);
  return problems;
}

/**
 * The `persist` action implementation: `migrationMachine.provide({ actions: { persist:
 * persistTo((id, payload, state) => kvQueue.put(id, payload)) } })`. The action runs while the
 * transition is being computed, so the snapshot is read in a microtask, once committed.
 */
export function persistTo(write: (id: string, payload: PersistedMigration, state: MigrationState) => void) {
  return ({ self }: { self: { getPersistedSnapshot(): Snapshot<unknown> } }, params: PersistParams): void => {
    queueMicrotask(() => write(params.id, self.getPersistedSnapshot() as PersistedMigration, params.state));
  };
}

/**
 * Actor options resuming a persisted migration. (xstate ignores `input` when a snapshot is
 * given, but its types demand one: the persisted context carries every input field.)
 */
export function resumeOptions(payload: PersistedMigration): { snapshot: PersistedMigration; input: MigrationInput } {
  return { snapshot: payload, input: payload.context };
}

const unboundEffect = (what: string) => (): never => {
  throw new Error(`migrationMachine: effect '${what}' was not provided`);
};

/**
 * A one-shot timer on the actor system's clock, as an invoked actor so that it restarts when a
 * persisted migration is restored (scheduled `after` events are not persisted).
 */
const timer = fromCallback<EventObject, TimerInput>(({ input, system, self, sendBack, receive }) => {
  const id = "migration.timer";
  receive((e) => {
    if (e.type === "migration.timer.fire") sendBack({ type: input.fire });
  });
  system.scheduler.schedule(self, self, { type: "migration.timer.fire" }, timerMs(input.delayMs), id);
  return () => system.scheduler.cancel(self, id);
});

const persistIn =
  (state: MigrationState) =>
  ({ context }: { context: MigrationContext }): PersistParams => ({ id: context.transfer.id, state });

const stepInput = ({ context }: { context: MigrationContext }): StepInput => ({
  transfer: context.transfer,
  attempt: context.attempts + 1,
});

// ───────────────────────────── machine ─────────────────────────────

export const migrationMachine = setup({
  types: {
    input: {} as MigrationInput,
    context: {} as MigrationContext,
    events: {} as MigrationInternalEvent,
  },
  actors: {
    prepare: fromPromise<PrepareOutput, StepInput>(async () => unboundEffect("prepare")()),
    watchTarget: fromCallback<EventObject, WatchTargetInput>(() => unboundEffect("watchTarget")()),
    cutover: fromPromise<CutoverOutput, StepInput>(async () => unboundEffect("cutover")()),
    release: fromPromise<void, StepInput>(async () => unboundEffect("release")()),
    rollback: fromPromise<RollbackOutput, StepInput>(async () => unboundEffect("rollback")()),
    timer,
  },
  actions: {
    persist: (_, _params: PersistParams) => {},
    reportError: (_, _params: ReportErrorParams) => {},
    /** count a failed try of the current step */
    failedTry: assign(({ context }, params: { step: MigrationStep; error: string }) => ({
      attempts: context.attempts + 1,
      lastError: `${params.step}: ${params.error}`,
    })),
  },
  guards: {
    validProgress: ({ event }) => {
      if (event.type !== "TARGET_PROGRESS") return false;
      const ok = [event.appliedSeq, event.lastSeq, event.bytes, event.atMs].every(
        (x) => typeof x === "number" && Number.isFinite(x),
      );
      return ok && event.appliedSeq >= 0;
    },
    caughtUp: ({ context }) => context.progress.targetSeq - context.progress.appliedSeq <= context.catchUpLagMax,
    advanced: ({ context }) => context.advanced,
    stallEnabled: ({ context }) => context.stallTimeoutMs > 0,
    canRetry: ({ context }) => context.attempts + 1 < context.maxAttempts,
    obsolete: ({ event }) => "error" in event && isObsoleteError(event.error),
    nothingToRelease: ({ context }) => context.transfer.from === null || context.sourceDown,
    resumeToCatchingUp: ({ context }) => context.pausedFrom === "catchingUp",
    alreadyCutOver: ({ event }) =>
      "output" in event &&
      typeof event.output === "object" &&
      event.output !== null &&
      (event.output as { alreadyCutOver?: unknown }).alreadyCutOver === true,
  },
}).createMachine({
  id: "migration",
  context: ({ input }) => {
    const problems = migrationInputProblems(input);
    if (problems.length > 0) throw new Error(`migrationMachine: invalid input: ${problems.join("; ")}`);
    return {
      transfer: input.transfer,
      catchUpLagMax: input.catchUpLagMax,
      stepTimeoutMs: input.stepTimeoutMs,
      drainMs: input.drainMs,
      maxAttempts: Math.trunc(input.maxAttempts ?? 3),
      retryDelayMs: input.retryDelayMs ?? 1000,
      retryDelayMaxMs: input.retryDelayMaxMs ?? 30_000,
      stallTimeoutMs: input.stallTimeoutMs ?? 0,
      progress: { appliedSeq: 0, targetSeq: 0, bytesCopied: 0, startedAtMs: 0, etaMs: null },
      samples: [],
      advanced: false,
      attempts: 0,
      pausedFrom: null,
      placementEpoch: null,
      targetDown: false,
      sourceDown: false,
    };
  },
  initial: "planned",
  states: {
    planned: {
      entry: { type: "persist", params: persistIn(MigrationState.Planned) },
      on: {
        START: {
          target: "running.preparing",
          actions: assign(({ context, event }) => ({
            progress: { ...context.progress, startedAtMs: Number.isFinite(event.atMs) ? event.atMs : 0 },
          })),
        },
        CANCEL: {
          target: "rollingBack",
          actions: assign({ reason: ({ event }) => `cancelled${event.reason ? `: ${event.reason}` : ""}` }),
        },
      },
    },

    running: {
      initial: "preparing",
      // Watches the target (and source) from preparing to the end of draining.
      invoke: {
        id: "watchTarget",
        src: "watchTarget",
        input: ({ context }) => ({ transfer: context.transfer }),
        onError: [
          {
            // committed: keep going blind (the repair path still watches the nodes)
            guard: stateIn("#migration.running.draining"),
            actions: assign({ lastError: ({ event }) => `watchTarget crashed: ${errorMessage(event.error)}` }),
          },
          {
            target: "rollingBack",
            actions: assign({ reason: ({ event }) => `watchTarget crashed: ${errorMessage(event.error)}` }),
          },
        ],
      },
      on: {
        TARGET_PROGRESS: {
          guard: "validProgress",
          actions: [
            assign(({ context, event }) => {
              const last = context.samples.at(-1);
              const sample: ProgressSample = {
                atMs: event.atMs,
                appliedSeq: event.appliedSeq,
                targetSeq: Math.max(event.lastSeq, event.appliedSeq),
              };
              // a target that restarted (appliedSeq went back), or a stamp older than the last
              // (another coordinator's clock, a reordered report), starts a new rate window: the
              // report itself is still the truth for the cutover decision
              const samples =
                last && (sample.appliedSeq < last.appliedSeq || sample.atMs < last.atMs)
                  ? [sample]
                  : [...context.samples, sample].slice(-PROGRESS_SAMPLES);
              return {
                samples,
                advanced: last === undefined || sample.appliedSeq > last.appliedSeq,
                progress: {
                  ...context.progress,
                  appliedSeq: sample.appliedSeq,
                  targetSeq: sample.targetSeq,
                  bytesCopied: Math.max(0, event.bytes),
                  etaMs: estimateEta(samples, context.catchUpLagMax),
                },
              };
            }),
            raise({ type: "migration.check" }),
          ],
        },
        SOURCE_DOWN: { actions: assign({ sourceDown: true }) },
        TARGET_DOWN: { actions: assign({ targetDown: true }) },
      },
      states: {
        preparing: {
          entry: { type: "persist", params: persistIn(MigrationState.Preparing) },
          on: {
            PAUSE: { target: "paused", actions: assign({ pausedFrom: "preparing" }) },
            CANCEL: {
              target: "#migration.rollingBack",
              actions: assign({ reason: ({ event }) => `cancelled${event.reason ? `: ${event.reason}` : ""}` }),
            },
            TARGET_DOWN: {
              target: "#migration.rollingBack",
              actions: assign(({ context }) => ({ targetDown: true, reason: `target ${context.transfer.to} down` })),
            },
          },
          initial: "trying",
          states: {
            trying: {
              invoke: [
                {
                  id: "prepare",
                  src: "prepare",
                  input: stepInput,
                  onDone: [
                    {
                      guard: "alreadyCutOver",
                      target: "#migration.running.draining",
                      actions: assign(({ event }) => ({
                        attempts: 0,
                        placementEpoch: event.output.epoch,
                        lastError: "prepare found the cutover done",
                      })),
                    },
                    {
                      target: "#migration.running.catchingUp",
                      actions: assign(({ event }) => ({ attempts: 0, placementEpoch: event.output.epoch })),
                    },
                  ],
                  onError: [
                    {
                      guard: "obsolete",
                      target: "#migration.rollingBack",
                      actions: assign(({ event }) => ({ reason: `prepare: ${errorMessage(event.error)}` })),
                    },
                    {
                      guard: "canRetry",
                      target: "backoff",
                      actions: [
                        {
                          type: "reportError",
                          params: ({ context, event }) => ({
                            step: "prepare",
                            error: errorMessage(event.error),
                            attempt: context.attempts + 1,
                          }),
                        },
                        { type: "failedTry", params: ({ event }) => ({ step: "prepare", error: errorMessage(event.error) }) },
                      ],
                    },
                    {
                      target: "#migration.rollingBack",
                      actions: assign(({ context, event }) => ({
                        attempts: context.attempts + 1,
                        reason: `prepare failed ${context.attempts + 1} times: ${errorMessage(event.error)}`,
                      })),
                    },
                  ],
                },
                { id: "stepTimer", src: "timer", input: ({ context }) => ({ delayMs: context.stepTimeoutMs, fire: "migration.stepTimeout" }) },
              ],
              on: {
                "migration.stepTimeout": [
                  {
                    guard: "canRetry",
                    target: "backoff",
                    actions: [
                      {
                        type: "reportError",
                        params: ({ context }) => ({ step: "prepare", error: "timed out", attempt: context.attempts + 1 }),
                      },
                      { type: "failedTry", params: { step: "prepare", error: "timed out" } },
                    ],
                  },
                  {
                    target: "#migration.rollingBack",
                    actions: assign(({ context }) => ({
                      attempts: context.attempts + 1,
                      reason: `prepare failed ${context.attempts + 1} times: timed out`,
                    })),
                  },
                ],
              },
            },
            backoff: {
              entry: { type: "persist", params: persistIn(MigrationState.Preparing) },
              invoke: {
                src: "timer",
                input: ({ context }) => ({ delayMs: migrationRetryDelay(context, context.attempts), fire: "migration.retry" }),
              },
              on: { "migration.retry": "trying" },
            },
          },
        },

        catchingUp: {
          entry: { type: "persist", params: persistIn(MigrationState.CatchingUp) },
          on: {
            PAUSE: { target: "paused", actions: assign({ pausedFrom: "catchingUp" }) },
            CANCEL: {
              target: "#migration.rollingBack",
              actions: assign({ reason: ({ event }) => `cancelled${event.reason ? `: ${event.reason}` : ""}` }),
            },
            TARGET_DOWN: {
              target: "#migration.rollingBack",
              actions: assign(({ context }) => ({ targetDown: true, reason: `target ${context.transfer.to} down` })),
            },
            "migration.check": { guard: "caughtUp", target: "cutover" },
          },
          initial: "choosing",
          states: {
            choosing: {
              always: [{ guard: "stallEnabled", target: "timed" }, { target: "untimed" }],
            },
            timed: {
              invoke: {
                src: "timer",
                input: ({ context }) => ({ delayMs: context.stallTimeoutMs, fire: "migration.stalled" }),
              },
              on: {
                // (the parent's cutover check must win over restarting the stall timer)
                "migration.check": [
                  { guard: "caughtUp", target: "#migration.running.cutover" },
                  { guard: "advanced", target: "timed", reenter: true },
                ],
                "migration.stalled": {
                  target: "#migration.rollingBack",
                  actions: assign(({ context }) => ({
                    reason: `target ${context.transfer.to} stalled at ${context.progress.appliedSeq} for ${context.stallTimeoutMs} ms`,
                  })),
                },
              },
            },
            untimed: {},
          },
        },

        paused: {
          entry: { type: "persist", params: persistIn(MigrationState.Paused) },
          on: {
            RESUME: [
              { guard: "resumeToCatchingUp", target: "catchingUp", actions: assign({ pausedFrom: null }) },
              { target: "preparing", actions: assign({ pausedFrom: null }) },
            ],
            CANCEL: {
              target: "#migration.rollingBack",
              actions: assign({ reason: ({ event }) => `cancelled${event.reason ? `: ${event.reason}` : ""}` }),
            },
            TARGET_DOWN: {
              target: "#migration.rollingBack",
              actions: assign(({ context }) => ({ targetDown: true, reason: `target ${context.transfer.to} down` })),
            },
          },
        },

        cutover: {
          entry: { type: "persist", params: persistIn(MigrationState.Cutover) },
          on: {
            // Not committed yet: roll back; the rollback finds out whether the CAS landed.
            TARGET_DOWN: {
              target: "#migration.rollingBack",
              actions: assign(({ context }) => ({ targetDown: true, reason: `target ${context.transfer.to} down` })),
            },
          },
          initial: "trying",
          states: {
            trying: {
              invoke: [
                {
                  id: "cutover",
                  src: "cutover",
                  input: stepInput,
                  onDone: {
                    target: "#migration.running.draining",
                    actions: assign(({ event }) => ({ attempts: 0, placementEpoch: event.output.epoch })),
                  },
                  onError: [
                    {
                      guard: "obsolete",
                      target: "#migration.rollingBack",
                      actions: assign(({ event }) => ({ reason: `cutover: ${errorMessage(event.error)}` })),
                    },
                    {
                      guard: "canRetry",
                      target: "backoff",
                      actions: [
                        {
                          type: "reportError",
                          params: ({ context, event }) => ({
                            step: "cutover",
                            error: errorMessage(event.error),
                            attempt: context.attempts + 1,
                          }),
                        },
                        { type: "failedTry", params: ({ event }) => ({ step: "cutover", error: errorMessage(event.error) }) },
                      ],
                    },
                    {
                      target: "#migration.rollingBack",
                      actions: assign(({ context, event }) => ({
                        attempts: context.attempts + 1,
                        reason: `cutover failed ${context.attempts + 1} times: ${errorMessage(event.error)}`,
                      })),
                    },
                  ],
                },
                { id: "stepTimer", src: "timer", input: ({ context }) => ({ delayMs: context.stepTimeoutMs, fire: "migration.stepTimeout" }) },
              ],
              on: {
                "migration.stepTimeout": [
                  {
                    guard: "canRetry",
                    target: "backoff",
                    actions: [
                      {
                        type: "reportError",
                        params: ({ context }) => ({ step: "cutover", error: "timed out", attempt: context.attempts + 1 }),
                      },
                      { type: "failedTry", params: { step: "cutover", error: "timed out" } },
                    ],
                  },
                  {
                    target: "#migration.rollingBack",
                    actions: assign(({ context }) => ({
                      attempts: context.attempts + 1,
                      reason: `cutover failed ${context.attempts + 1} times: timed out`,
                    })),
                  },
                ],
              },
            },
            backoff: {
              entry: { type: "persist", params: persistIn(MigrationState.Cutover) },
              invoke: {
                src: "timer",
                input: ({ context }) => ({ delayMs: migrationRetryDelay(context, context.attempts), fire: "migration.retry" }),
              },
              on: { "migration.retry": "trying" },
            },
          },
        },

        draining: {
          entry: { type: "persist", params: persistIn(MigrationState.Draining) },
          // committed: a dead target is the repair path's business, not a rollback
          on: { TARGET_DOWN: { actions: assign({ targetDown: true }) } },
          initial: "choosing",
          states: {
            choosing: {
              always: [{ guard: "nothingToRelease", target: "#migration.completed" }, { target: "waiting" }],
            },
            waiting: {
              invoke: { src: "timer", input: ({ context }) => ({ delayMs: context.drainMs, fire: "migration.drained" }) },
              on: {
                "migration.drained": "releasing",
                SOURCE_DOWN: { target: "#migration.completed", actions: assign({ sourceDown: true }) },
              },
            },
            releasing: {
              on: { SOURCE_DOWN: { target: "#migration.completed", actions: assign({ sourceDown: true }) } },
              initial: "trying",
              states: {
                trying: {
                  invoke: [
                    {
                      id: "release",
                      src: "release",
                      input: stepInput,
                      onDone: { target: "#migration.completed", actions: assign({ attempts: 0 }) },
                      onError: [
                        {
                          guard: "obsolete",
                          target: "#migration.failed",
                          actions: assign(({ event }) => ({ reason: `release: ${errorMessage(event.error)}` })),
                        },
                        {
                          guard: "canRetry",
                          target: "backoff",
                          actions: [
                            {
                              type: "reportError",
                              params: ({ context, event }) => ({
                                step: "release",
                                error: errorMessage(event.error),
                                attempt: context.attempts + 1,
                              }),
                            },
                            { type: "failedTry", params: ({ event }) => ({ step: "release", error: errorMessage(event.error) }) },
                          ],
                        },
                        {
                          target: "#migration.failed",
                          actions: assign(({ context, event }) => ({
                            attempts: context.attempts + 1,
                            reason: `release failed ${context.attempts + 1} times: ${errorMessage(event.error)}`,
                          })),
                        },
                      ],
                    },
                    { id: "stepTimer", src: "timer", input: ({ context }) => ({ delayMs: context.stepTimeoutMs, fire: "migration.stepTimeout" }) },
                  ],
                  on: {
                    "migration.stepTimeout": [
                      {
                        guard: "canRetry",
                        target: "backoff",
                        actions: [
                          {
                            type: "reportError",
                            params: ({ context }) => ({ step: "release", error: "timed out", attempt: context.attempts + 1 }),
                          },
                          { type: "failedTry", params: { step: "release", error: "timed out" } },
                        ],
                      },
                      {
                        target: "#migration.failed",
                        actions: assign(({ context }) => ({
                          attempts: context.attempts + 1,
                          reason: `release failed ${context.attempts + 1} times: timed out`,
                        })),
                      },
                    ],
                  },
                },
                backoff: {
                  entry: { type: "persist", params: persistIn(MigrationState.Draining) },
                  invoke: {
                    src: "timer",
                    input: ({ context }) => ({ delayMs: migrationRetryDelay(context, context.attempts), fire: "migration.retry" }),
                  },
                  on: { "migration.retry": "trying" },
                },
              },
            },
          },
        },
      },
    },

    rollingBack: {
      entry: [assign({ attempts: 0, pausedFrom: null }), { type: "persist", params: persistIn(MigrationState.RollingBack) }],
      initial: "trying",
      states: {
        trying: {
          invoke: [
            {
              id: "rollback",
              src: "rollback",
              input: stepInput,
              onDone: [
                {
                  guard: "alreadyCutOver",
                  target: "#migration.running.draining",
                  actions: assign(({ context, event }) => ({
                    attempts: 0,
                    placementEpoch: event.output.epoch,
                    lastError: `rollback (${context.reason ?? "?"}) found the cutover done: continuing`,
                    reason: undefined,
                  })),
                },
                {
                  target: "#migration.rolledBack",
                  actions: assign(({ event }) => ({ attempts: 0, placementEpoch: event.output.epoch })),
                },
              ],
              onError: [
                {
                  guard: "obsolete",
                  target: "#migration.failed",
                  actions: assign(({ context, event }) => ({
                    reason: `rollback (${context.reason ?? "?"}): ${errorMessage(event.error)}`,
                  })),
                },
                {
                  guard: "canRetry",
                  target: "backoff",
                  actions: [
                    {
                      type: "reportError",
                      params: ({ context, event }) => ({
                        step: "rollback",
                        error: errorMessage(event.error),
                        attempt: context.attempts + 1,
                      }),
                    },
                    { type: "failedTry", params: ({ event }) => ({ step: "rollback", error: errorMessage(event.error) }) },
                  ],
                },
                {
                  target: "#migration.failed",
                  actions: assign(({ context, event }) => ({
                    attempts: context.attempts + 1,
                    reason: `rollback (${context.reason ?? "?"}) failed ${context.attempts + 1} times: ${errorMessage(event.error)}`,
                  })),
                },
              ],
            },
            { id: "stepTimer", src: "timer", input: ({ context }) => ({ delayMs: context.stepTimeoutMs, fire: "migration.stepTimeout" }) },
          ],
          on: {
            "migration.stepTimeout": [
              {
                guard: "canRetry",
                target: "backoff",
                actions: [
                  {
                    type: "reportError",
                    params: ({ context }) => ({ step: "rollback", error: "timed out", attempt: context.attempts + 1 }),
                  },
                  { type: "failedTry", params: { step: "rollback", error: "timed out" } },
                ],
              },
              {
                target: "#migration.failed",
                actions: assign(({ context }) => ({
                  attempts: context.attempts + 1,
                  reason: `rollback (${context.reason ?? "?"}) failed ${context.attempts + 1} times: timed out`,
                })),
              },
            ],
          },
        },
        backoff: {
          entry: { type: "persist", params: persistIn(MigrationState.RollingBack) },
          invoke: {
            src: "timer",
            input: ({ context }) => ({ delayMs: migrationRetryDelay(context, context.attempts), fire: "migration.retry" }),
          },
          on: { "migration.retry": "trying" },
        },
      },
    },

    completed: {
      type: "final",
      entry: [assign({ pausedFrom: null }), { type: "persist", params: persistIn(MigrationState.Completed) }],
    },
    rolledBack: {
      type: "final",
      entry: { type: "persist", params: persistIn(MigrationState.RolledBack) },
    },
    failed: {
      type: "final",
      entry: { type: "persist", params: persistIn(MigrationState.Failed) },
    },
  },
});

export type MigrationMachine = typeof migrationMachine;
export type MigrationSnapshot = SnapshotFrom<MigrationMachine>;
export type MigrationActorRef = ActorRefFrom<MigrationMachine>;

/** Map a machine snapshot (nested states included) to the public state union. */
export function migrationStateOf(snapshot: MigrationSnapshot): MigrationState {
  if (snapshot.status === "error") return MigrationState.Failed;
  if (snapshot.matches("planned")) return MigrationState.Planned;
  if (snapshot.matches({ running: "preparing" })) return MigrationState.Preparing;
  if (snapshot.matches({ running: "catchingUp" })) return MigrationState.CatchingUp;
  if (snapshot.matches({ running: "paused" })) return MigrationState.Paused;
  if (snapshot.matches({ running: "cutover" })) return MigrationState.Cutover;
  if (snapshot.matches({ running: "draining" })) return MigrationState.Draining;
  if (snapshot.matches("rollingBack")) return MigrationState.RollingBack;
  if (snapshot.matches("completed")) return MigrationState.Completed;
  if (snapshot.matches("rolledBack")) return MigrationState.RolledBack;
  if (snapshot.matches("failed")) return MigrationState.Failed;
  throw new Error(`migrationStateOf: unmapped state ${JSON.stringify(snapshot.value)}`);
}
