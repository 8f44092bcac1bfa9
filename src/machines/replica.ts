/**
 * replicaMachine — the lifecycle of one shard replica (docs/architecture.md, "Replicas").
 *
 * The replica is a deterministic follower of its shard's JetStream log. This machine
 * only decides: every effect (restore a snapshot into a fresh index, follow the log,
 * save a snapshot, publish status) is a named actor/action declared in `setup()` with a
 * placeholder implementation, bound with `.provide()` by the node that assembles it.
 * No NATS, no worker, no clock access here: delays are named and computed from context,
 * and the actor system's clock (real or SimulatedClock) schedules them.
 *
 * ```
 *             ┌────────── onError ─────────────┐
 *  restoring ─┤                                ▼
 *      ▲      └─ onDone ─► active ─ FOLLOW_FAILED / follow error ─► failed
 *      │                   ║ readiness: replaying ─► serving ⇄ lagging
 *      │                   ║ snapshots: idle → saving → cooling → idle (ABSORBED: see replica-snapshots.ts)
 *      └──── after retryDelay (retries+1) ──────────────────────── failed
 *  STOP (any state) ─► stopped (final)
 * ```
 */
import {
  assign,
  fromCallback,
  fromPromise,
  raise,
  setup,
  type ActorRefFrom,
  type EventObject,
  type SnapshotFrom,
} from "xstate";
import { errorMessage } from "../runtime/errors.ts";
import { timerDelayMsMax, unboundEffect as unbound, unhandledState } from "./common.ts";
import { snapshotCostFactor, worthResaving, type Unabsorbed } from "./replica-snapshots.ts";
import type { ReplicaContext, ReplicaInternalEvent, ReplicaInput, RestoreInput, RestoreOutput, FollowInput, SnapshotInput, SnapshotOutput, NotifyStateParams, NotifyProgressParams, ReportFailureParams, ReportSnapshotErrorParams } from "./replica-types.ts";

export * from "./replica-types.ts";

// ───────────────────────────── states ─────────────────────────────

export const ReplicaState = {
  Restoring: "restoring",
  Replaying: "replaying",
  Serving: "serving",
  Lagging: "lagging",
  Failed: "failed",
  Stopped: "stopped",
} as const;
export type ReplicaState = (typeof ReplicaState)[keyof typeof ReplicaState];

const assertNever = (x: never): never => unhandledState("replica", x);

/** May this replica answer reads (searches, gets)? */
export function isReadable(state: ReplicaState): boolean {
  switch (state) {
    case ReplicaState.Serving:
    case ReplicaState.Lagging:
      return true;
    case ReplicaState.Restoring:
    case ReplicaState.Replaying:
    case ReplicaState.Failed:
    case ReplicaState.Stopped:
      return false;
    default:
      return assertNever(state);
  }
}

/** Is this replica following its log and applying entries? */
export function isApplying(state: ReplicaState): boolean {
  switch (state) {
    case ReplicaState.Replaying:
    case ReplicaState.Serving:
    case ReplicaState.Lagging:
      return true;
    case ReplicaState.Restoring:
    case ReplicaState.Failed:
    case ReplicaState.Stopped:
      return false;
    default:
      return assertNever(state);
  }
}

function graphOutgrewSnapshot(c: ReplicaContext): boolean {
  return c.absorbedSinceSave && worthResaving(Number.isFinite(c.snapshotUnabsorbed) ? c.snapshotUnabsorbed : 0, c.snapshotPoints);
}

/** The newest snapshot's record of what its graph left out (numbers from effects are checked). */
function unabsorbedOf(output: Unabsorbed): Pick<ReplicaContext, "snapshotUnabsorbed" | "snapshotPoints"> {
  const count = (n: number | undefined) => (n !== undefined && Number.isFinite(n) ? Math.max(0, Math.trunc(n)) : 0);
  return { snapshotUnabsorbed: count(output.unabsorbed), snapshotPoints: count(output.points) };
}

// ───────────────────────────── helpers ─────────────────────────────

export { errorMessage };

/** min(retryDelayMs * 2^retries, retryDelayMaxMs), safe against overflow. */
export function retryDelayFor(ctx: Pick<ReplicaContext, "retries" | "retryDelayMs" | "retryDelayMaxMs">): number {
  const exp = Math.min(Math.max(0, ctx.retries), 40);
  const base = Math.max(0, ctx.retryDelayMs);
  const cap = Math.max(0, ctx.retryDelayMaxMs);
  return Math.min(base * 2 ** exp, cap, timerDelayMsMax);
}

const lagOf = (c: ReplicaContext) => c.lastSeq - c.appliedSeq;

const unboundEffect = (what: string) => unbound("replica", what);

// ───────────────────────────── machine ─────────────────────────────

