/**
 * The coordinator's `leader` state: `reconcile` runs exactly while we lead, the `renewal`
 * region keeps the lease (healthy ⇄ suspect) and the `validity` region steps down when no
 * renew has succeeded in time. Split from machine.ts because it is the largest state and the
 * one that carries the safety argument; the renew step, the same in `healthy` and `suspect`
 * but for its targets, is built once by `renewing`.
 */
import { assign, raise } from "xstate";
import { errorMessage } from "../../runtime/errors.ts";
import { coordinatorSetup, renewedEvent } from "./setup.ts";
import { CoordinatorState, leaseErrorCode } from "./types.ts";

/**
 * The renew step: invoke `renew` (bounded by `requestTimeout`). Success raises the renewed
 * event and goes to `renewed`; a `deposed` rejection steps down at once; any other failure or
 * the timeout counts a failed renewal and goes to `failed`.
 */
function renewing(opts: { renewed: string; failed: string; clearsLastError: boolean }) {
  const { renewed, failed, clearsLastError } = opts;
  return coordinatorSetup.createStateConfig({
    invoke: {
      id: "renew",
      src: "renew",
      input: ({ context }) => ({ nodeId: context.nodeId, revision: context.revision ?? 0 }),
      onDone: {
        target: renewed,
        actions: [
          assign(({ context, event }) => ({
            revision: event.output.revision,
            observedRevision: Math.max(context.observedRevision, event.output.revision),
            ...(clearsLastError ? { lastError: undefined } : {}),
          })),
          raise(renewedEvent),
        ],
      },
      onError: [
        {
          guard: ({ event }) => leaseErrorCode(event.error) === "deposed",
          target: "#coordinator.follower",
          actions: [
            assign({ lastError: ({ event }) => `deposed: ${errorMessage(event.error)}` }),
            { type: "reportError", params: ({ event }) => ({ during: "renew", error: errorMessage(event.error) }) },
          ],
        },
        {
          target: failed,
          actions: [
            assign(({ context, event }) => ({
              renewFailures: context.renewFailures + 1,
              lastError: `renew failed: ${errorMessage(event.error)}`,
            })),
            { type: "reportError", params: ({ event }) => ({ during: "renew", error: errorMessage(event.error) }) },
          ],
        },
      ],
    },
    after: {
      requestTimeout: {
        target: failed,
        actions: [
          assign(({ context }) => ({ renewFailures: context.renewFailures + 1, lastError: "renew timed out" })),
          { type: "reportError", params: { during: "renew", error: "timed out" } },
        ],
      },
    },
  });
}

export const leaderState = coordinatorSetup.createStateConfig({
  type: "parallel",
  // Runs for exactly the time we lead; stopped (cleanup run) on leaving `leader`, before
  // any follower/resigning/stopping state is entered.
  invoke: {
    id: "reconcile",
    src: "reconcile",
    input: ({ context }) => ({ nodeId: context.nodeId, epoch: context.epoch ?? 0 }),
    onError: {
      target: "resigning",
      actions: [
        assign({ lastError: ({ event }) => `reconcile crashed: ${errorMessage(event.error)}` }),
        { type: "reportError", params: ({ event }) => ({ during: "reconcile", error: errorMessage(event.error) }) },
      ],
    },
  },
  on: {
    FENCED: {
      target: "resigning",
      actions: assign({ lastError: ({ event }) => `fenced${event.reason ? `: ${event.reason}` : ""}` }),
    },
    LEASE_OBSERVED: [
      {
        guard: "supersedesUs",
        target: "follower",
        actions: [
          assign(({ event }) => ({
            leader: event.holder,
            observedRevision: event.revision,
            lastError: `deposed: lease revision ${event.revision} held by ${event.holder ?? "nobody"}`,
          })),
          { type: "reportError", params: { during: "lease", error: "superseded by a newer lease" } },
        ],
      },
      {
        guard: "ownNewerLease",
        actions: assign(({ event }) => ({ revision: event.revision, observedRevision: event.revision })),
      },
      {
        guard: "freshObservation",
        actions: assign(({ event }) => ({ observedRevision: event.revision })),
      },
    ],
  },
  states: {
    renewal: {
      initial: "healthy",
      states: {
        healthy: {
          entry: [
            assign({ renewFailures: 0 }),
            {
              type: "notifyState",
              params: ({ context }) => ({ state: CoordinatorState.Leader, epoch: context.epoch, leader: context.nodeId }),
            },
          ],
          initial: "idle",
          states: {
            idle: {
              after: { renewInterval: "renewing" },
            },
            renewing: renewing({ renewed: "idle", failed: "#coordinator.leader.renewal.suspect", clearsLastError: false }),
          },
        },
        suspect: {
          entry: {
            type: "notifyState",
            params: ({ context }) => ({ state: CoordinatorState.Suspect, epoch: context.epoch, leader: context.nodeId }),
          },
          initial: "waiting",
          states: {
            waiting: {
              after: { renewInterval: "renewing" },
            },
            renewing: renewing({ renewed: "#coordinator.leader.renewal.healthy", failed: "waiting", clearsLastError: true }),
          },
        },
      },
    },
    validity: {
      initial: "valid",
      states: {
        valid: {
          on: { "coordinator.renewed": { target: "valid", reenter: true } },
          after: {
            // The lease may expire soon after this: stop acting as leader now.
            leaseValidity: {
              target: "#coordinator.follower",
              actions: [
                assign({ lastError: "lease validity expired without a successful renew" }),
                { type: "reportError", params: { during: "renew", error: "lease validity expired" } },
              ],
            },
          },
        },
      },
    },
  },
});
