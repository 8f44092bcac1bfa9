/**
 * Mutual exclusion inside one process: sections run one at a time per key, in call order.
 * A failed section does not block the next one; a key with nothing running holds no memory.
 */
export class KeyedMutex<K = string> {
  /** Per key: the tail of its chain of sections, settled when the last queued one has. */
  readonly #tails = new Map<K, Promise<void>>();

  run<T>(key: K, section: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const result = previous.then(section);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return result;
  }

  /** Keys with a section running or queued. */
  get busyKeys(): number {
    return this.#tails.size;
  }
}

/** One lock: a KeyedMutex with a single key. */
export class Mutex {
  readonly #mutex = new KeyedMutex<0>();

  run<T>(section: () => Promise<T>): Promise<T> {
    return this.#mutex.run(0, section);
  }
}
