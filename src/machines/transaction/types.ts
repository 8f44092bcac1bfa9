/**
 * The transaction machine's vocabulary: its input, context, step inputs and outputs, and the
 * public states with their predicates (decision 013).
 */

/** What one transaction touches, fixed before it starts. */
export interface TxnPlan {
  id: string;
  collection: string;
  /** The collection's incarnation: a transaction never lands in a collection dropped and made again. */
  uid: string;
  /** The shards it writes, ascending. */
  shards: number[];
}

export interface TransactionInput {
  txn: TxnPlan;
  /** From the start until the decision: past it the transaction aborts. */
  timeoutMs: number;
  /** Tries of each step after the decision (markers, release) before it is left to recovery. */
  attemptsMax?: number;
  retryDelayMs?: number;
  retryDelayMaxMs?: number;
}

export const Outcome = { Committed: "committed", Aborted: "aborted" } as const;
export type Outcome = (typeof Outcome)[keyof typeof Outcome];

/** One shard's vote: a pure function of its log up to the prepare, the same on every replica. */
export interface Vote {
  shard: number;
  yes: boolean;
  /** Why not (a condition that failed, an id another transaction holds). */
  reason?: string;
}

export interface TransactionContext {
  txn: TxnPlan;
  timeoutMs: number;
  attemptsMax: number;
  retryDelayMs: number;
  retryDelayMaxMs: number;
  /** Shard → sequence of its `txn.prepare` entry. */
  prepareSeqs: Record<number, number>;
  /** Shard → sequence of its marker. */
  markerSeqs: Record<number, number>;
  /** Whether the record was written (then recovery knows it, and an abort needs markers). */
  recorded: boolean;
  outcome: Outcome | null;
  reason: string | null;
  /** Failed tries of the current step. */
  attempts: number;
  /** The markers or the release ran out of tries: recovery finishes from the record. */
  handedOver: boolean;
}

export interface StepInput {
  txn: TxnPlan;
}
export interface LocksInput extends StepInput {
  /** How long the locks may be waited for: the rest of the transaction's time. */
  waitMs: number;
}
export interface VotesInput extends StepInput {
  prepareSeqs: Record<number, number>;
}
export interface DecideInput extends StepInput {
  outcome: Outcome;
  prepareSeqs: Record<number, number>;
  /** Why it aborts (a vote's no, a step given up), for the record. */
  reason?: string;
}
export interface MarkersInput extends StepInput {
  outcome: Outcome;
}
export interface ReleaseInput extends StepInput {
  outcome: Outcome;
}

export interface PrepareOutput {
  prepareSeqs: Record<number, number>;
}
export interface VotesOutput {
  votes: Vote[];
}
/** What the record says after the CAS: another decider (recovery) may have aborted first. */
export interface DecideOutput {
  outcome: Outcome;
}
export interface MarkersOutput {
  markerSeqs: Record<number, number>;
}

export interface ReportErrorParams {
  step: TransactionStep;
  error: string;
  attempt: number;
}

export type TransactionStep = "acquireLocks" | "writeRecord" | "prepare" | "collectVotes" | "decide" | "appendMarkers" | "release";

/** The states a transaction reports (`jade txns`, status). */
export const TransactionState = {
  AcquiringLocks: "acquiringLocks",
  Recording: "recording",
  Preparing: "preparing",
  Voting: "voting",
  Deciding: "deciding",
  Committing: "committing",
  Aborting: "aborting",
  Releasing: "releasing",
  Done: "done",
} as const;
export type TransactionState = (typeof TransactionState)[keyof typeof TransactionState];

/** Before the commit point: the transaction may still abort. */
export function isUndecided(state: TransactionState): boolean {
  switch (state) {
    case TransactionState.AcquiringLocks:
    case TransactionState.Recording:
    case TransactionState.Preparing:
    case TransactionState.Voting:
    case TransactionState.Deciding:
      return true;
    case TransactionState.Committing:
    case TransactionState.Aborting:
    case TransactionState.Releasing:
    case TransactionState.Done:
      return false;
  }
}

/** The end of a transaction whose every `decide` try failed: its record alone knows the outcome. */
export const InDoubt = "inDoubt" as const;

/** What the machine answers with when it is done. */
export interface TransactionOutput {
  outcome: Outcome | typeof InDoubt;
  reason: string | null;
  prepareSeqs: Record<number, number>;
  markerSeqs: Record<number, number>;
  handedOver: boolean;
}
