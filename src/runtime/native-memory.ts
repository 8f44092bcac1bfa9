/**
 * Handing freed native memory back to the OS: glibc's `malloc_trim(0)`, on a timer.
 *
 * glibc returns to the OS only the free top of each arena; free pages inside an arena stay
 * resident until `malloc_trim`. An import frees a great deal in an order that leaves such
 * holes (the fresh buffers' 1 MiB chunks, decoded batches and log entries, on the main thread
 * and the index workers): a node that took 300,000 × 128-d vectors in 4 shards held 412 MB
 * more than when empty, and one `malloc_trim(0)` took that to 271 MB (raw usearch holds
 * 218 MB for the same shards). Trimming every 10 s left 248 MB; a trial at 5 s measured
 * 1–27 ms a call during the import. `MALLOC_MMAP_THRESHOLD_=131072` got 68 MB of the
 * 141 MB back, and needs the environment set before the process starts; this needs nothing.
 *
 * Node has no binding for it: koffi (FFI, prebuilt) calls libc's, asynchronously, so the
 * walk over the arenas runs on libuv's thread pool, not on the event loop. jemalloc and
 * tcmalloc purge on their own (decay) and musl returns memory itself: where libc.so.6 or its
 * `malloc_trim` is missing, the trimmer is not started and the node says why, once.
 */
import type { Logger } from "pino";
import { Periodic } from "./async.ts";
import { errorMessage } from "./errors.ts";

/** Between trims: jemalloc's default decay. A trim of a settled 300,000-vector node took 1–12 ms, off the event loop. */
export const trimIntervalMsDefault = 10_000;

/** Releases free memory of every arena; resolves when done. */
export type MallocTrim = () => Promise<void>;

export interface TrimStats {
  trims: number;
  /** The RSS drop across each trim, summed (allocations made meanwhile by other threads hide part of it). */
  releasedBytes: number;
  seconds: number;
}

/** libc's `malloc_trim`, or why it is not available here. */
export async function loadMallocTrim(): Promise<MallocTrim | Error> {
  if (process.platform !== "linux") return new Error(`no glibc on ${process.platform}`);
  try {
    const koffi = (await import("koffi")).default;
    const trim = koffi.load("libc.so.6").func("int malloc_trim(size_t pad)");
    return () =>
      new Promise<void>((resolve, reject) => {
        trim.async(0, (err: unknown) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve()));
      });
  } catch (err) {
    return new Error(`malloc_trim not found in libc.so.6 (${errorMessage(err)})`);
  }
}

export interface TrimmerDeps {
  trim: MallocTrim;
  intervalMs: number;
  /** The process's resident bytes now. */
  rssBytes: () => number;
  log: Logger;
}

/** Trims every `intervalMs`; never two trims at once. */
export class MemoryTrimmer {
  readonly #deps: TrimmerDeps;
  readonly #stats: TrimStats = { trims: 0, releasedBytes: 0, seconds: 0 };
  readonly #trims: Periodic;

  constructor(deps: TrimmerDeps) {
    if (!(deps.intervalMs > 0)) throw new Error(`trim interval must be positive, got ${deps.intervalMs}`);
    this.#deps = deps;
    this.#trims = new Periodic(() => this.#trim(), deps.intervalMs, { unref: true });
  }

  get stats(): Readonly<TrimStats> {
    return this.#stats;
  }

  start(): void {
    this.#trims.start();
  }

  /** Stops the timer and waits for a trim in flight. */
  stop(): Promise<void> {
    return this.#trims.stop();
  }

  /** One trim, unless one is running (then that one). */
  trimOnce(): Promise<void> {
    return this.#trims.runOnce();
  }

  async #trim(): Promise<void> {
    const { trim, rssBytes, log } = this.#deps;
    const before = rssBytes();
    const startedMs = performance.now();
    try {
      await trim();
    } catch (err) {
      log.warn({ err: errorMessage(err) }, "malloc_trim failed");
      return;
    }
    const ms = performance.now() - startedMs;
    const released = Math.max(0, before - rssBytes());
    this.#stats.trims++;
    this.#stats.releasedBytes += released;
    this.#stats.seconds += ms / 1000;
    log.debug({ releasedBytes: released, ms: Math.round(ms * 100) / 100 }, "native memory trimmed");
  }
}

/** The node's trimmer, started; undefined (and said why) where libc cannot trim, or when `intervalMs` is 0. */
export async function startMemoryTrimmer(intervalMs: number, log: Logger): Promise<MemoryTrimmer | undefined> {
  if (intervalMs === 0) return undefined;
  const trim = await loadMallocTrim();
  if (trim instanceof Error) {
    log.info({ reason: trim.message }, "freed native memory is left to the allocator");
    return undefined;
  }
  const trimmer = new MemoryTrimmer({ trim, intervalMs, rssBytes: () => process.memoryUsage.rss(), log });
  trimmer.start();
  return trimmer;
}
