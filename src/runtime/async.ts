/**
 * The waiting primitives, once: a delay, a deferred promise, a deadline race, an exponential
 * backoff, the next event-loop turn, a slicer for long synchronous work, a queue that lets
 * one waiter go per turn, and the urgent work that goes before it. Node 20 has no
 * `Promise.withResolvers`, hence `deferred`.
 */

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (reason: unknown) => void;
}

/** A promise with its settle functions outside it. */
export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Races `promise` against a timer; on expiry rejects with `onTimeout()`. The timer never outlives the race. */
export function withDeadline<T>(promise: Promise<T>, timeoutMs: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export interface BackoffSettings {
  initialMs: number;
  maxMs: number;
}

/**
 * Exponential backoff, doubling from `initialMs` up to `maxMs`. `wait()` sleeps the
 * current step and doubles it; `reset()` starts over after a success.
 */
export class Backoff {
  readonly #settings: BackoffSettings;
  #nextMs: number;

  constructor(settings: BackoffSettings) {
    if (!(settings.initialMs > 0 && settings.initialMs <= settings.maxMs)) {
      throw new Error(`backoff: need 0 < initialMs (${settings.initialMs}) <= maxMs (${settings.maxMs})`);
    }
    this.#settings = settings;
    this.#nextMs = settings.initialMs;
  }

  /** The delay the next `wait()` sleeps. */
  get nextMs(): number {
    return this.#nextMs;
  }

  async wait(): Promise<void> {
    const ms = this.#nextMs;
    this.#nextMs = Math.min(ms * 2, this.#settings.maxMs);
    await delay(ms);
  }

  reset(): void {
    this.#nextMs = this.#settings.initialMs;
  }
}

/** Resolves on the next event-loop turn, after the I/O that is ready now (setImmediate). */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Cuts long synchronous work into slices: `pause()` yields to the event loop once the
 * current slice has run `sliceMs`, so a message that arrives meanwhile waits at most one
 * slice. Call it between units of work small enough to fit a slice many times over.
 */
export class TimeSlicer {
  readonly #sliceMs: number;
  #startedMs = performance.now();

  constructor(sliceMs: number) {
    this.#sliceMs = sliceMs;
  }

  async pause(): Promise<void> {
    if (performance.now() - this.#startedMs < this.#sliceMs) return;
    await nextTurn();
    this.#startedMs = performance.now();
  }
}

/**
 * A task run every `intervalMs`, and at once on `runOnce`: never two runs at once (a run asked
 * for while one is under way joins it), and `stop` waits for the run in flight. `unref`: the
 * timer does not keep the process alive.
 */
export class Periodic {
  readonly #run: () => Promise<void>;
  readonly #intervalMs: number;
  readonly #unref: boolean;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;

  constructor(run: () => Promise<void>, intervalMs: number, options: { unref?: boolean } = {}) {
    this.#run = run;
    this.#intervalMs = intervalMs;
    this.#unref = options.unref ?? false;
  }

  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => void this.runOnce(), this.#intervalMs);
    if (this.#unref) this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  runOnce(): Promise<void> {
    this.#running ??= this.#run().finally(() => (this.#running = undefined));
    return this.#running;
  }
}

/** `urgent` work not run yet, in arrival order. */
const urgentWork: (() => void)[] = [];

/**
 * Runs `work` in this turn's check phase, and ahead of any TurnQueue item released there: the
 * searches a turn's I/O brought are handed to the index workers before a bulk write holds the
 * thread for milliseconds, not after it (both wait for the check phase, and a release
 * scheduled in the turn before comes first in it).
 */
export function urgent(work: () => void): void {
  if (urgentWork.push(work) === 1) setImmediate(runUrgentWork);
}

function runUrgentWork(): void {
  for (const work of urgentWork.splice(0)) work();
}

/**
 * Lets its waiters go one per event-loop turn, in arrival order, each after that turn's I/O
 * and its `urgent` work: work that holds the thread for milliseconds (decoding a bulk write)
 * queued here cannot delay the I/O callbacks (a search's request or its worker's answer) by
 * more than one item.
 */
export class TurnQueue {
  readonly #waiting: (() => void)[] = [];
  #scheduled = false;

  /** Resolves on a later turn, after every earlier `turn()` has resolved. */
  turn(): Promise<void> {
    const next = deferred();
    this.#waiting.push(next.resolve);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#release);
    }
    return next.promise;
  }

  readonly #release = (): void => {
    runUrgentWork();
    this.#waiting.shift()?.();
    // Scheduled from the check phase, the next release runs on the next turn, after its I/O.
    if (this.#waiting.length > 0) setImmediate(this.#release);
    else this.#scheduled = false;
  };
}

/**
 * Polls `check` every `intervalMs` until it returns a value other than undefined, or throws
 * `onTimeout()` once `timeoutMs` passed: for conditions that no event announces (a replica's
 * heartbeat says it caught up).
 */
export async function pollUntil<T>(check: () => T | undefined | Promise<T | undefined>, options: { timeoutMs: number; intervalMs: number; onTimeout: () => Error }): Promise<T> {
  const deadline = performance.now() + options.timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (performance.now() >= deadline) throw options.onTimeout();
    await delay(options.intervalMs);
  }
}
