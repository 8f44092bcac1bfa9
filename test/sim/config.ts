/**
 * The seeded simulation's fixed configuration (timings, collection) and its option/result
 * types, shared by the simulator's modules and the test.
 */

export const COLLECTION = "docs";

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

export interface SimOptions {
  /** simulated ms of the fault phase (workload + faults) */
  faultPhaseMs?: number;
  /** max simulated ms after healing for the cluster to converge */
  convergeWithinMs?: number;
  /** deliberately broken components, to prove the checkers catch them */
  broken?: { leaseIgnoresRevisions?: boolean; replicaSkipsEntry?: boolean };
  traceSize?: number;
}

export interface SimResult {
  seed: number;
  ok: boolean;
  invariant?: string;
  message?: string;
  trace: string[];
  stats: { nodes: number; shards: number; rf: number; events: number; simMs: number; terms: number; migrations: number; appends: number };
}
