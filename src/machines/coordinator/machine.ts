/**
 * coordinatorMachine — leader election through a KV lease (docs/architecture.md, "Control plane").
 *
 * Every node runs one coordinator actor. Exactly one of them (at most one at any instant,
 * see "Safety" below) is the leader and runs the cluster control loop (`reconcile`:
 * placement, dead-node detection, migrations, rebalancing). Leadership is the key
 * `coordinator` of KV bucket `jade_leases`, whose bucket-level `ttl` (max age) expires an
 * entry that is not rewritten in time. (nats-server 2.9 silently ignores per-key TTLs, so
 * the bucket TTL is the only expiry we can rely on.)
 *
 * This machine only decides. Every effect is a named actor/action declared in `setup()`
 * with a placeholder that throws, bound with `.provide()` by the node:
 *
 * | effect      | kind        | input                      | output / contract                                   |
 * | ----------- | ----------- | -------------------------- | --------------------------------------------------- |
 * | `acquire`   | fromPromise | `{nodeId}`                 | `kv.create(key, nodeId)` → `{revision}`; key held → `{heldBy}` (value of the live entry); reject on any other failure |
 * | `renew`     | fromPromise | `{nodeId, revision}`       | `kv.update(key, nodeId, revision)` → `{revision}` (the new one); reject with `LeaseError("deposed")` when the CAS fails (wrong last sequence / key gone); any other rejection counts as "unavailable" |
 * | `release`   | fromPromise | `{revision}`               | `kv.delete(key, {previousSeq: revision})` — best effort, CAS so it never deletes a successor's lease |
 * | `reconcile` | fromCallback| `{nodeId, epoch}`          | the leader's control loop; runs exactly while leader; may `sendBack({type: "FENCED"})`; its cleanup runs on step-down |
 *
 * Events the node sends: `LEASE_OBSERVED {holder, revision}` from a watch on the lease key
 * (`holder: null` for a delete/purge marker), and `STOP` on shutdown.
 *
 * ```
 *   follower: acquiring ─{heldBy}/error/timeout─► waiting ─ after acquireInterval ─► acquiring
 *       ▲         │ {revision}                      (LEASE_OBSERVED holder=null ─► acquiring)
 *       │         ▼
 *       │     leader (parallel)  invoke reconcile {nodeId, epoch}
 *       │       renewal:  healthy(idle ─after renewInterval─► renewing) ─unavailable/timeout─► suspect
 *       │                 suspect(waiting ─after renewInterval─► renewing) ─ok─► healthy
 *       │       validity: valid ─ after leaseValidity (reset by every successful renew) ─► follower
 *       ├──── renew rejected "deposed" / LEASE_OBSERVED newer lease of another node / validity expired
 *       └──── resigning (release, best effort) ◄── FENCED / reconcile crashed
 *   STOP (any state) ─► stopping (release if we hold the lease) ─► stopped (final)
 * ```
 *
 * ## Epoch and revision
 * - `epoch` = the lease revision returned by the `acquire` that made us leader. It is fixed for
 *   the whole term and identifies it (logs, placement records: "written by term N"). Terms
 *   are totally ordered: a later acquisition always gets a higher KV revision.
 * - `revision` = the latest lease revision we wrote (acquire, then each renew). It is what
 *   the next renew CASes against.
 * - Fencing of placement writes does NOT use the lease: every placement write is a CAS on
 *   the *placement entry's* own KV revision (read → plan → `update(key, value, readRevision)`),
 *   so a deposed leader's write fails and `reconcile` answers with `FENCED`.
 *
 * ## Safety (why at most one node believes it leads)
 * The lease lives until `writeTime + leaseTtlMs` on the server. Every request is bounded by
 * `requestTimeoutMs` (< renewIntervalMs): a request that does not answer in time is abandoned
 * (its AbortSignal fires) and counted as failed. So a successful acquire/renew was written at
 * or after `receipt - requestTimeoutMs`, and the lease is certainly alive until
 * `receipt - requestTimeoutMs + leaseTtlMs`. The machine's `validity` timer steps down at
 * `receipt + leaseTtlMs - renewIntervalMs`, i.e. `renewIntervalMs - requestTimeoutMs` before
 * the earliest possible expiry (margin for clock drift). Only the holder deletes the lease
 * (CAS), so nobody else can create it while it is alive.
 *
 * This is the rule "retry a transient renew failure while `time since last successful renew
 * + renewIntervalMs < leaseTtlMs`", implemented with a timer instead of reading a clock:
 * failures keep us leader (state `suspect`) and renewal is retried every renewIntervalMs
 * until the validity timer fires. A renew rejected as `deposed` steps down at once.
 *
 * Step-down always exits `leader` first, which stops `reconcile` (runs its cleanup) before any
 * state of `follower` is entered; events `reconcile` sends afterwards are dropped.
 *
 * Known limits: an `acquire` that times out but succeeded on the server leaves a lease held
 * by us that we do not know the revision of; we treat it as held (`heldBy === nodeId`) and
 * wait for it to expire. A `LEASE_OBSERVED` of a newer lease held by *our own* nodeId while
 * we lead (a renew whose reply was lost) is adopted as our revision, so the next renew does
 * not fail needlessly: the node must give each process a unique `nodeId` value.
 *
 * Layout: types.ts (states, predicates, types, LeaseError), setup.ts (effects, guards,
 * delays, helpers), leader.ts (the `leader` state), this file (the rest of the chart).
 */
