/**
 * migrationMachine — one shard transfer, from plan to completion (docs/architecture.md, "Migrations").
 *
 * Zero downtime: the source keeps serving until the cutover; the target joins first as a
 * *learner* (runs the replica, restores the newest snapshot and follows the log, is never
 * read), and the cutover swaps it in by one CAS on the placement (epoch + 1). The source then
 * drains in-flight reads for `drainMs` and is released.
 *
 * This machine only decides. Every effect is a named actor/action declared in `setup()` with a
 * placeholder that throws, bound with `.provide()` by the coordinator:
 *
 * | effect        | kind         | input                  | output / contract |
 * | ------------- | ------------ | ---------------------- | ----------------- |
 * | `prepare`     | fromPromise  | `{transfer, attempt}`  | CAS placement with `applyPrepare` (target added to the shard's `learners`) → `{epoch, alreadyCutOver}`; `alreadyCutOver: true` when `transferPhase` is `cutOver` (goal already holds: a stale snapshot was restored). Reject with `TransferError` (code `obsolete`) if the transfer cannot apply (collection gone / uid changed / invalid phase): not retried. |
 * | `watchTarget` | fromCallback | `{transfer}`           | sendBack `TARGET_PROGRESS {appliedSeq, lastSeq, bytes, atMs}` from the target's heartbeats (its replica of this shard; `atMs` = Date.now() at receipt), `TARGET_DOWN` when the coordinator declares the target dead, `SOURCE_DOWN` likewise for the source. Runs from `preparing` to `completed`; cleanup on exit. |
 * | `cutover`     | fromPromise  | `{transfer, attempt}`  | CAS placement with `applyCutover` (learner → replica, source removed, epoch + 1) → `{epoch}`; already cut over → succeed with the current epoch; target not a learner → reject `TransferError`. |
 * | `release`     | fromPromise  | `{transfer, attempt}`  | tell `transfer.from` to close its replica (it left the placement at the cutover and kept serving in-flight reads). Idempotent: already closed = success. Not called when `from` is null or the source was reported down. |
 * | `rollback`    | fromPromise  | `{transfer, attempt}`  | CAS placement with `applyRollback` (learner removed) → `{epoch, alreadyCutOver}`; `alreadyCutOver: true` when `transferPhase` is `cutOver`: the rollback did nothing and the migration continues to `draining`. Nothing to remove = success. |
 * | `persist`     | action       | params `{id, state}`   | called on entering every state (and each retry back-off): write `self.getPersistedSnapshot()` to KV `jade_migrations` key `id`. Use `persistTo(write)`: an action runs mid-transition, it reads the snapshot once the transition has committed. Writes must be applied in order (latest wins). |
 * | `reportError` | action       | `{step, error, attempt}` | log a failed attempt of a step. |
 *
 * Every step is idempotent and every placement write is a CAS that re-reads and re-applies
 * the (pure) transform on conflict: a step abandoned on timeout, pause or TARGET_DOWN may
 * still land later, and a restored machine re-runs the step that was in flight.
 *
 * ```
 *  planned ─START─► preparing ─done─► catchingUp ─TARGET_PROGRESS lag ≤ catchUpLagMax─► cutover ─done─► draining ─► completed
 *     │                │  ▲              │  ▲                                          │               after drainMs: release
 *     │                ├─PAUSE─► paused ◄┘  │                                          │               (skipped: from null / SOURCE_DOWN)
 *     │                │   └──RESUME (to where it was)                                 │
 *     │   CANCEL / TARGET_DOWN / retries exhausted / obsolete / stalled                │ TARGET_DOWN / exhausted / obsolete
 *     └────────────────┴───────────────────────────────► rollingBack ◄─────────────────┘
 *                                                          │  ├─done──────────────► rolledBack (final)
 *                                                          │  ├─alreadyCutOver────► draining
 *                                                          │  └─exhausted/obsolete► failed (final)
 *  release exhausted / obsolete ─► failed (final)
 * ```
 * `prepare`, `cutover`, `release`, `rollback`: a rejection or no answer within `stepTimeoutMs`
 * is retried after `retryDelayMs · 2^(attempt-1)` (capped at `retryDelayMaxMs`), up to
 * `attemptsMax` tries in all; an `obsolete` rejection is not retried.
 *
 * ## Decisions
 * - **Rollback only before the cutover is committed.** Until the `cutover` step has succeeded the
 *   placement still serves from the source, so removing the learner restores the exact
 *   previous placement. After it, the target is a full replica: a target failure is an ordinary
 *   replica failure handled by the repair path (the coordinator re-places dead nodes' replicas
 *   from snapshot + log), and the migration still completes. TARGET_DOWN while the cutover CAS
 *   is in flight rolls back: the `rollback` effect reads the placement and reports
 *   `alreadyCutOver` if the CAS landed, and the migration then continues instead.
 * - **`failed` needs an operator**: reached when the release (after the cutover: the
 *   placement is right, the source may still hold its replica until it reconciles) or the
 *   rollback (before: a learner may be left in the placement) runs out of attempts.
 * - **Timers are invoked actors**, not `after` delays: a persisted snapshot does not carry the
 *   actor system's scheduled events, but it does carry its children, which restart on restore.
 *   So a restored migration re-arms its timers (from their full duration: a restored drain
 *   waits `drainMs` again, a restored step gets a fresh `stepTimeoutMs`). The timer uses the
 *   actor system's scheduler, i.e. its clock (SimulatedClock in tests).
 * - **No cutover decision outside `catchingUp`**, and only on a TARGET_PROGRESS received there:
 *   a paused migration never cuts over, and a resumed one cuts over on the next heartbeat.
 * - **SOURCE_DOWN** is recorded; before the cutover it changes nothing (the target catches up
 *   from the log, not from the source); after it, the drain and the release are skipped.
 * - Time: the machine reads no clock. Progress samples carry the watcher's `atMs` stamp (wall
 *   clock, so samples stay comparable when another coordinator resumes the migration).
 *
 * Layout: types.ts (states, predicates, types), setup.ts (effects, guards, helpers), steps.ts
 * (the retried-step and abort builders), this file (the state chart).
 */
