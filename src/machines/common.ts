/**
 * Small helpers shared by the pure machines (coordinator, migration, replica): timer clamping, the exhaustive-switch fallback and the placeholder of an unbound effect.
 * Kept here so that each machine module holds only its own decisions.
 */

/** setTimeout fires almost at once for delays above 2^31-1 ms: never schedule more. */
export const timerDelayMsMax = 2_147_483_647;

/** A delay safe to schedule: a whole number of ms in [1, timerDelayMsMax]. */
export const clampTimerMs = (ms: number): number => Math.min(Math.max(1, Math.trunc(ms)), timerDelayMsMax);

/** Back-off after the `failures`-th failed try of a retried step: min(retryDelayMs · 2^(failures-1), retryDelayMaxMs). */
export function retryDelay(ctx: { retryDelayMs: number; retryDelayMaxMs: number }, failures: number): number {
  const exp = Math.min(Math.max(0, failures - 1), 40);
  return Math.min(Math.max(0, ctx.retryDelayMs) * 2 ** exp, Math.max(0, ctx.retryDelayMaxMs), timerDelayMsMax);
}

/** The `default:` of an exhaustive switch over a machine's public state union. */
export function unhandledState(machine: string, x: never): never {
  throw new Error(`unhandled ${machine} state: ${String(x)}`);
}

/** The placeholder of an effect declared in `setup()`: the owner binds it with `.provide()`. */
export const unboundEffect = (machine: string, what: string) => (): never => {
  throw new Error(`${machine}Machine: effect '${what}' was not provided`);
};
