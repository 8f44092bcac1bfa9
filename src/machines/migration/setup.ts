/**
 * The migration machine's `setup()`: every effect it names (actors, actions, guards) with the
 * placeholders the coordinator binds through `.provide()`, the pure helpers around it (retry
 * back-off, input validation, persistence glue) and the clock-driven `timer` actor. machine.ts
 * and steps.ts build state configs on top of `migrationSetup`.
 */
import { assign, fromCallback, fromPromise, setup, type EventObject, type Snapshot } from "xstate";
import { isObsoleteError, Transfer } from "../../runtime/transfer.ts";
import { clampTimerMs, retryDelay, unboundEffect as unbound } from "../common.ts";
import type {
  CutoverOutput,
  MigrationContext,
  MigrationInput,
  MigrationInternalEvent,
  MigrationState,
  MigrationStep,
  PersistedMigration,
  PersistParams,
  PrepareOutput,
  ReportErrorParams,
  RollbackOutput,
  StepInput,
  TimerInput,
  WatchTargetInput,
} from "./types.ts";

// ───────────────────────────── helpers ─────────────────────────────

/** progress samples kept for the ETA */
export const progressSamplesMax = 10;

/** Back-off after the `failures`-th failed try (machines/common.ts). */
export const migrationRetryDelay: (ctx: Pick<MigrationContext, "retryDelayMs" | "retryDelayMaxMs">, failures: number) => number = retryDelay;

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
  check("attemptsMax", input.attemptsMax, 1, true);
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

const unboundEffect = (what: string) => unbound("migration", what);

/**
 * A one-shot timer on the actor system's clock, as an invoked actor so that it restarts when a
 * persisted migration is restored (scheduled `after` events are not persisted).
 */
const timer = fromCallback<EventObject, TimerInput>(({ input, system, self, sendBack, receive }) => {
  const id = "migration.timer";
  receive((e) => {
    if (e.type === "migration.timer.fire") sendBack({ type: input.fire });
  });
  system.scheduler.schedule(self, self, { type: "migration.timer.fire" }, clampTimerMs(input.delayMs), id);
  return () => system.scheduler.cancel(self, id);
});

/** params of the `persist` action on entering a state that reports as `state` */
export const persistIn =
  (state: MigrationState) =>
  ({ context }: { context: MigrationContext }): PersistParams => ({ id: context.transfer.id, state });

/** input of a step actor: the transfer and the 1-based try number */
export const stepInput = ({ context }: { context: MigrationContext }): StepInput => ({
  transfer: context.transfer,
  attempt: context.attempts + 1,
});

// ───────────────────────────── setup ─────────────────────────────

export const migrationSetup = setup({
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
      const ok = [event.appliedSeq, event.lastSeq, event.bytes, event.copyGoalBytes, event.atMs].every(
        (x) => typeof x === "number" && Number.isFinite(x),
      );
      return ok && event.appliedSeq >= 0;
    },
    caughtUp: ({ context }) => context.progress.targetSeq - context.progress.appliedSeq <= context.catchUpLagMax,
    advanced: ({ context }) => context.advanced,
    stallEnabled: ({ context }) => context.stallTimeoutMs > 0,
    canRetry: ({ context }) => context.attempts + 1 < context.attemptsMax,
    obsolete: ({ event }) => "error" in event && isObsoleteError(event.error),
    nothingToRelease: ({ context }) => context.transfer.from === null || context.sourceDown,
    resumeToCatchingUp: ({ context }) => context.pausedFrom === "catchingUp",
    alreadyCutOver: ({ event }) =>
      "output" in event &&
      typeof event.output === "object" &&
      event.output !== null &&
      (event.output as { alreadyCutOver?: unknown }).alreadyCutOver === true,
  },
});
