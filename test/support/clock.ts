/** Driving xstate's SimulatedClock in the pure machine tests. */
import type { SimulatedClock } from "xstate";

/** Runs pending promise callbacks (no simulated time passes). */
export const flush = (): Promise<void> => new Promise<void>((r) => setImmediate(r));

/**
 * Moves `clock` forward by `ms`, never stepping across a multiple of `stepMs`, so a timer whose
 * delay is such a multiple fires with now() at its due time; flushes promises before moving and
 * after every step (then calls `onStep`).
 */
export async function advance(clock: SimulatedClock, ms: number, stepMs: number, onStep?: () => void): Promise<void> {
  const end = clock.now() + ms;
  await flush();
  while (clock.now() < end) {
    clock.increment(Math.min(stepMs - (clock.now() % stepMs), end - clock.now()));
    await flush();
    onStep?.();
  }
}
