/**
 * Small helpers of the chaos harness: free ports, bounded waits and the seeded
 * RNG (shared with the tests), timeouts, hashing, progress lines.
 */

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Milliseconds since the Unix epoch, as a float (all chaos timestamps use it). */
export const now = () => performance.timeOrigin + performance.now();

export { freePort, waitFor } from "../test/support/harness.ts";
export { seededRandom } from "../src/runtime/random.ts";

/** Rejects when `promise` has not settled within `ms` (the promise keeps running). */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
    }),
  ]);
}

/** A 32-bit FNV-1a hash of a string (seeds for deterministic vectors). */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

const started = performance.now();

/** A progress line on stderr, prefixed with seconds since start. */
export function progress(message: string): void {
  process.stderr.write(`[chaos +${((performance.now() - started) / 1000).toFixed(1)}s] ${message}\n`);
}
