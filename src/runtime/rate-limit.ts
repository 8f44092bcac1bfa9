/**
 * A byte-rate limiter (GCRA, the "virtual scheduling" form of a token bucket):
 * every `take(bytes)` books its share of the timeline in call order, so callers
 * are served first come, first served, and the long-run rate never exceeds
 * `bytesPerSec`. Up to `burstBytes` pass at once after an idle spell. A take
 * larger than the burst is allowed and simply waits its full share.
 *
 * Time and sleeping are injected, so the arithmetic is unit-tested without timers.
 */
import { setTimeout as sleep } from "node:timers/promises";

export interface RateLimitClock {
  nowMs(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: RateLimitClock = {
  nowMs: () => performance.now(),
  sleep: (ms, signal) => sleep(ms, undefined, { signal }),
};

export class RateLimiter {
  readonly #bytesPerSec: number;
  readonly #burstMs: number;
  readonly #clock: RateLimitClock;
  /** When the bytes booked so far will have "drained" at the configured rate. */
  #bookedUntilMs = 0;

  /** `bytesPerSec` ≤ 0 means unlimited. */
  constructor(bytesPerSec: number, burstBytes: number, clock: RateLimitClock) {
    this.#bytesPerSec = bytesPerSec;
    this.#burstMs = bytesPerSec > 0 ? (Math.max(0, burstBytes) * 1_000) / bytesPerSec : 0;
    this.#clock = clock;
  }

  get unlimited(): boolean {
    return this.#bytesPerSec <= 0;
  }

  /** How long a take of `bytes` made now would wait (without booking it). */
  delayMs(bytes: number): number {
    if (this.unlimited) return 0;
    const now = this.#clock.nowMs();
    const bookedUntil = Math.max(this.#bookedUntilMs, now) + (bytes * 1_000) / this.#bytesPerSec;
    return Math.max(0, bookedUntil - this.#burstMs - now);
  }

  /** Books `bytes` and waits until they fit the rate. Rejects only if `signal` aborts. */
  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    if (this.unlimited || bytes <= 0) return;
    const waitMs = this.delayMs(bytes);
    this.#bookedUntilMs = Math.max(this.#bookedUntilMs, this.#clock.nowMs()) + (bytes * 1_000) / this.#bytesPerSec;
    if (waitMs > 0) await this.#clock.sleep(waitMs, signal);
  }
}
