import { describe, expect, it } from "vitest";
import { KeyedRateLimits, RateLimiter, type RateLimitClock } from "../src/runtime/rate-limit.ts";

/** A manual clock: sleeping records the wait and advances time by it. */
function manualClock() {
  let now = 1_000;
  const waits: number[] = [];
  const clock: RateLimitClock = {
    nowMs: () => now,
    sleep: async (ms) => {
      waits.push(ms);
      now += ms;
    },
  };
  return { clock, waits, advance: (ms: number) => (now += ms), now: () => now };
}

describe("RateLimiter", () => {
  it("lets a burst through, then paces takes at the rate", async () => {
    const { clock, waits, now } = manualClock();
    const limiter = new RateLimiter(1_000, 500, clock); // 1000 B/s, 500 B burst
    const start = now();
    await limiter.take(500); // within the burst
    expect(waits).toEqual([]);
    for (let i = 0; i < 10; i++) await limiter.take(100);
    // 1500 B in total, 500 of them burst: the rest takes 1 s at 1000 B/s.
    expect(now() - start).toBeCloseTo(1_000, 6);
  });

  it("holds the long-run rate for many small takes", async () => {
    const { clock, now } = manualClock();
    const limiter = new RateLimiter(2_048, 1_024, clock);
    const start = now();
    for (let i = 0; i < 1_000; i++) await limiter.take(64); // 64,000 B
    const seconds = (now() - start) / 1_000;
    expect(64_000 / seconds).toBeLessThanOrEqual(2_048 * 1.02 + 1_024 / seconds);
    expect(seconds).toBeGreaterThan((64_000 - 1_024) / 2_048 - 0.01);
  });

  it("refills while idle, but never above the burst", async () => {
    const { clock, waits, advance } = manualClock();
    const limiter = new RateLimiter(1_000, 200, clock);
    await limiter.take(200);
    advance(10_000); // a long idle spell earns at most the burst again
    await limiter.take(200);
    expect(waits).toEqual([]);
    await limiter.take(100);
    expect(waits).toEqual([100]);
  });

  it("makes a take larger than the burst wait its whole share", async () => {
    const { clock, waits } = manualClock();
    const limiter = new RateLimiter(1_000, 100, clock);
    await limiter.take(5_100);
    expect(waits).toEqual([5_000]);
  });

  it("serves concurrent takers in call order", async () => {
    let now = 0;
    const order: string[] = [];
    const sleeps: { until: number; wake: () => void }[] = [];
    const clock: RateLimitClock = {
      nowMs: () => now,
      sleep: (ms) => new Promise<void>((wake) => sleeps.push({ until: now + ms, wake })),
    };
    const limiter = new RateLimiter(1_000, 0, clock);
    const takers = ["a", "b", "c"].map((name) => limiter.take(100).then(() => order.push(name)));
    expect(sleeps.map((s) => s.until)).toEqual([100, 200, 300]);
    for (const s of sleeps.sort((x, y) => x.until - y.until)) {
      now = s.until;
      s.wake();
      await Promise.resolve();
    }
    await Promise.all(takers);
    expect(order).toEqual(["a", "b", "c"]);
  });

  it("is a no-op when unlimited", async () => {
    const { clock, waits } = manualClock();
    const limiter = new RateLimiter(0, 0, clock);
    await limiter.take(1e12);
    expect(limiter.unlimited).toBe(true);
    expect(waits).toEqual([]);
  });
});

describe("request rates (tryTake, KeyedRateLimits)", () => {
  it("admits a burst, then refuses with the wait until the next one fits, booking nothing when it refuses", () => {
    const { clock, advance } = manualClock();
    const limiter = new RateLimiter(2, 3, clock); // 2 requests/s, 3 at once
    expect([limiter.tryTake(1), limiter.tryTake(1), limiter.tryTake(1)]).toEqual([0, 0, 0]);
    expect(limiter.tryTake(1)).toBeCloseTo(500, 6);
    // Refusals book nothing: asking again at once gets the same answer.
    expect(limiter.tryTake(1)).toBeCloseTo(500, 6);
    advance(500);
    expect(limiter.tryTake(1)).toBe(0);
    expect(limiter.tryTake(1)).toBeCloseTo(500, 6);
    advance(10_000);
    expect(limiter.idle).toBe(true);
  });

  it("keeps one limiter per identity, and forgets idle ones past its bound", () => {
    const { clock, advance } = manualClock();
    const rates = new KeyedRateLimits({ perSecond: 1, burst: 1 }, clock, 2);
    expect(rates.admit("a")).toBe(0);
    expect(rates.admit("a")).toBeGreaterThan(0);
    expect(rates.admit("b")).toBe(0);
    // A third identity while both are busy: nothing idle to forget, so the map grows past the bound.
    expect(rates.admit("c")).toBe(0);
    expect(rates.size).toBe(3);
    advance(2_000);
    expect(rates.admit("d")).toBe(0);
    expect(rates.size).toBe(1);
    expect(new KeyedRateLimits({ perSecond: 0, burst: 0 }, clock).admit("x")).toBe(0);
  });
});