import { assign, type ActorRefFrom, type SnapshotFrom } from "xstate";
import { errorMessage } from "../../runtime/errors.ts";
import { leaderState } from "./leader.ts";
import { coordinatorInputProblems, coordinatorSetup } from "./setup.ts";
import { CoordinatorState } from "./types.ts";

export const coordinatorMachine = coordinatorSetup.createMachine({
  id: "coordinator",
  context: ({ input }) => {
    const problems = coordinatorInputProblems(input);
    if (problems.length > 0) throw new Error(`coordinatorMachine: invalid input: ${problems.join("; ")}`);
    return {
      nodeId: input.nodeId,
      leaseTtlMs: input.leaseTtlMs,
      renewIntervalMs: input.renewIntervalMs,
      acquireIntervalMs: input.acquireIntervalMs,
      requestTimeoutMs: input.requestTimeoutMs ?? input.renewIntervalMs / 2,
      leader: null,
      epoch: null,
      revision: null,
      observedRevision: 0,
      renewFailures: 0,
      terms: 0,
    };
  },
  initial: "follower",
  on: {
    STOP: ".stopping",
  },
  states: {
    follower: {
      entry: [
        assign(({ context }) => ({
          epoch: null,
          revision: null,
          renewFailures: 0,
          leader: context.leader === context.nodeId ? null : context.leader,
        })),
        {
          type: "notifyState",
          params: ({ context }) => ({ state: CoordinatorState.Follower, epoch: null, leader: context.leader }),
        },
      ],
      on: {
        LEASE_OBSERVED: {
          guard: "freshObservation",
          actions: assign(({ event }) => ({ leader: event.holder, observedRevision: event.revision })),
        },
      },
      initial: "acquiring",
      states: {
        acquiring: {
          invoke: {
            id: "acquire",
            src: "acquire",
            input: ({ context }) => ({ nodeId: context.nodeId }),
            onDone: [
              {
                guard: ({ event }) => "revision" in event.output && Number.isFinite(event.output.revision),
                target: "#coordinator.leader",
                actions: assign(({ context, event }) => {
                  const revision = (event.output as { revision: number }).revision;
                  return {
                    epoch: revision,
                    revision,
                    leader: context.nodeId,
                    observedRevision: Math.max(context.observedRevision, revision),
                    renewFailures: 0,
                    terms: context.terms + 1,
                    lastError: undefined,
                  };
                }),
              },
              {
                target: "waiting",
                actions: assign(({ context, event }) => ({
                  leader: "heldBy" in event.output ? event.output.heldBy : context.leader,
                })),
              },
            ],
            onError: {
              target: "waiting",
              actions: [
                assign({ lastError: ({ event }) => `acquire failed: ${errorMessage(event.error)}` }),
                { type: "reportError", params: ({ event }) => ({ during: "acquire", error: errorMessage(event.error) }) },
              ],
            },
          },
          after: {
            requestTimeout: {
              target: "waiting",
              actions: [
                assign({ lastError: "acquire timed out" }),
                { type: "reportError", params: { during: "acquire", error: "timed out" } },
              ],
            },
          },
        },
        waiting: {
          after: { acquireInterval: "acquiring" },
          on: {
            // A deleted lease (clean release by the leader) is announced by the watch: try at once.
            // (Expiry through the bucket's max age is silent: the acquire interval covers it.)
            LEASE_OBSERVED: [
              {
                guard: "leaseVacated",
                target: "acquiring",
                actions: assign(({ event }) => ({ leader: null, observedRevision: event.revision })),
              },
              {
                guard: "freshObservation",
                actions: assign(({ event }) => ({ leader: event.holder, observedRevision: event.revision })),
              },
            ],
          },
        },
      },
    },

    leader: leaderState,

    resigning: {
      entry: {
        type: "notifyState",
        params: ({ context }) => ({ state: CoordinatorState.Resigning, epoch: context.epoch, leader: null }),
      },
      invoke: {
        id: "release",
        src: "release",
        input: ({ context }) => ({ revision: context.revision ?? 0 }),
        onDone: { target: "follower", actions: assign({ leader: null }) },
        onError: {
          target: "follower",
          actions: { type: "reportError", params: ({ event }) => ({ during: "release", error: errorMessage(event.error) }) },
        },
      },
      after: { requestTimeout: "follower" },
      on: {
        // we are not acting as leader any more; an observation only updates our view
        LEASE_OBSERVED: {
          guard: "freshObservation",
          actions: assign(({ event }) => ({ observedRevision: event.revision })),
        },
      },
    },

    stopping: {
      entry: {
        type: "notifyState",
        params: ({ context }) => ({ state: CoordinatorState.Stopping, epoch: context.epoch, leader: context.leader }),
      },
      on: { STOP: {} },
      initial: "choosing",
      states: {
        choosing: {
          always: [{ guard: "holdsLease", target: "releasing" }, { target: "#coordinator.stopped" }],
        },
        releasing: {
          invoke: {
            id: "release",
            src: "release",
            input: ({ context }) => ({ revision: context.revision ?? 0 }),
            onDone: "#coordinator.stopped",
            onError: {
              target: "#coordinator.stopped",
              actions: { type: "reportError", params: ({ event }) => ({ during: "release", error: errorMessage(event.error) }) },
            },
          },
          after: { requestTimeout: "#coordinator.stopped" },
        },
      },
    },

    stopped: {
      type: "final",
      entry: [
        assign({ epoch: null, revision: null }),
        { type: "notifyState", params: { state: CoordinatorState.Stopped, epoch: null, leader: null } },
      ],
    },
  },
});

export type CoordinatorMachine = typeof coordinatorMachine;
export type CoordinatorSnapshot = SnapshotFrom<CoordinatorMachine>;
export type CoordinatorActorRef = ActorRefFrom<CoordinatorMachine>;

/** Map a machine snapshot (nested states included) to the public state union. */
export function coordinatorStateOf(snapshot: CoordinatorSnapshot): CoordinatorState {
  if (snapshot.status === "stopped" || snapshot.status === "done" || snapshot.status === "error") {
    return CoordinatorState.Stopped;
  }
  if (snapshot.matches("follower")) return CoordinatorState.Follower;
  if (snapshot.matches({ leader: { renewal: "suspect" } })) return CoordinatorState.Suspect;
  if (snapshot.matches("leader")) return CoordinatorState.Leader;
  if (snapshot.matches("resigning")) return CoordinatorState.Resigning;
  if (snapshot.matches("stopping")) return CoordinatorState.Stopping;
  if (snapshot.matches("stopped")) return CoordinatorState.Stopped;
  throw new Error(`coordinatorStateOf: unmapped state ${JSON.stringify(snapshot.value)}`);
}
