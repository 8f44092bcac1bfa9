/**
 * State configs the migration machine repeats: the retried step (prepare, cutover, release,
 * rollback all have the same shape: invoke the step with a timeout, back off and retry, give
 * up after `attemptsMax` or on an `obsolete` rejection) and the transitions that abort a
 * migration before its cutover. One builder each, so the four steps cannot drift apart.
 */
import { assign } from "xstate";
import { errorMessage } from "../../runtime/errors.ts";
import { migrationRetryDelay, migrationSetup, persistIn, stepInput } from "./setup.ts";
import type { MigrationContext, MigrationState, MigrationStep } from "./types.ts";

type StateConfig = Parameters<typeof migrationSetup.createStateConfig>[0];
type SingleInvoke = Exclude<NonNullable<StateConfig["invoke"]>, readonly unknown[]>;
/** the invoke config of step actor `S` (its `onDone` is typed by the actor's output) */
type StepInvoke<S extends MigrationStep> = Extract<SingleInvoke, { src: S }>;
type StepDone<S extends MigrationStep> = NonNullable<StepInvoke<S>["onDone"]>;

interface StepSpec<S extends MigrationStep> {
  step: S;
  /** the public state reported (persisted) while backing off */
  reportsAs: MigrationState;
  /** where the step's success leads (its event carries the step actor's output) */
  onDone: StepDone<S>;
  /** where an `obsolete` rejection or the last failed try leads */
  giveUp: "#migration.rollingBack" | "#migration.failed";
  /** how the step is named in `reason` (default: its name) */
  label?: (context: MigrationContext) => string;
}
/** one of the steps, discriminated by `step` (so that `onDone` is typed by that step's output) */
export type RetryingStep = { [S in MigrationStep]: StepSpec<S> }[MigrationStep];

/**
 * `{initial: "trying", states: {trying, backoff}}` of a step: `trying` invokes the step actor
 * and a `stepTimer` (stepTimeoutMs); a rejection or the timeout counts a failed try and goes to
 * `backoff` (retryDelay, persisted as `reportsAs`) while tries remain, else to `giveUp` with a
 * reason. An `obsolete` rejection gives up at once.
 */
export function retryingStep(spec: RetryingStep) {
  const { step, giveUp } = spec;
  const label = spec.label ?? (() => step);
  const stepInvoke = {
    id: step,
    src: step,
    input: stepInput,
    onDone: spec.onDone,
    onError: [
      {
        guard: "obsolete",
        target: giveUp,
        actions: assign(({ context, event }) => ({ reason: `${label(context)}: ${errorMessage(event.error)}` })),
      },
      {
        guard: "canRetry",
        target: "backoff",
        actions: [
          {
            type: "reportError",
            params: ({ context, event }) => ({ step, error: errorMessage(event.error), attempt: context.attempts + 1 }),
          },
          { type: "failedTry", params: ({ event }) => ({ step, error: errorMessage(event.error) }) },
        ],
      },
      {
        target: giveUp,
        actions: assign(({ context, event }) => ({
          attempts: context.attempts + 1,
          reason: `${label(context)} failed ${context.attempts + 1} times: ${errorMessage(event.error)}`,
        })),
      },
    ],
  } satisfies Omit<StepInvoke<MigrationStep>, "src" | "onDone"> & { src: MigrationStep; onDone: RetryingStep["onDone"] };
  return migrationSetup.createStateConfig({
    initial: "trying",
    states: {
      trying: {
        invoke: [
          // checked above field by field; TS cannot pair `src` with its own `onDone` variant
          stepInvoke as StepInvoke<MigrationStep>,
          { id: "stepTimer", src: "timer", input: ({ context }) => ({ delayMs: context.stepTimeoutMs, fire: "migration.stepTimeout" }) },
        ],
        on: {
          "migration.stepTimeout": [
            {
              guard: "canRetry",
              target: "backoff",
              actions: [
                {
                  type: "reportError",
                  params: ({ context }) => ({ step, error: "timed out", attempt: context.attempts + 1 }),
                },
                { type: "failedTry", params: { step, error: "timed out" } },
              ],
            },
            {
              target: giveUp,
              actions: assign(({ context }) => ({
                attempts: context.attempts + 1,
                reason: `${label(context)} failed ${context.attempts + 1} times: timed out`,
              })),
            },
          ],
        },
      },
      backoff: {
        entry: { type: "persist", params: persistIn(spec.reportsAs) },
        invoke: {
          src: "timer",
          input: ({ context }) => ({ delayMs: migrationRetryDelay(context, context.attempts), fire: "migration.retry" }),
        },
        on: { "migration.retry": "trying" },
      },
    },
  });
}

/** Before the cutover: CANCEL and TARGET_DOWN roll the migration back. */
export const abortBeforeCutover = migrationSetup.createStateConfig({
  on: {
    CANCEL: {
      target: "#migration.rollingBack",
      actions: assign({ reason: ({ event }) => `cancelled${event.reason ? `: ${event.reason}` : ""}` }),
    },
    TARGET_DOWN: {
      target: "#migration.rollingBack",
      actions: assign(({ context }) => ({ targetDown: true, reason: `target ${context.transfer.to} down` })),
    },
  },
}).on;
