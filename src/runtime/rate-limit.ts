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
  #bytesPerSec = 0;
  #burstMs = 0;
  readonly #clock: RateLimitClock;
  /** When the bytes booked so far will have "drained" at the configured rate. */
  #bookedUntilMs = 0;

  /** `bytesPerSec` ≤ 0 means unlimited. */
  constructor(bytesPerSec: number, burstBytes: number, clock: RateLimitClock) {
    this.#clock = clock;
    this.setRate(bytesPerSec, burstBytes);
  }

  /**
   * A new rate from now on (the cluster's settings changed). What is booked stays booked:
   * takes already waiting keep their wait, the next ones are paced at the new rate.
   */
  setRate(bytesPerSec: number, burstBytes: number): void {
    this.#bytesPerSec = bytesPerSec;
    this.#burstMs = bytesPerSec > 0 ? (Math.max(0, burstBytes) * 1_000) / bytesPerSec : 0;
    if (bytesPerSec <= 0) this.#bookedUntilMs = 0;
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

  /**
   * Books `units` if they fit the rate now and returns 0; otherwise books nothing and returns
   * how long until they would (a request to refuse with a retry-after, rather than wait).
   */
  tryTake(units: number): number {
    const waitMs = this.delayMs(units);
    if (waitMs > 0) return waitMs;
    if (!this.unlimited && units > 0) this.#bookedUntilMs = Math.max(this.#bookedUntilMs, this.#clock.nowMs()) + (units * 1_000) / this.#bytesPerSec;
    return 0;
  }

  /** Nothing booked is still draining: a fresh limiter would behave the same. */
  get idle(): boolean {
    return this.#bookedUntilMs <= this.#clock.nowMs();
  }

  /** Books `bytes` and waits until they fit the rate. Rejects only if `signal` aborts. */
  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    if (this.unlimited || bytes <= 0) return;
    const waitMs = this.delayMs(bytes);
    this.#bookedUntilMs = Math.max(this.#bookedUntilMs, this.#clock.nowMs()) + (bytes * 1_000) / this.#bytesPerSec;
    if (waitMs > 0) await this.#clock.sleep(waitMs, signal);
  }
}

/** A rate and a burst, per second (requests, or bytes: the caller's unit). 0 = unlimited. */
export interface RateSetting {
  perSecond: number;
  burst: number;
}

/**
 * One limiter per identity (an API key, a NATS tenant), made on first use. Identities whose
 * limiter is idle are forgotten once there are more than `identitiesMax` (forgetting an idle one
 * changes nothing), so the map is bounded by the identities active within a burst's time.
 */
export class KeyedRateLimits {
  #setting: RateSetting;
  readonly #clock: RateLimitClock;
  readonly #identitiesMax: number;
  readonly #limiters = new Map<string, RateLimiter>();

  constructor(setting: RateSetting, clock: RateLimitClock, identitiesMax = 10_000) {
    this.#setting = setting;
    this.#clock = clock;
    this.#identitiesMax = identitiesMax;
  }

  get unlimited(): boolean {
    return this.#setting.perSecond <= 0;
  }

  /** A new rate and burst for every identity from now on: each starts again with a full burst. */
  set(setting: RateSetting): void {
    if (setting.perSecond === this.#setting.perSecond && setting.burst === this.#setting.burst) return;
    this.#setting = setting;
    this.#limiters.clear();
  }

  /** 0 when `identity` may go on (one unit booked), else the ms until it may. */
  admit(identity: string): number {
    if (this.unlimited) return 0;
    let limiter = this.#limiters.get(identity);
    if (!limiter) {
      if (this.#limiters.size >= this.#identitiesMax) this.#forgetIdle();
      limiter = new RateLimiter(this.#setting.perSecond, this.#setting.burst, this.#clock);
      this.#limiters.set(identity, limiter);
    }
    return limiter.tryTake(1);
  }

  get size(): number {
    return this.#limiters.size;
  }

  #forgetIdle(): void {
    for (const [identity, limiter] of this.#limiters) if (limiter.idle) this.#limiters.delete(identity);
  }
}