export const replicaMachine = setup({
  types: {
    input: {} as ReplicaInput,
    context: {} as ReplicaContext,
    events: {} as ReplicaInternalEvent,
  },
  actors: {
    restore: fromPromise<RestoreOutput, RestoreInput>(async () => unboundEffect("restore")()),
    follow: fromCallback<EventObject, FollowInput>(() => unboundEffect("follow")()),
    snapshot: fromPromise<SnapshotOutput, SnapshotInput>(async () => unboundEffect("snapshot")()),
  },
  actions: {
    setSnapshotInterval: assign(({ context, event }) => ({
      snapshotIntervalMs: event.type === "SNAPSHOT_INTERVAL" && Number.isFinite(event.intervalMs) ? event.intervalMs : context.snapshotIntervalMs,
    })),
    notifyState: (_, _params: NotifyStateParams) => {},
    notifyProgress: (_, _params: NotifyProgressParams) => {},
    reportFailure: (_, _params: ReportFailureParams) => {},
    reportSnapshotError: (_, _params: ReportSnapshotErrorParams) => {},
  },
  guards: {
    /** a PROGRESS whose appliedSeq is behind what we applied is stale (e.g. reordered) */
    isFreshProgress: ({ context, event }) =>
      event.type === "PROGRESS" && Number.isFinite(event.appliedSeq) && event.appliedSeq >= context.appliedSeq,
    caughtUp: ({ context }) => lagOf(context) <= context.lagThresholdEntries,
    behind: ({ context }) => lagOf(context) > context.lagThresholdEntries,
    snapshotDueByEntries: ({ context }) =>
      context.snapshotEveryEntries > 0 && context.appliedSeq - context.snapshotSeq >= context.snapshotEveryEntries,
    snapshotIntervalEnabled: ({ context }) => context.snapshotIntervalMs > 0,
    /** entries applied since the newest snapshot, or a graph that absorbed what it left out */
    snapshotOutdated: ({ context }) => context.appliedSeq > context.snapshotSeq || graphOutgrewSnapshot(context),
    noSnapshotCooldown: ({ context }) => context.lastSaveMs <= 0,
  },
  delays: {
    retryDelay: ({ context }) => retryDelayFor(context),
    snapshotInterval: ({ context }) => Math.min(Math.max(1, context.snapshotIntervalMs), timerDelayMsMax),
    snapshotCooldown: ({ context }) => Math.min(Math.max(0, snapshotCostFactor * context.lastSaveMs), timerDelayMsMax),
  },
}).createMachine({
  id: "replica",
  context: ({ input }) => ({
    ...input,
    appliedSeq: 0,
    lastSeq: 0,
    snapshotSeq: 0,
    snapshotUnabsorbed: 0,
    snapshotPoints: 0,
    absorbedSinceSave: false,
    lastSaveMs: 0,
    retries: 0,
  }),
  initial: "restoring",
  on: {
    STOP: ".stopped",
    ABSORBED: { actions: assign({ absorbedSinceSave: true }) },
    SNAPSHOT_INTERVAL: { actions: "setSnapshotInterval" },
  },
  states: {
    restoring: {
      entry: { type: "notifyState", params: { state: ReplicaState.Restoring } },
      invoke: {
        id: "restore",
        src: "restore",
        input: ({ context }) => ({ collection: context.collection, shard: context.shard }),
        onDone: {
          target: "active",
          actions: assign(({ context, event }) => {
            const seq = Math.max(0, Math.trunc(event.output.snapshotSeq));
            return { appliedSeq: seq, snapshotSeq: seq, lastSeq: Math.max(context.lastSeq, seq), ...unabsorbedOf(event.output), absorbedSinceSave: false };
          }),
        },
        onError: {
          target: "failed",
          actions: assign({ error: ({ event }) => `restore failed: ${errorMessage(event.error)}` }),
        },
      },
    },

    active: {
      type: "parallel",
      // Runs for the whole of `active`, across readiness/snapshot substates; xstate stops it
      // (runs the callback's cleanup) on leaving `active`, and drops its late sendBack events.
      invoke: {
        id: "follow",
        src: "follow",
        input: ({ context }) => ({
          collection: context.collection,
          shard: context.shard,
          fromSeq: context.appliedSeq + 1,
        }),
        onError: {
          target: "failed",
          actions: assign({ error: ({ event }) => `follow crashed: ${errorMessage(event.error)}` }),
        },
      },
      on: {
        PROGRESS: {
          guard: "isFreshProgress",
          actions: [
            assign(({ context, event }) => {
              const appliedSeq = Math.max(context.appliedSeq, event.appliedSeq);
              const lastSeq = Math.max(context.lastSeq, Number.isFinite(event.lastSeq) ? event.lastSeq : 0, appliedSeq);
              return { appliedSeq, lastSeq };
            }),
            {
              type: "notifyProgress",
              params: ({ context }) => ({ appliedSeq: context.appliedSeq, lastSeq: context.lastSeq }),
            },
            raise({ type: "replica.check" }),
          ],
        },
        FOLLOW_FAILED: {
          target: "failed",
          actions: assign({ error: ({ event }) => `follow failed: ${event.error}` }),
        },
      },
      states: {
        readiness: {
          initial: "replaying",
          states: {
            replaying: {
              entry: { type: "notifyState", params: { state: ReplicaState.Replaying } },
              // Only on a PROGRESS (via replica.check): lastSeq is unknown until follow reports it.
              on: { "replica.check": { guard: "caughtUp", target: "serving" } },
            },
            serving: {
              entry: [
                assign({ retries: 0, error: undefined }),
                { type: "notifyState", params: { state: ReplicaState.Serving } },
              ],
              on: { "replica.check": { guard: "behind", target: "lagging" } },
            },
            lagging: {
              entry: { type: "notifyState", params: { state: ReplicaState.Lagging } },
              on: { "replica.check": { guard: "caughtUp", target: "serving" } },
            },
          },
        },
        snapshots: {
          initial: "idle",
          states: {
            idle: {
              // Entry-count trigger: checked on each PROGRESS only (not eventless), so a failed
              // snapshot is retried on the next trigger rather than in a loop.
              on: {
                "replica.check": { guard: "snapshotDueByEntries", target: "saving" },
                // Choose again: a waiting timer restarts with the new interval (or stops, for 0).
                SNAPSHOT_INTERVAL: { actions: "setSnapshotInterval", target: ".choosing" },
              },
              initial: "choosing",
              states: {
                choosing: {
                  always: [{ guard: "snapshotIntervalEnabled", target: "timed" }, { target: "untimed" }],
                },
                timed: {
                  after: {
                    snapshotInterval: [
                      { guard: "snapshotOutdated", target: "#replica.active.snapshots.saving" },
                      { target: "timed", reenter: true },
                    ],
                  },
                },
                untimed: {},
              },
            },
            saving: {
              entry: assign({ absorbedSinceSave: false }),
              invoke: {
                id: "snapshot",
                src: "snapshot",
                input: ({ context }) => ({ collection: context.collection, shard: context.shard }),
                onDone: {
                  target: "cooling",
                  actions: assign(({ context, event }) => ({
                    snapshotSeq: Number.isFinite(event.output.seq) ? Math.max(context.snapshotSeq, event.output.seq) : context.snapshotSeq,
                    lastSaveMs: Number.isFinite(event.output.durationMs) ? Math.max(0, event.output.durationMs!) : 0,
                    ...unabsorbedOf(event.output),
                  })),
                },
                onError: {
                  target: "idle",
                  actions: {
                    type: "reportSnapshotError",
                    params: ({ event }) => ({ error: errorMessage(event.error) }),
                  },
                },
              },
            },
            // No trigger starts a save while cooling (snapshotCostFactor × the last save's time).
            cooling: {
              always: { guard: "noSnapshotCooldown", target: "idle" },
              after: { snapshotCooldown: "idle" },
            },
          },
        },
      },
    },

    failed: {
      entry: [
        { type: "notifyState", params: { state: ReplicaState.Failed } },
        {
          type: "reportFailure",
          params: ({ context }) => ({ error: context.error ?? "unknown error", retries: context.retries }),
        },
      ],
      after: {
        retryDelay: {
          target: "restoring",
          actions: assign({ retries: ({ context }) => context.retries + 1 }),
        },
      },
    },

    stopped: {
      type: "final",
      entry: { type: "notifyState", params: { state: ReplicaState.Stopped } },
    },
  },
});

