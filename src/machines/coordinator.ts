/**
 * coordinatorMachine — leader election through a KV lease (ARCHITECTURE §2, §3, §6).
 *
 * Every node runs one coordinator actor. Exactly one of them (at most one at any instant,
 * see "Safety" below) is the leader and runs the cluster control loop (`reconcile`:
 * placement, dead-node detection, migrations, log compaction). Leadership is the key
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
 * This is the brief's "retry a transient renew failure while `time since last successful renew
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

function assertNever(x: never): never {
  throw new Error(`unhandled coordinator state: ${String(x)}`);
}

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
interface RenewedEvent {
  type: "coordinator.renewed";
}
export type CoordinatorEvent = LeaseObservedEvent | FencedEvent | StopEvent;
type CoordinatorInternalEvent = CoordinatorEvent | RenewedEvent;

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

// ───────────────────────────── helpers ─────────────────────────────

const MAX_TIMER_MS = 2_147_483_647;
const timer = (ms: number) => Math.min(Math.max(1, Math.trunc(ms)), MAX_TIMER_MS);

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === "string") return err;
  try {
    return JSON.stringify(err) ?? String(err);
  } catch {
    return String(err);
  }
}

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

const unboundEffect = (what: string) => (): never => {
  throw new Error(`coordinatorMachine: effect '${what}' was not provided`);
};

const renewedEvent: RenewedEvent = { type: "coordinator.renewed" };

// ───────────────────────────── machine ─────────────────────────────

export const coordinatorMachine = setup({
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
}).createMachine({
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

    leader: {
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
                renewing: {
                  invoke: {
                    id: "renew",
                    src: "renew",
                    input: ({ context }) => ({ nodeId: context.nodeId, revision: context.revision ?? 0 }),
                    onDone: {
                      target: "idle",
                      actions: [
                        assign(({ context, event }) => ({
                          revision: event.output.revision,
                          observedRevision: Math.max(context.observedRevision, event.output.revision),
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
                        target: "#coordinator.leader.renewal.suspect",
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
                      target: "#coordinator.leader.renewal.suspect",
                      actions: [
                        assign(({ context }) => ({ renewFailures: context.renewFailures + 1, lastError: "renew timed out" })),
                        { type: "reportError", params: { during: "renew", error: "timed out" } },
                      ],
                    },
                  },
                },
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
                renewing: {
                  invoke: {
                    id: "renew",
                    src: "renew",
                    input: ({ context }) => ({ nodeId: context.nodeId, revision: context.revision ?? 0 }),
                    onDone: {
                      target: "#coordinator.leader.renewal.healthy",
                      actions: [
                        assign(({ context, event }) => ({
                          revision: event.output.revision,
                          observedRevision: Math.max(context.observedRevision, event.output.revision),
                          lastError: undefined,
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
                        target: "waiting",
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
                      target: "waiting",
                      actions: [
                        assign(({ context }) => ({ renewFailures: context.renewFailures + 1, lastError: "renew timed out" })),
                        { type: "reportError", params: { during: "renew", error: "timed out" } },
                      ],
                    },
                  },
                },
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
    },

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
