/**
 * transactionMachine — one transaction, as the gateway that received it runs it (decision 013).
 *
 * This machine only decides. Every effect is named in `setup()` (setup.ts) and bound by the
 * gateway with `.provide()`:
 *
 * | effect          | input                         | contract |
 * | --------------- | ----------------------------- | -------- |
 * | `acquireLocks`  | `{txn, waitMs}`               | every touched id's lock in KV `jade_locks`, in sorted key order; rejects (`conflict`) when one is not had within `waitMs`, holding none |
 * | `writeRecord`   | `{txn}`                       | the record `preparing` in KV `jade_txns` (create-only; finding its own is success) |
 * | `prepare`       | `{txn}`                       | one `txn.prepare` per shard, deduplicated by message id → `{prepareSeqs}` |
 * | `collectVotes`  | `{txn, prepareSeqs}`          | each shard's vote from a replica applied ≥ its prepare → `{votes}` |
 * | `decide`        | `{txn, outcome, prepareSeqs}` | CAS of the record `preparing` → `outcome`; → `{outcome}` the record holds after (recovery may have aborted first). Idempotent |
 * | `appendMarkers` | `{txn, outcome}`              | `txn.commit` / `txn.abort` on every shard, deduplicated → `{markerSeqs}` |
 * | `release`       | `{txn, outcome}`              | the locks deleted, the record marked done. Idempotent |
 * | `reportError`   | action `{step, error, attempt}` | log a failed try |
 *
 * ```
 *  undecided (deadline: timeoutMs) ──────────────────────────────────────────────────────────┐
 *  │ acquiringLocks ─► recording ─► preparing ─► voting ─all yes─► deciding ─committed─► committing ─► releasing ─► done
 *  │      │ rejected       │ rejected / deadline ──────┴─ a no ──► abortDeciding ─aborted─► aborting ──┘
 *  │      └──► releasing (nothing was written: no record, no log entry)                       │
 *  └─ deadline ────────────────────────────────────────────────────────────────────────────────┘
 * ```
 * - **The commit point is the `decide` CAS to committed.** Before it, any failure or the
 *   deadline aborts; after it the transaction is committed whatever happens next, and the
 *   client is told so. `decide` answering aborted (recovery aborted a transaction past its
 *   deadline first) leads to the abort path: what the client is told is what the record holds.
 * - **A decision that cannot be read** (every `decide` try failed) ends `inDoubt`, handed over:
 *   recovery resolves the record (a `preparing` record past its deadline is aborted), and
 *   `jade txns get` tells the outcome.
 * - **After the decision** markers and release are retried with back-off; when their tries
 *   run out the rest is handed over to recovery, which finishes from the record. Locks are not
 *   released while markers are missing: they expire, and recovery releases them.
 * - No step before the record is retried: the transaction aborts, and the client may retry
 *   it whole. A failed `writeRecord` may have landed, so it counts as recorded.
 */
import { assign, type SnapshotFrom } from "xstate";
import { errorMessage } from "../../runtime/errors.ts";
import { retried, transactionInputProblems, transactionSetup } from "./setup.ts";
import { InDoubt, Outcome, TransactionState, type MarkersOutput, type PrepareOutput, type TransactionContext, type TransactionOutput, type VotesOutput } from "./types.ts";

const step = ({ context }: { context: TransactionContext }) => ({ txn: context.txn });
const aborted = (reason: string) => ({ type: "abort" as const, params: { reason } });

/**
 * Asking the record for `outcome`; what it holds afterwards is obeyed either way. A commit that
 * finds it aborted lost to recovery; an abort that finds it committed would be a bug elsewhere
 * (only this gateway commits).
 */
function decidingState(outcome: Outcome) {
  return retried({
    step: "decide",
    input: ({ context }) => ({ txn: context.txn, outcome, prepareSeqs: context.prepareSeqs, ...(context.reason ? { reason: context.reason } : {}) }),
    onDone: [
      { guard: "decidedCommit", target: "#transaction.committing", actions: assign({ outcome: Outcome.Committed, reason: null }) },
      outcome === Outcome.Committed ? { target: "#transaction.aborting", actions: aborted("aborted by recovery before the commit") } : { target: "#transaction.aborting" },
    ],
    giveUp: "#transaction.done",
  });
}

/** Appending the decision's markers on every shard, then releasing; given up, recovery finishes (locks kept). */
function appendingMarkers(outcome: Outcome) {
  return retried({
    step: "appendMarkers",
    input: ({ context }) => ({ txn: context.txn, outcome }),
    onDone: { target: "#transaction.releasing", actions: assign({ markerSeqs: ({ event }) => (event as unknown as { output: MarkersOutput }).output.markerSeqs }) },
    giveUp: "#transaction.done",
  });
}