import { assign, raise, stateIn, type ActorRefFrom, type SnapshotFrom } from "xstate";
import { estimateEta, type ProgressSample } from "../../runtime/transfer.ts";
import { errorMessage } from "../../runtime/errors.ts";
import { migrationInputProblems, migrationSetup, persistIn, progressSamplesMax } from "./setup.ts";
import { abortBeforeCutover, retryingStep } from "./steps.ts";
import { MigrationState } from "./types.ts";

export const migrationMachine = migrationSetup.createMachine({
  id: "migration",
  context: ({ input }) => {
    const problems = migrationInputProblems(input);
    if (problems.length > 0) throw new Error(`migrationMachine: invalid input: ${problems.join("; ")}`);
    return {
      transfer: input.transfer,
      catchUpLagMax: input.catchUpLagMax,
      stepTimeoutMs: input.stepTimeoutMs,
      drainMs: input.drainMs,
      attemptsMax: Math.trunc(input.attemptsMax ?? 3),
      retryDelayMs: input.retryDelayMs ?? 1000,
      retryDelayMaxMs: input.retryDelayMaxMs ?? 30_000,
      stallTimeoutMs: input.stallTimeoutMs ?? 0,
      progress: { appliedSeq: 0, targetSeq: 0, bytesCopied: 0, copyGoalBytes: 0, startedAtMs: 0, etaMs: null },
      samples: [],
      advanced: false,
      attempts: 0,
      pausedFrom: null,
      placementEpoch: null,
      targetDown: false,
      sourceDown: false,
    };
  },
  initial: "planned",
  states: {
    planned: {
      entry: { type: "persist", params: persistIn(MigrationState.Planned) },
      on: {
        START: {
          target: "running.preparing",
          actions: assign(({ context, event }) => ({
            progress: { ...context.progress, startedAtMs: Number.isFinite(event.atMs) ? event.atMs : 0 },
          })),
        },
        CANCEL: abortBeforeCutover.CANCEL,
      },
    },

    running: {
      initial: "preparing",
      // Watches the target (and source) from preparing to the end of draining.
      invoke: {
        id: "watchTarget",
        src: "watchTarget",
        input: ({ context }) => ({ transfer: context.transfer }),
        onError: [
          {
            // committed: keep going blind (the repair path still watches the nodes)
            guard: stateIn("#migration.running.draining"),
            actions: assign({ lastError: ({ event }) => `watchTarget crashed: ${errorMessage(event.error)}` }),
          },
          {
            target: "rollingBack",
            actions: assign({ reason: ({ event }) => `watchTarget crashed: ${errorMessage(event.error)}` }),
          },
        ],
      },
      on: {
        TARGET_PROGRESS: {
          guard: "validProgress",
          actions: [
            assign(({ context, event }) => {
              const last = context.samples.at(-1);
              const bytes = Math.max(0, event.bytes);
              const copyGoalBytes = Math.max(0, event.copyGoalBytes);
              const sample: ProgressSample = {
                atMs: event.atMs,
                appliedSeq: event.appliedSeq,
                targetSeq: Math.max(event.lastSeq, event.appliedSeq),
                bytes,
                copyGoalBytes,
              };
              // a target that restarted (appliedSeq went back), or a stamp older than the last
              // (another coordinator's clock, a reordered report), starts a new rate window: the
              // report itself is still the truth for the cutover decision
              const samples =
                last && (sample.appliedSeq < last.appliedSeq || sample.atMs < last.atMs)
                  ? [sample]
                  : [...context.samples, sample].slice(-progressSamplesMax);
              return {
                samples,
                // bytes count too: a target copying a big shard applies nothing until it has loaded it
                advanced: last === undefined || sample.appliedSeq > last.appliedSeq || event.bytes > context.progress.bytesCopied,
                progress: {
                  ...context.progress,
                  appliedSeq: sample.appliedSeq,
                  targetSeq: sample.targetSeq,
                  bytesCopied: bytes,
                  copyGoalBytes,
                  etaMs: estimateEta(samples, context.catchUpLagMax),
                },
              };
            }),
            raise({ type: "migration.check" }),
          ],
        },
        SOURCE_DOWN: { actions: assign({ sourceDown: true }) },
        TARGET_DOWN: { actions: assign({ targetDown: true }) },
      },
      states: {
        preparing: {
          entry: { type: "persist", params: persistIn(MigrationState.Preparing) },
          on: {
            PAUSE: { target: "paused", actions: assign({ pausedFrom: "preparing" }) },
            ...abortBeforeCutover,
          },
          ...retryingStep({
            step: "prepare",
            reportsAs: MigrationState.Preparing,
            giveUp: "#migration.rollingBack",
            onDone: [
              {
                guard: "alreadyCutOver",
                target: "#migration.running.draining",
                actions: assign(({ event }) => ({
                  attempts: 0,
                  placementEpoch: event.output.epoch,
                  lastError: "prepare found the cutover done",
                })),
              },
              {
                target: "#migration.running.catchingUp",
                actions: assign(({ event }) => ({ attempts: 0, placementEpoch: event.output.epoch })),
              },
            ],
          }),
        },

        catchingUp: {
          entry: { type: "persist", params: persistIn(MigrationState.CatchingUp) },
          on: {
            PAUSE: { target: "paused", actions: assign({ pausedFrom: "catchingUp" }) },
            ...abortBeforeCutover,
            "migration.check": { guard: "caughtUp", target: "cutover" },
          },
          initial: "choosing",
          states: {
            choosing: {
              always: [{ guard: "stallEnabled", target: "timed" }, { target: "untimed" }],
            },
            timed: {
              invoke: {
                src: "timer",
                input: ({ context }) => ({ delayMs: context.stallTimeoutMs, fire: "migration.stalled" }),
              },
              on: {
                // (the parent's cutover check must win over restarting the stall timer)
                "migration.check": [
                  { guard: "caughtUp", target: "#migration.running.cutover" },
                  { guard: "advanced", target: "timed", reenter: true },
                ],
                "migration.stalled": {
                  target: "#migration.rollingBack",
                  actions: assign(({ context }) => ({
                    reason: `target ${context.transfer.to} stalled at ${context.progress.appliedSeq} for ${context.stallTimeoutMs} ms`,
                  })),
                },
              },
            },
            untimed: {},
          },
        },

        paused: {
          entry: { type: "persist", params: persistIn(MigrationState.Paused) },
          on: {
            RESUME: [
              { guard: "resumeToCatchingUp", target: "catchingUp", actions: assign({ pausedFrom: null }) },
              { target: "preparing", actions: assign({ pausedFrom: null }) },
            ],
            ...abortBeforeCutover,
          },
        },

        cutover: {
          entry: { type: "persist", params: persistIn(MigrationState.Cutover) },
          on: {
            // Not committed yet: roll back; the rollback finds out whether the CAS landed.
            TARGET_DOWN: abortBeforeCutover.TARGET_DOWN,
          },
          ...retryingStep({
            step: "cutover",
            reportsAs: MigrationState.Cutover,
            giveUp: "#migration.rollingBack",
            onDone: {
              target: "#migration.running.draining",
              actions: assign(({ event }) => ({ attempts: 0, placementEpoch: event.output.epoch })),
            },
          }),
        },

        draining: {
          entry: { type: "persist", params: persistIn(MigrationState.Draining) },
          // committed: a dead target is the repair path's business, not a rollback
          on: { TARGET_DOWN: { actions: assign({ targetDown: true }) } },
          initial: "choosing",
          states: {
            choosing: {
              always: [{ guard: "nothingToRelease", target: "#migration.completed" }, { target: "waiting" }],
            },
            waiting: {
              invoke: { src: "timer", input: ({ context }) => ({ delayMs: context.drainMs, fire: "migration.drained" }) },
              on: {
                "migration.drained": "releasing",
                SOURCE_DOWN: { target: "#migration.completed", actions: assign({ sourceDown: true }) },
              },
            },
            releasing: {
              on: { SOURCE_DOWN: { target: "#migration.completed", actions: assign({ sourceDown: true }) } },
              ...retryingStep({
                step: "release",
                reportsAs: MigrationState.Draining,
                giveUp: "#migration.failed",
                onDone: { target: "#migration.completed", actions: assign({ attempts: 0 }) },
              }),
            },
          },
        },
      },
    },

    rollingBack: {
      entry: [assign({ attempts: 0, pausedFrom: null }), { type: "persist", params: persistIn(MigrationState.RollingBack) }],
      ...retryingStep({
        step: "rollback",
        reportsAs: MigrationState.RollingBack,
        giveUp: "#migration.failed",
        label: ({ reason }) => `rollback (${reason ?? "?"})`,
        onDone: [
          {
            guard: "alreadyCutOver",
            target: "#migration.running.draining",
            actions: assign(({ context, event }) => ({
              attempts: 0,
              placementEpoch: event.output.epoch,
              lastError: `rollback (${context.reason ?? "?"}) found the cutover done: continuing`,
              reason: undefined,
            })),
          },
          {
            target: "#migration.rolledBack",
            actions: assign(({ event }) => ({ attempts: 0, placementEpoch: event.output.epoch })),
          },
        ],
      }),
    },

    completed: {
      type: "final",
      entry: [assign({ pausedFrom: null }), { type: "persist", params: persistIn(MigrationState.Completed) }],
    },
    rolledBack: {
      type: "final",
      entry: { type: "persist", params: persistIn(MigrationState.RolledBack) },
    },
    failed: {
      type: "final",
      entry: { type: "persist", params: persistIn(MigrationState.Failed) },
    },
  },
});

