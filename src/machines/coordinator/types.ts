/**
 * The coordinator machine's vocabulary: the public state union with its exhaustive
 * predicates, the input / context / event types, the contracts of its effects and the lease
 * error classification (see machine.ts for the behaviour).
 */
import { unhandledState } from "../common.ts";

// ───────────────────────────── states ─────────────────────────────

export const CoordinatorState = {
  /** not the leader; trying to acquire the lease every acquireIntervalMs */
  Follower: "follower",
  /** the leader; renewals succeed */
  Leader: "leader",
  /** still the leader (the lease is certainly alive) but the last renew(s) failed transiently */
  Suspect: "suspect",
  /** stepping down voluntarily (FENCED, reconcile crashed): releasing the lease, then follower */
  Resigning: "resigning",
  /** shutting down: releasing the lease if we hold it */
  Stopping: "stopping",
  Stopped: "stopped",
} as const;
export type CoordinatorState = (typeof CoordinatorState)[keyof typeof CoordinatorState];

const assertNever = (x: never): never => unhandledState("coordinator", x);

/** Does this node lead the cluster (is `reconcile` running)? */
export function isLeader(state: CoordinatorState): boolean {
  switch (state) {
    case CoordinatorState.Leader:
    case CoordinatorState.Suspect:
      return true;
    case CoordinatorState.Follower:
    case CoordinatorState.Resigning:
    case CoordinatorState.Stopping:
    case CoordinatorState.Stopped:
      return false;
    default:
      return assertNever(state);
  }
}

/** Is the coordinator still taking part in elections (not shutting down or shut down)? */
export function isRunning(state: CoordinatorState): boolean {
  switch (state) {
    case CoordinatorState.Follower:
    case CoordinatorState.Leader:
    case CoordinatorState.Suspect:
    case CoordinatorState.Resigning:
      return true;
    case CoordinatorState.Stopping:
    case CoordinatorState.Stopped:
      return false;
    default:
      return assertNever(state);
  }
}

// ───────────────────────────── types ─────────────────────────────

export interface CoordinatorInput {
  /** this node's id; written as the lease value. Must be unique per process. */
  nodeId: string;
  /** the `jade_leases` bucket's `ttl` (max age) */
  leaseTtlMs: number;
  /** renew this often while leader; must be < leaseTtlMs / 2 (recommended < leaseTtlMs / 3) */
  renewIntervalMs: number;
  /** a follower tries to acquire this often */
  acquireIntervalMs: number;
  /** a KV request not answered within this is abandoned and counted as failed;
   *  must be < renewIntervalMs; default renewIntervalMs / 2 */
  requestTimeoutMs?: number;
}

export interface CoordinatorContext {
  nodeId: string;
  leaseTtlMs: number;
  renewIntervalMs: number;
  acquireIntervalMs: number;
  requestTimeoutMs: number;
  /** who we believe holds the lease (ourselves while leader); null = unknown / nobody */
  leader: string | null;
  /** lease revision of the acquire that started our current term; null unless leader */
  epoch: number | null;
  /** latest lease revision we wrote (CAS base of the next renew); null unless we hold it */
  revision: number | null;
  /** highest lease revision seen (our writes and LEASE_OBSERVED); stale observations are ignored */
  observedRevision: number;
  /** consecutive failed renewals in the current term */
  renewFailures: number;
  /** terms won by this node */
  terms: number;
  /** why we last stepped down / last failure; informational */
  lastError?: string;
}

/** From the node's watch on the lease key. `holder: null` = the key was deleted or purged. */
export interface LeaseObservedEvent {
  type: "LEASE_OBSERVED";
  holder: string | null;
  revision: number;
}
/** From `reconcile`: a CAS with our epoch failed, another leader exists. */
export interface FencedEvent {
  type: "FENCED";
  reason?: string;
}
export interface StopEvent {
  type: "STOP";
}
/** Internal: a renew succeeded (restarts the validity timer). */
export interface RenewedEvent {
  type: "coordinator.renewed";
}
export type CoordinatorEvent = LeaseObservedEvent | FencedEvent | StopEvent;
export type CoordinatorInternalEvent = CoordinatorEvent | RenewedEvent;

export interface AcquireInput {
  nodeId: string;
}
export type AcquireOutput = { revision: number } | { heldBy: string };
export interface RenewInput {
  nodeId: string;
  /** the revision we last wrote: CAS base */
  revision: number;
}
export interface RenewOutput {
  /** the new lease revision */
  revision: number;
}
export interface ReleaseInput {
  revision: number;
}
export interface ReconcileInput {
  nodeId: string;
  /** lease revision of the acquisition that started this term */
  epoch: number;
}
export type ReconcileSentEvent = FencedEvent;

export interface NotifyStateParams {
  state: CoordinatorState;
  epoch: number | null;
  leader: string | null;
}
export type CoordinatorEffect = "acquire" | "renew" | "release" | "reconcile" | "lease";
export interface ReportErrorParams {
  during: CoordinatorEffect;
  error: string;
}

/** How a rejected lease operation is classified. */
export type LeaseErrorCode = "deposed" | "unavailable";

/** What `renew` (and optionally the others) should reject with; `deposed` = the CAS failed. */
export class LeaseError extends Error {
  readonly code: LeaseErrorCode;
  constructor(code: LeaseErrorCode, message?: string) {
    super(message ?? (code === "deposed" ? "lease revision moved: deposed" : "lease store unavailable"));
    this.name = "LeaseError";
    this.code = code;
  }
}

/** `deposed` if the rejection carries `code: "deposed"`, else `unavailable` (transient). */
export function leaseErrorCode(err: unknown): LeaseErrorCode {
  if (typeof err === "object" && err !== null && (err as { code?: unknown }).code === "deposed") return "deposed";
  return "unavailable";
}