export const transactionMachine = transactionSetup.createMachine({
  id: "transaction",
  context: ({ input }) => {
    const problems = transactionInputProblems(input);
    if (problems.length > 0) throw new Error(`transactionMachine: invalid input: ${problems.join("; ")}`);
    return {
      txn: input.txn,
      timeoutMs: input.timeoutMs,
      attemptsMax: Math.trunc(input.attemptsMax ?? 5),
      retryDelayMs: input.retryDelayMs ?? 100,
      retryDelayMaxMs: input.retryDelayMaxMs ?? 2_000,
      prepareSeqs: {},
      markerSeqs: {},
      recorded: false,
      outcome: null,
      reason: null,
      attempts: 0,
      handedOver: false,
    };
  },
  initial: "undecided",
  states: {
    undecided: {
      initial: "acquiringLocks",
      after: {
        deadline: [
          { guard: "recorded", target: "abortDeciding", actions: aborted("timed out before the decision") },
          { target: "releasing", actions: aborted("timed out before the decision") },
        ],
      },
      states: {
        acquiringLocks: {
          invoke: {
            src: "acquireLocks",
            input: ({ context }) => ({ txn: context.txn, waitMs: context.timeoutMs }),
            onDone: "recording",
            // Nothing was written; a lock may be held all the same (a write whose reply was lost), so they are let go.
            onError: { target: "#transaction.releasing", actions: assign(({ event }) => ({ outcome: Outcome.Aborted, reason: errorMessage(event.error) })) },
          },
        },
        recording: {
          invoke: {
            src: "writeRecord",
            input: step,
            onDone: { target: "preparing", actions: assign({ recorded: true }) },
            onError: { target: "#transaction.abortDeciding", actions: assign(({ event }) => ({ recorded: true, outcome: Outcome.Aborted, reason: `writing the record: ${errorMessage(event.error)}` })) },
          },
        },
        preparing: {
          invoke: {
            src: "prepare",
            input: step,
            onDone: { target: "voting", actions: assign({ prepareSeqs: ({ event }) => (event.output as PrepareOutput).prepareSeqs }) },
            onError: { target: "#transaction.abortDeciding", actions: assign(({ event }) => ({ outcome: Outcome.Aborted, reason: `preparing: ${errorMessage(event.error)}` })) },
          },
        },
        voting: {
          invoke: {
            src: "collectVotes",
            input: ({ context }) => ({ txn: context.txn, prepareSeqs: context.prepareSeqs }),
            onDone: [
              { guard: "allYes", target: "#transaction.deciding" },
              {
                target: "#transaction.abortDeciding",
                actions: assign(({ context, event }) => {
                  const votes = (event.output as VotesOutput).votes;
                  const no = votes.find((v) => !v.yes);
                  const missing = context.txn.shards.find((s) => !votes.some((v) => v.shard === s));
                  return { outcome: Outcome.Aborted, reason: no ? `shard ${no.shard}: ${no.reason ?? "voted no"}` : `shard ${missing}: no vote` };
                }),
              },
            ],
            onError: { target: "#transaction.abortDeciding", actions: assign(({ event }) => ({ outcome: Outcome.Aborted, reason: `voting: ${errorMessage(event.error)}` })) },
          },
        },
      },
    },

    deciding: decidingState(Outcome.Committed),
    abortDeciding: decidingState(Outcome.Aborted),

    committing: appendingMarkers(Outcome.Committed),
    aborting: appendingMarkers(Outcome.Aborted),

    releasing: {
      ...retried({
        step: "release",
        input: ({ context }) => ({ txn: context.txn, outcome: context.outcome ?? Outcome.Aborted }),
        onDone: "#transaction.done",
        giveUp: "#transaction.done",
      }),
    },

    done: { type: "final" },
  },
  output: ({ context }) => transactionOutput(context),
});

/**
 * What the transaction came to, as its context holds it: final once it is `releasing` (the
 * outcome decided and its markers appended, or nothing written), so a gateway may answer then
 * and let the locks go after.
 */
export function transactionOutput(context: TransactionContext): TransactionOutput {
  return {
    // No outcome at the end: every `decide` try failed, and the record alone knows.
    outcome: context.outcome ?? InDoubt,
    reason: context.reason,
    prepareSeqs: context.prepareSeqs,
    markerSeqs: context.markerSeqs,
    handedOver: context.handedOver,
  };
}

export type TransactionSnapshot = SnapshotFrom<typeof transactionMachine>;

/** The public state of a running (or finished) transaction. */
export function transactionStateOf(snapshot: TransactionSnapshot): TransactionState {
  const value = snapshot.value as string | Record<string, string | object>;
  if (typeof value === "string") return value as TransactionState;
  const [top, inner] = Object.entries(value)[0]!;
  if (top === "undecided") return inner as TransactionState;
  return top === "abortDeciding" ? TransactionState.Deciding : (top as TransactionState);
}
