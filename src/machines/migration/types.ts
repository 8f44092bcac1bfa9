/**
 * The migration machine's vocabulary: the public state union with its exhaustive predicates,
 * the input / context / event types and the contracts of its effects (see machine.ts for the
 * behaviour). Split out so that the coordinator side can use the types without the machine.
 */
import type { Snapshot, StateValue } from "xstate";
import { unhandledState } from "../common.ts";
import type { ProgressSample, Transfer, TransferProgress } from "../../runtime/transfer.ts";

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

const assertNever = (x: never): never => unhandledState("migration", x);

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
  attemptsMax?: number;
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
  attemptsMax: number;
  retryDelayMs: number;
  retryDelayMaxMs: number;
  stallTimeoutMs: number;
  progress: TransferProgress;
  /** recent progress samples (at most progressSamplesMax) for the ETA */
  samples: ProgressSample[];
  /** the last TARGET_PROGRESS advanced appliedSeq or bytes copied (resets the stall timer) */
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
  /** what `bytes` reads once the copy under way is in (0: no copy started) */
  copyGoalBytes: number;
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

export type TimerFire = "migration.stepTimeout" | "migration.retry" | "migration.drained" | "migration.stalled";
interface TimerEvent {
  type: TimerFire;
}
interface CheckEvent {
  type: "migration.check";
}
export type MigrationInternalEvent = MigrationEvent | TimerEvent | CheckEvent;

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
