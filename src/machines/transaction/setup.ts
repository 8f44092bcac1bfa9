/**
 * The transaction machine's `setup()`: every effect it names, with placeholders the gateway
 * binds through `.provide()`, its guards and delays, and the builder of its retried steps.
 */
import { assign, fromPromise, setup } from "xstate";
import { errorMessage } from "../../runtime/errors.ts";
import { clampTimerMs, retryDelay, unboundEffect as unbound } from "../common.ts";
import {
  Outcome,
  type DecideInput,
  type DecideOutput,
  type LocksInput,
  type MarkersInput,
  type MarkersOutput,
  type PrepareOutput,
  type ReleaseInput,
  type ReportErrorParams,
  type StepInput,
  type TransactionContext,
  type TransactionInput,
  type TransactionStep,
  type VotesInput,
  type VotesOutput,
} from "./types.ts";

/** Back-off after the `failures`-th failed try (machines/common.ts). */
export const transactionRetryDelay: (ctx: Pick<TransactionContext, "retryDelayMs" | "retryDelayMaxMs">, failures: number) => number = retryDelay;

/** Problems with an input (empty = valid). The machine fails to start on an invalid input. */
export function transactionInputProblems(input: TransactionInput): string[] {
  const problems: string[] = [];
  const { txn } = input;
  if (typeof txn?.id !== "string" || txn.id.length === 0) problems.push("txn.id must be a non-empty string");
  if (!Array.isArray(txn?.shards) || txn.shards.length === 0) problems.push("txn.shards must name at least one shard");
  else if (txn.shards.some((s, i) => !Number.isInteger(s) || s < 0 || (i > 0 && s <= txn.shards[i - 1]!))) problems.push("txn.shards must be ascending shard numbers");
  const check = (name: string, v: unknown, min: number, optional = false) => {
    if (optional && v === undefined) return;
    if (typeof v !== "number" || !Number.isFinite(v) || v < min) problems.push(`${name} must be a number >= ${min}`);
  };
  check("timeoutMs", input.timeoutMs, 1);
  check("attemptsMax", input.attemptsMax, 1, true);
  check("retryDelayMs", input.retryDelayMs, 0, true);
  check("retryDelayMaxMs", input.retryDelayMaxMs, 0, true);
  return problems;
}

const unboundEffect = (what: string) => unbound("transaction", what);

export const transactionSetup = setup({
  types: {
    input: {} as TransactionInput,
    context: {} as TransactionContext,
  },
  actors: {
    /** Takes every lock in sorted order, waiting at most `waitMs`; rejects (conflict) when one cannot be had. Nothing held on rejection. */
    acquireLocks: fromPromise<void, LocksInput>(async () => unboundEffect("acquireLocks")()),
    /** Writes the record `preparing` (create-only: a retry after a timeout finds its own). */
    writeRecord: fromPromise<void, StepInput>(async () => unboundEffect("writeRecord")()),
    /** Appends one `txn.prepare` per shard (deduplicated by message id, so a retry appends nothing twice). */
    prepare: fromPromise<PrepareOutput, StepInput>(async () => unboundEffect("prepare")()),
    /** Each shard's vote, from a replica that has applied its prepare. */
    collectVotes: fromPromise<VotesOutput, VotesInput>(async () => unboundEffect("collectVotes")()),
    /** CAS of the record from `preparing` to `outcome`; answers what the record holds afterwards. Idempotent. */
    decide: fromPromise<DecideOutput, DecideInput>(async () => unboundEffect("decide")()),
    /** Appends `txn.commit` or `txn.abort` on every shard (deduplicated by message id). */
    appendMarkers: fromPromise<MarkersOutput, MarkersInput>(async () => unboundEffect("appendMarkers")()),
    /** Deletes the locks and marks the record done. Idempotent. */
    release: fromPromise<void, ReleaseInput>(async () => unboundEffect("release")()),
  },
  actions: {
    reportError: (_, _params: ReportErrorParams) => {},
    failedTry: assign(({ context }) => ({ attempts: context.attempts + 1 })),
    abort: assign((_, params: { reason: string }) => ({ outcome: Outcome.Aborted, reason: params.reason })),
  },
  guards: {
    canRetry: ({ context }) => context.attempts + 1 < context.attemptsMax,
    recorded: ({ context }) => context.recorded,
    allYes: ({ context, event }) => {
      const votes = "output" in event ? (event.output as VotesOutput).votes : [];
      const yes = new Set(votes.filter((v) => v.yes).map((v) => v.shard));
      return context.txn.shards.every((s) => yes.has(s));
    },
    decidedCommit: ({ event }) => "output" in event && (event.output as DecideOutput).outcome === Outcome.Committed,
  },
  delays: {
    deadline: ({ context }) => clampTimerMs(context.timeoutMs),
    retry: ({ context }) => clampTimerMs(transactionRetryDelay(context, context.attempts)),
  },
});

type StateConfig = Parameters<typeof transactionSetup.createStateConfig>[0];

/**
 * `{initial: "trying", states: {trying, backoff}}` of a step after the decision: a rejection
 * backs off and tries again while tries remain, else leaves the rest to recovery (`handedOver`)
 * and goes to `giveUp`. The step must be idempotent: a try that failed may have landed.
 */
export function retried(spec: { step: TransactionStep; input: (args: { context: TransactionContext }) => unknown; onDone: unknown; giveUp: string }) {
  const { step } = spec;
  return transactionSetup.createStateConfig({
    initial: "trying",
    entry: assign({ attempts: 0 }),
    states: {
      trying: {
        invoke: {
          src: step,
          input: spec.input,
          // TS cannot pair a dynamic `src` with its own done event: each caller reads its step's output.
          onDone: spec.onDone as never,
          onError: [
            {
              guard: "canRetry",
              target: "backoff",
              actions: [{ type: "reportError", params: ({ context, event }) => ({ step, error: errorMessage(event.error), attempt: context.attempts + 1 }) }, "failedTry"],
            },
            {
              target: spec.giveUp,
              actions: [
                { type: "reportError", params: ({ context, event }) => ({ step, error: errorMessage(event.error), attempt: context.attempts + 1 }) },
                assign({ handedOver: true }),
              ],
            },
          ],
        } as NonNullable<StateConfig["invoke"]>,
      },
      backoff: { after: { retry: "trying" } },
    },
  });
}