export type MigrationMachine = typeof migrationMachine;
export type MigrationSnapshot = SnapshotFrom<MigrationMachine>;
export type MigrationActorRef = ActorRefFrom<MigrationMachine>;

/** Map a machine snapshot (nested states included) to the public state union. */
export function migrationStateOf(snapshot: MigrationSnapshot): MigrationState {
  if (snapshot.status === "error") return MigrationState.Failed;
  if (snapshot.matches("planned")) return MigrationState.Planned;
  if (snapshot.matches({ running: "preparing" })) return MigrationState.Preparing;
  if (snapshot.matches({ running: "catchingUp" })) return MigrationState.CatchingUp;
  if (snapshot.matches({ running: "paused" })) return MigrationState.Paused;
  if (snapshot.matches({ running: "cutover" })) return MigrationState.Cutover;
  if (snapshot.matches({ running: "draining" })) return MigrationState.Draining;
  if (snapshot.matches("rollingBack")) return MigrationState.RollingBack;
  if (snapshot.matches("completed")) return MigrationState.Completed;
  if (snapshot.matches("rolledBack")) return MigrationState.RolledBack;
  if (snapshot.matches("failed")) return MigrationState.Failed;
  throw new Error(`migrationStateOf: unmapped state ${JSON.stringify(snapshot.value)}`);
}
