/**
 * The coordinator machine's `setup()`: every effect it names (actors, actions, guards, delays)
 * with the placeholders the node binds through `.provide()`, and the pure helpers they use
 * (input validation, lease validity). machine.ts and leader.ts build on `coordinatorSetup`.
 */
import { fromCallback, fromPromise, setup, type EventObject } from "xstate";
import { clampTimerMs as timer, unboundEffect as unbound } from "../common.ts";
import type {
  AcquireInput,
  AcquireOutput,
  CoordinatorContext,
  CoordinatorInput,
  CoordinatorInternalEvent,
  NotifyStateParams,
  ReconcileInput,
  ReleaseInput,
  RenewedEvent,
  RenewInput,
  RenewOutput,
  ReportErrorParams,
} from "./types.ts";

// ───────────────────────────── helpers ─────────────────────────────

/** Problems with an input (empty = valid). The machine fails to start on an invalid input. */
export function coordinatorInputProblems(input: CoordinatorInput): string[] {
  const problems: string[] = [];
  const pos = (name: string, v: unknown) => {
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) problems.push(`${name} must be a positive number`);
  };
  if (typeof input.nodeId !== "string" || input.nodeId.length === 0) problems.push("nodeId must be a non-empty string");
  pos("leaseTtlMs", input.leaseTtlMs);
  pos("renewIntervalMs", input.renewIntervalMs);
  pos("acquireIntervalMs", input.acquireIntervalMs);
  if (input.requestTimeoutMs !== undefined) pos("requestTimeoutMs", input.requestTimeoutMs);
  if (problems.length > 0) return problems;
  if (input.renewIntervalMs * 2 >= input.leaseTtlMs) problems.push("renewIntervalMs must be < leaseTtlMs / 2");
  if (input.requestTimeoutMs !== undefined && input.requestTimeoutMs >= input.renewIntervalMs) {
    problems.push("requestTimeoutMs must be < renewIntervalMs");
  }
  return problems;
}

/** Time after a successful acquire/renew during which we may act as leader. */
export function leaseValidityMs(ctx: Pick<CoordinatorContext, "leaseTtlMs" | "renewIntervalMs">): number {
  return ctx.leaseTtlMs - ctx.renewIntervalMs;
}

const unboundEffect = (what: string) => unbound("coordinator", what);

/** raised by a successful renew: restarts the leader's validity timer */
export const renewedEvent: RenewedEvent = { type: "coordinator.renewed" };

// ───────────────────────────── setup ─────────────────────────────

export const coordinatorSetup = setup({
  types: {
    input: {} as CoordinatorInput,
    context: {} as CoordinatorContext,
    events: {} as CoordinatorInternalEvent,
  },
  actors: {
    acquire: fromPromise<AcquireOutput, AcquireInput>(async () => unboundEffect("acquire")()),
    renew: fromPromise<RenewOutput, RenewInput>(async () => unboundEffect("renew")()),
    release: fromPromise<void, ReleaseInput>(async () => unboundEffect("release")()),
    reconcile: fromCallback<EventObject, ReconcileInput>(() => unboundEffect("reconcile")()),
  },
  actions: {
    notifyState: (_, _params: NotifyStateParams) => {},
    reportError: (_, _params: ReportErrorParams) => {},
  },
  guards: {
    holdsLease: ({ context }) => context.revision !== null,
    /** a lease written after ours, by another node (or deleted): we no longer lead */
    supersedesUs: ({ context, event }) =>
      event.type === "LEASE_OBSERVED" &&
      event.holder !== context.nodeId &&
      context.revision !== null &&
      event.revision > context.revision,
    /** a newer write of our own lease (a renew whose reply was lost): adopt its revision */
    ownNewerLease: ({ context, event }) =>
      event.type === "LEASE_OBSERVED" &&
      event.holder === context.nodeId &&
      context.revision !== null &&
      event.revision > context.revision,
    freshObservation: ({ context, event }) =>
      event.type === "LEASE_OBSERVED" && Number.isFinite(event.revision) && event.revision >= context.observedRevision,
    leaseVacated: ({ context, event }) =>
      event.type === "LEASE_OBSERVED" && event.holder === null && event.revision >= context.observedRevision,
  },
  delays: {
    acquireInterval: ({ context }) => timer(context.acquireIntervalMs),
    renewInterval: ({ context }) => timer(context.renewIntervalMs),
    requestTimeout: ({ context }) => timer(context.requestTimeoutMs),
    leaseValidity: ({ context }) => timer(leaseValidityMs(context)),
  },
});
