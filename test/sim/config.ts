/**
 * The seeded simulation's fixed configuration (timings, collection) and its option/result
 * types, shared by the simulator's modules and the test.
 */

export const COLLECTION = "docs";
/** the collection's incarnation (a transaction's records, locks and message ids carry it) */
export const UID = "u1";

export const TIMING = {
  leaseTtlMs: 3000,
  renewIntervalMs: 600,
  acquireIntervalMs: 400,
  requestTimeoutMs: 300,
  heartbeatMs: 400,
  nodeDeadAfterMs: 1600,
  reconcileEveryMs: 500,
  placementPollMs: 400,
} as const;

/** The transactional workload and recovery, on the simulation's time scale. */
export const TXN = {
  /** transactions per seed: a handful, to keep a seed cheap */
  perSeedMin: 1,
  perSeedMax: 3,
  /** each one's timeout (locks to decision), drawn in this range */
  timeoutMsMin: 600,
  timeoutMsMax: 1500,
  /**
   * Recovery leaves a transaction to its gateway this long past its deadline. Longer than a
   * prepare can land late: its append is retried until 1 s past the deadline at most
   * (publishDurable's deadline, `max(1000, deadline − now)`), then travels up to
   * DELIVERY_DELAY_MAX_MS; recovery must not look for it before it can no longer land.
   */
  recoveryGraceMs: 1500,
  /** how long recovery waits for a replica, and retries an append (recovery.ts: replicaAskMs, 5 s, scaled like the other timings) */
  recoveryAskMs: 1000,
} as const;

export interface SimOptions {
  /** simulated ms of the fault phase (workload + faults) */
  faultPhaseMs?: number;
  /** max simulated ms after healing for the cluster to converge */
  convergeWithinMs?: number;
  /** the transactional workload and recovery (default on; off replays a seed as it ran before them) */
  transactions?: boolean;
  /** deliberately broken components, to prove the checkers catch them */
  broken?: {
    leaseIgnoresRevisions?: boolean;
    replicaSkipsEntry?: boolean;
    /** recovery appends commit markers whatever the record decided */
    txnRecoveryCommits?: boolean;
    /** a gateway appends its commit markers before its decision */
    txnMarkersBeforeDecision?: boolean;
  };
  traceSize?: number;
}

export interface SimResult {
  seed: number;
  ok: boolean;
  invariant?: string;
  message?: string;
  trace: string[];
  stats: { nodes: number; shards: number; rf: number; events: number; simMs: number; terms: number; migrations: number; appends: number; txns: number; committed: number };
}
