/**
 * Small helpers of the chaos harness: free ports, bounded waits and the seeded
 * RNG (shared with the tests), timeouts, hashing, progress lines.
 */
import { withDeadline } from "../src/runtime/async.ts";

/** Milliseconds since the Unix epoch, as a float (all chaos timestamps use it). */
export const now = () => performance.timeOrigin + performance.now();

export { freePort, waitFor } from "../test/support/harness.ts";
export { fnv1a32, seededRandom } from "../src/runtime/random.ts";
export { delay } from "../src/runtime/async.ts";

/** Rejects when `promise` has not settled within `ms` (the promise keeps running). */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return withDeadline(promise, ms, () => new Error(`${what}: no result within ${ms} ms`));
}

const started = performance.now();

/** A progress line on stderr, prefixed with seconds since start. */
export function progress(message: string): void {
  process.stderr.write(`[chaos +${((performance.now() - started) / 1000).toFixed(1)}s] ${message}\n`);
}