export type ReplicaMachine = typeof replicaMachine;
export type ReplicaSnapshot = SnapshotFrom<ReplicaMachine>;
export type ReplicaActorRef = ActorRefFrom<ReplicaMachine>;

/** Map a machine snapshot (nested states included) to the public state union. */
export function replicaStateOf(snapshot: ReplicaSnapshot): ReplicaState {
  if (snapshot.status === "stopped" || snapshot.status === "done") return ReplicaState.Stopped;
  if (snapshot.status === "error") return ReplicaState.Failed;
  if (snapshot.matches("restoring")) return ReplicaState.Restoring;
  if (snapshot.matches("failed")) return ReplicaState.Failed;
  if (snapshot.matches("stopped")) return ReplicaState.Stopped;
  if (snapshot.matches({ active: { readiness: "serving" } })) return ReplicaState.Serving;
  if (snapshot.matches({ active: { readiness: "lagging" } })) return ReplicaState.Lagging;
  if (snapshot.matches({ active: { readiness: "replaying" } })) return ReplicaState.Replaying;
  throw new Error(`replicaStateOf: unmapped state ${JSON.stringify(snapshot.value)}`);
}

/** Replication lag in entries as last reported by the follower. */
export function replicaLag(snapshot: ReplicaSnapshot): number {
  return Math.max(0, snapshot.context.lastSeq - snapshot.context.appliedSeq);
}
