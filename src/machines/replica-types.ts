/** replicaMachine's input, context, events and effect shapes (replica.ts re-exports them). */
import type { ReplicaState } from "./replica.ts";
import type { Unabsorbed } from "./replica-snapshots.ts";

export interface ReplicaInput {
  collection: string;
  shard: number;
  /** serving while lastSeq - appliedSeq <= this; lagging above it */
  lagThresholdEntries: number;
  /** save a snapshot once this many entries were applied since the last one; <= 0 disables */
  snapshotEveryEntries: number;
  /** save a snapshot this often if anything was applied since the last one (or the graph absorbed many points it left out); <= 0 disables */
  snapshotIntervalMs: number;
  /** first retry delay after a failure; doubles per consecutive failure */
  retryDelayMs: number;
  /** cap of the retry delay */
  retryDelayMaxMs: number;
}

export interface ReplicaContext extends ReplicaInput {
  /** highest log sequence applied to the index */
  appliedSeq: number;
  /** last known sequence of the shard stream */
  lastSeq: number;
  /** sequence covered by the newest snapshot (loaded or saved) */
  snapshotSeq: number;
  /** points of the newest snapshot its graph did not hold (absorbed again by whoever loads it), and all its points */
  snapshotUnabsorbed: number;
  snapshotPoints: number;
  /** an ABSORBED came after the newest save started: the graph now holds what that save left out */
  absorbedSinceSave: boolean;
  /** how long the last successful save took (0 before the first) */
  lastSaveMs: number;
  /** consecutive failures since the replica last reached serving */
  retries: number;
  /** message of the last failure (kept until serving) */
  error?: string;
}

/** Sent by the `follow` actor after each applied batch and when idle (to report lastSeq). */
export interface ProgressEvent {
  type: "PROGRESS";
  appliedSeq: number;
  lastSeq: number;
}
/** Sent by the `follow` actor when following can't continue (the replica restarts from a snapshot). */
export interface FollowFailedEvent {
  type: "FOLLOW_FAILED";
  error: string;
}
export interface StopEvent {
  type: "STOP";
}
/** Sent when the index's graph has absorbed every point it holds (its pending rows reached 0). */
export interface AbsorbedEvent {
  type: "ABSORBED";
}
/** The snapshot interval changed (the cluster's settings, for a collection without its own): the next timed save waits the new one. */
export interface SnapshotIntervalEvent {
  type: "SNAPSHOT_INTERVAL";
  intervalMs: number;
}
/** Internal: raised after context absorbed a PROGRESS so the regions re-evaluate. */
export interface CheckEvent {
  type: "replica.check";
}
export type ReplicaEvent = ProgressEvent | FollowFailedEvent | StopEvent | AbsorbedEvent | SnapshotIntervalEvent;
export type ReplicaInternalEvent = ReplicaEvent | CheckEvent;

export interface RestoreInput {
  collection: string;
  shard: number;
}
export interface RestoreOutput extends Unabsorbed {
  /** sequence covered by the loaded snapshot; 0 if none (fresh empty index) */
  snapshotSeq: number;
}
export interface FollowInput {
  collection: string;
  shard: number;
  /** first log sequence to apply (appliedSeq + 1) */
  fromSeq: number;
}
export type FollowSentEvent = ProgressEvent | FollowFailedEvent;
export interface SnapshotInput {
  collection: string;
  shard: number;
}
export interface SnapshotOutput extends Unabsorbed {
  /** sequence actually covered by the saved snapshot */
  seq: number;
  /** how long the save took: the next one waits `snapshotCostFactor` times this (see `cooling`) */
  durationMs?: number;
}

export interface NotifyStateParams {
  state: ReplicaState;
}
export interface NotifyProgressParams {
  appliedSeq: number;
  lastSeq: number;
}
export interface ReportFailureParams {
  error: string;
  retries: number;
}
export interface ReportSnapshotErrorParams {
  error: string;
}
