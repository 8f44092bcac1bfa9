/**
 * The graph absorber of one index worker: moves fresh rows into the HNSW graphs of the
 * worker's shards in time slices of `sliceMs`, round-robin over the shards with rows
 * pending, yielding to the worker's message queue between slices (setImmediate). A search
 * therefore waits for at most one slice, never for a whole batch of adds (before this, one
 * 1,000-point entry held the worker for ~300 ms). Applies that found the fresh buffer full
 * wait here until a slice makes room: the back-pressure that reaches the writers. A shard
 * whose graph is being saved leaves the round until the save ends (Graph.saving).
 */
import type { ShardIndex } from "./shard-index.ts";

/** Graph work per slice: a search arriving meanwhile waits at most about this long. */
export const absorbSliceMsDefault = 4;

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
  readonly #workers: AbsorbingWorkers | undefined;
  readonly #between: (() => void) | undefined;
  readonly #shards = new Set<ShardIndex>();
  readonly #roomWaiters = new Map<ShardIndex, (() => void)[]>();
  /** Shards out of the round until their graph's save ends. */
  readonly #waitingForSave = new Set<ShardIndex>();
  #order: ShardIndex[] = [];
  #next = 0;
  #scheduled = false;

  /**
   * Without `workers` (tests), one insertion thread. `between` runs between the steps of a
   * slice (a few rows each), where the graph and the fresh buffer agree: the worker answers the
   * searches that arrived meanwhile there.
   */
  constructor(sliceMs = absorbSliceMsDefault, workers?: AbsorbingWorkers, between?: () => void) {
    this.#sliceMs = sliceMs;
    this.#workers = workers;
    this.#between = between;
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
    this.#shards.delete(shard);
    this.#order = [...this.#shards];
    this.#release(shard);
  }

  readonly #slice = (): void => {
    if (this.#order.length > 0) {
      const shard = this.#order[this.#next++ % this.#order.length]!;
      const saving = shard.graph.saving !== undefined;
      const more = !saving && shard.absorb(performance.now() + this.#sliceMs, this.#workers?.threads() ?? 1, this.#between);
      if (shard.hasRoom) this.#release(shard);
      if (!more) {
        this.#shards.delete(shard);
        this.#order = [...this.#shards];
      }
      if (saving) this.wake(shard);
    }
    if (this.#order.length > 0) {
      setImmediate(this.#slice);
      return;
    }
    this.#scheduled = false;
    this.#workers?.leave();
  };

  #release(shard: ShardIndex): void {
    const waiters = this.#roomWaiters.get(shard);
    if (!waiters) return;
    this.#roomWaiters.delete(shard);
    for (const resolve of waiters) resolve();
  }
}
