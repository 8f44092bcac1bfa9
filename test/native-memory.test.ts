import { readFileSync } from "node:fs";
import v8 from "node:v8";
import { runInNewContext } from "node:vm";
import pino from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import { pollUntil } from "../src/runtime/async.ts";
import { loadMallocTrim, MemoryTrimmer, type MallocTrim } from "../src/runtime/native-memory.ts";

v8.setFlagsFromString("--expose-gc");
const collectGarbage = runInNewContext("gc") as () => void;
const silent = pino({ level: "silent" });
const MiB = 2 ** 20;

function rssAnonBytes(): number {
  return Number(/^RssAnon:\s+(\d+) kB$/m.exec(readFileSync("/proc/self/status", "utf8"))![1]) * 1024;
}

describe("malloc_trim (glibc: Debian here and in CI)", () => {
  it("gives back free memory inside the heap, which free() alone keeps", async () => {
    const trim = await loadMallocTrim();
    if (trim instanceof Error) throw trim;
    // 64 KiB blocks come from malloc's heap (below the 128 KiB mmap threshold); freeing every
    // other one leaves 64 MiB of holes between live blocks, which free() cannot return.
    const kept: Buffer[] = [];
    let dropped: Buffer[] = [];
    for (let i = 0; i < 2048; i++) (i % 2 === 0 ? kept : dropped).push(Buffer.allocUnsafeSlow(64 * 1024).fill(i & 0xff));
    const withAll = process.memoryUsage().arrayBuffers;
    dropped = [];
    // Backing stores are freed after a collection, from V8's sweeper: wait until they are.
    await pollUntil(
      () => {
        collectGarbage();
        return process.memoryUsage().arrayBuffers <= withAll - 60 * MiB || undefined;
      },
      { timeoutMs: 10_000, intervalMs: 20, onTimeout: () => new Error("the dropped buffers were never freed") },
    );
    const before = rssAnonBytes();
    await trim();
    const released = before - rssAnonBytes();
    expect(released).toBeGreaterThan(32 * MiB);
    expect(kept.every((b, i) => b[0] === ((2 * i) & 0xff))).toBe(true);
  });
});

describe("the trimmer", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  function counting(): { trim: MallocTrim; calls: () => number; finish: () => void } {
    let calls = 0;
    let finish = () => {};
    const trim = () => {
      calls++;
      return new Promise<void>((resolve) => (finish = resolve));
    };
    return { trim, calls: () => calls, finish: () => finish() };
  }

  it("trims every interval, never two at once, and counts what the RSS lost", async () => {
    vi.useFakeTimers();
    const fake = counting();
    const rss = [500, 400, 400, 400];
    const trimmer = new MemoryTrimmer({ trim: fake.trim, intervalMs: 1_000, rssBytes: () => rss.shift()!, log: silent });
    trimmer.start();
    await vi.advanceTimersByTimeAsync(999);
    expect(fake.calls()).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(fake.calls()).toBe(1);
    // Still running at the next tick: not started again.
    await vi.advanceTimersByTimeAsync(1_000);
    expect(fake.calls()).toBe(1);
    fake.finish();
    await vi.advanceTimersByTimeAsync(0);
    expect(trimmer.stats).toMatchObject({ trims: 1, releasedBytes: 100 });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(fake.calls()).toBe(2);
    // stop() waits for the trim in flight, and no tick follows.
    const stopped = trimmer.stop();
    fake.finish();
    await stopped;
    await vi.advanceTimersByTimeAsync(5_000);
    expect(fake.calls()).toBe(2);
    expect(trimmer.stats.trims).toBe(2);
  });

  it("logs a failed trim and does not count it", async () => {
    const warn = vi.fn();
    const log = Object.assign(Object.create(silent) as typeof silent, { warn });
    const trimmer = new MemoryTrimmer({ trim: () => Promise.reject(new Error("EFAULT")), intervalMs: 1_000, rssBytes: () => 1, log });
    await trimmer.trimOnce();
    expect(trimmer.stats.trims).toBe(0);
    expect(warn).toHaveBeenCalledWith({ err: "EFAULT" }, "malloc_trim failed");
  });

  it("refuses an interval that is not positive", () => {
    expect(() => new MemoryTrimmer({ trim: () => Promise.resolve(), intervalMs: 0, rssBytes: () => 1, log: silent })).toThrow(/positive/);
  });
});
