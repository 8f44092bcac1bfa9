/**
 * The graph absorber of one index worker: moves fresh rows into the HNSW graphs of the
 * worker's shards in time slices of `sliceMs`, yielding to the worker's message queue between
 * slices (setImmediate). A search therefore waits for at most one slice, never for a whole
 * batch of adds (before this, one 1,000-point entry held the worker for ~300 ms). The shards
 * with rows pending take turns of `turnMs`, many slices each. Applies that found the fresh
 * buffer full wait here until a slice makes room: the back-pressure that reaches the writers.
 * A shard whose graph is being saved leaves the round until the save ends (Graph.saving).
 */
import type { ShardIndex } from "./shard-index.ts";

/** Graph work per slice: a search arriving meanwhile waits at most about this long. */
export const absorbSliceMsDefault = 4;

/**
 * How long one shard absorbs before the next with rows pending. An insert walks its graph's
 * upper layers and hot vectors; a worker that switched graphs every 4 ms slice found them
 * evicted by the other graph's. Two threads building two 250,000 × 128-d graphs each took
 * 417–454 µs of CPU a vector switching every 4 ms, 374–399 µs switching every second (and
 * 418 µs every 5 s: longer turns gained nothing); the index workers of a 1M import into 4
 * shards 424–470 µs, and 365–403 µs in turns of a second (docs/performance.md, "Shards absorb
 * in turns"). A shard whose fresh buffer is full waits for room at most a turn longer.
 */
export const absorbTurnMsDefault = 1_000;

export interface AbsorberOptions {
  sliceMs?: number;
  turnMs?: number;
  /** Without it (tests), one insertion thread. */
  workers?: AbsorbingWorkers;
  /**
   * Runs between the steps of a slice (a few rows each), where the graph and the fresh buffer
   * agree: the worker answers the searches that arrived meanwhile there.
   */
  between?: () => void;
}

/**
 * How many of the pool's workers are absorbing right now, shared by all of them (one Int32 in
 * a SharedArrayBuffer): a worker absorbing alone inserts with every core's thread, so one
 * shard's build uses the whole machine; several share the cores instead of oversubscribing.
 */
export class AbsorbingWorkers {
  readonly #count: Int32Array;
  readonly #cores: number;

  constructor(shared: SharedArrayBuffer, cores: number) {
    this.#count = new Int32Array(shared, 0, 1);
    this.#cores = Math.max(1, cores);
  }

  static buffer(): SharedArrayBuffer {
    return new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT);
  }

  enter(): void {
    Atomics.add(this.#count, 0, 1);
  }

  leave(): void {
    Atomics.sub(this.#count, 0, 1);
  }

  /** Insertion threads for one of the absorbing workers. */
  threads(): number {
    return Math.max(1, Math.floor(this.#cores / Math.max(1, Atomics.load(this.#count, 0))));
  }
}

export class Absorber {
  readonly #sliceMs: number;
  readonly #turnMs: number;
  readonly #workers: AbsorbingWorkers | undefined;
  readonly #between: (() => void) | undefined;
  readonly #shards = new Set<ShardIndex>();
  readonly #roomWaiters = new Map<ShardIndex, (() => void)[]>();
  /** Shards out of the round until their graph's save ends. */
  readonly #waitingForSave = new Set<ShardIndex>();
  #order: ShardIndex[] = [];
  #next = 0;
  #turn: { shard: ShardIndex; endsAtMs: number } | undefined;
  #scheduled = false;

  constructor(options: AbsorberOptions = {}) {
    this.#sliceMs = options.sliceMs ?? absorbSliceMsDefault;
    this.#turnMs = options.turnMs ?? absorbTurnMsDefault;
    this.#workers = options.workers;
    this.#between = options.between;
  }

  /** Resolves once `shard` has room in its fresh buffer (at once if it has). */
  room(shard: ShardIndex): Promise<void> {
    if (shard.hasRoom) return Promise.resolve();
    this.wake(shard);
    return new Promise((resolve) => {
      const waiters = this.#roomWaiters.get(shard) ?? [];
      waiters.push(resolve);
      this.#roomWaiters.set(shard, waiters);
    });
  }

  /** `shard` has rows to absorb. */
  wake(shard: ShardIndex): void {
    if (shard.pendingRows === 0 || this.#waitingForSave.has(shard)) return;
    const saving = shard.graph.saving;
    if (saving) {
      this.#waitingForSave.add(shard);
      // A failed save is the saver's to report; the rows are absorbed either way.
      const resume = (): void => {
        this.#waitingForSave.delete(shard);
        if (!shard.closed) this.wake(shard);
      };
      void saving.then(resume, resume);
      return;
    }
    if (!this.#shards.has(shard)) {
      this.#shards.add(shard);
      this.#order = [...this.#shards];
    }
    if (!this.#scheduled) {
      this.#scheduled = true;
      this.#workers?.enter();
      setImmediate(this.#slice);
    }
  }

  /** Forgets a closed shard; its room waiters are released (their apply then fails: the shard is gone). */
  forget(shard: ShardIndex): void {
    this.#leave(shard);
    this.#release(shard);
  }

  readonly #slice = (): void => {
    const shard = this.#turnShard();
    if (shard) {
      const saving = shard.graph.saving !== undefined;
      const more = !saving && shard.absorb(performance.now() + this.#sliceMs, this.#workers?.threads() ?? 1, this.#between);
      if (shard.hasRoom) this.#release(shard);
      if (!more) this.#leave(shard);
      if (saving) this.wake(shard);
    }
    if (this.#order.length > 0) {
      setImmediate(this.#slice);
      return;
    }
    this.#scheduled = false;
    this.#workers?.leave();
  };

  /** Takes `shard` out of the round, ending its turn (a closed shard is not held here). */
  #leave(shard: ShardIndex): void {
    this.#shards.delete(shard);
    this.#order = [...this.#shards];
    if (this.#turn?.shard === shard) this.#turn = undefined;
  }

  /** The shard whose turn it is: the current one until its turn ends or it leaves the round. */
  #turnShard(): ShardIndex | undefined {
    const now = performance.now();
    const turn = this.#turn;
    if (turn && now < turn.endsAtMs) return turn.shard;
    if (this.#order.length === 0) return undefined;
    const shard = this.#order[this.#next++ % this.#order.length]!;
    this.#turn = { shard, endsAtMs: now + this.#turnMs };
    return shard;
  }

  #release(shard: ShardIndex): void {
    const waiters = this.#roomWaiters.get(shard);
    if (!waiters) return;
    this.#roomWaiters.delete(shard);
    for (const resolve of waiters) resolve();
  }
}
