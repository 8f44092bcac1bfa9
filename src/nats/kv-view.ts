/**
 * A live, decoded view of one KV bucket: a single watch feeding a cache of
 * key → {value, revision}, and listeners told of every change. The catalog,
 * the placements, membership, the client's node tracker and the coordinator's
 * lease all read their bucket through it, so the hot path never waits on KV.
 */
import type { KvEntry, KvWatchEntry } from "@nats-io/kv";
import type { ListedKv } from "./kv-keys.ts";
import { TimeoutError } from "@nats-io/nats-core";
import { deferred, withDeadline } from "../runtime/async.ts";
import { errorMessage, isNatsUnanswered } from "../runtime/errors.ts";
import type { Logger } from "../runtime/log.ts";

/**
 * How long one try at starting a watch may take, and all of them together. Measured on
 * nats-server 2.9.10 with one of three servers down: 3 of 6 `kv.watch()` calls never answered
 * (timing out after the client's 5 s; a `status()` once too, while JetStream re-elected its
 * leaders), each new attempt a fresh draw, while an answered one took 3–6 ms. The server puts
 * the watch's one-replica consumer on a random peer of the stream, a dead one included (see
 * nats/kv-keys.ts). Without retries a node could not start during a rolling restart that
 * followed a NATS server's crash; with 5 s per miss its start took 36 s. Eight tries were not
 * enough once: a node missed seven in a row and exited (CI, 2026-12-06). At a third missed,
 * 40 tries all miss about once in 10^19.
 */
const watchCreateMsMax = 1_500;
const watchStartMsMax = 60_000;

/**
 * How often a view compares what its watch delivered with the stream's last sequence. Measured
 * here: a watch whose consumer was lost (its server killed, or the consumer deleted) saw the
 * next write after 60 s, and after 90 s the second time: nats.js notices a dead ordered consumer
 * by two missed 30 s heartbeats. In a chaos run a node so missed a placement change for 77 s.
 * A write not delivered by the next check restarts the watch: within two intervals.
 */
const watchCheckIntervalMs = 2_000;

export interface Versioned<T> {
  value: T;
  revision: number;
}

/** A key moved to a newer revision; `value` is undefined when it was deleted or purged. */
export interface KvChange<T> {
  key: string;
  revision: number;
  value: T | undefined;
  previous: T | undefined;
}

/** What a decoder reads of an entry: a watch's, or `ListedKv.latest`'s. */
export type KvEntryData = Pick<KvEntry, "key" | "json" | "string">;

export interface KvViewOptions<T> {
  /** Turns a PUT entry into a value, throwing when it cannot: typically `Schema.parse(entry.json())`. */
  decode: (entry: KvEntryData) => T;
  /** Where undecodable entries and a dying watch are reported; without it they pass silently. */
  log?: Logger;
}

export class KvView<T extends NonNullable<unknown>> {
  readonly #kv: ListedKv;
  readonly #decode: (entry: KvEntryData) => T;
  readonly #log: Logger | undefined;
  readonly #entries = new Map<string, Versioned<T>>();
  /** Every key's newest revision seen, deleted keys included: nothing older is ever applied. */
  readonly #revisions = new Map<string, number>();
  readonly #listeners = new Set<(change: KvChange<T>) => void>();
  #stopWatch: () => void = () => undefined;
  #loop: Promise<void> = Promise.resolve();
  #lastDeliveryMs = performance.now();
  /** The newest revision the watch delivered (any key, skipped ones too). */
  #seenSeq = 0;
  /** The stream's last sequence at the previous check, when the watch had not delivered it. */
  #behindSeq: number | undefined;
  #checker: NodeJS.Timeout | undefined;
  #checking = false;
  #stopped = false;

  constructor(kv: ListedKv, options: KvViewOptions<T>) {
    this.#kv = kv;
    this.#decode = options.decode;
    this.#log = options.log;
  }

  /**
   * Starts the watch; resolves once the entries present at the start are cached.
   *
   * nats.js 3.4 has no "initialized" callback: the watch snapshots the consumer's
   * `num_pending` (the last message of every key, delete and purge markers included) and
   * flags the entry that completes that count with `isUpdate`; it also carries `delta` = 0
   * (nothing pending). Measured on nats-server 2.9.10: only deleted keys → the DEL markers
   * are delivered, the last with delta 0; history of 5 revisions per key → one entry per
   * key, the last with delta 0, while `status().values` counts every stored message (10).
   * An empty bucket (never written, `purgeDeletes`-ed, or all expired by max age) delivers
   * nothing: then `status().values` is 0. That test holds only for a watch of the whole
   * bucket (a watch of one key with other keys stored: values 1, nothing delivered), hence no
   * key filter here. It is read after the watch exists: a write racing it either lands
   * before (counted, then delivered flagged) or after (values 0, and it is an update).
   */
  async start(): Promise<void> {
    await this.#startWatch();
    // Not a reason to keep a process alive: the connection is.
    this.#checker ??= setInterval(() => void this.#check(), watchCheckIntervalMs).unref();
  }

  async #startWatch(): Promise<void> {
    const deadline = performance.now() + watchStartMsMax;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#startOnce();
      } catch (err) {
        // Stopped meanwhile (a node shutting down as it starts): no more tries.
        if (this.#stopped || performance.now() + watchCreateMsMax > deadline || !isNatsUnanswered(err)) throw err;
        this.#log?.warn({ attempt, err: errorMessage(err) }, "KV watch not created in time; trying again");
      }
    }
  }

  async #startOnce(): Promise<void> {
    const creating = this.#kv.watch();
    const watch = await withDeadline(creating, watchCreateMsMax, () => new TimeoutError()).catch((err: unknown) => {
      // One that answers after all is stopped, not leaked.
      void creating.then((late) => late.stop()).catch(() => undefined);
      throw err;
    });
    this.#stopWatch = () => watch.stop();
    let empty: boolean;
    try {
      empty = (await this.#kv.status()).values === 0;
    } catch (err) {
      watch.stop();
      throw err;
    }
    const ready = deferred();
    if (empty) ready.resolve();
    this.#loop = (async () => {
      for await (const entry of watch) {
        this.#lastDeliveryMs = performance.now();
        this.#receive(entry);
        // isUpdate alone misses the end when a counted entry expired before delivery; delta
        // alone comes late when writes keep arriving during the load.
        if (entry.isUpdate || entry.delta === 0) ready.resolve();
      }
      ready.resolve();
    })().catch((err: unknown) => {
      ready.reject(err);
      this.#log?.error({ err: errorMessage(err) }, "KV watch ended");
    });
    await ready.promise;
  }

  /** Ends the watch; resolves when its loop has finished (no listener is called after). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#checker);
    this.#stopWatch();
    await this.#loop;
  }

  /**
   * Restarts the watch when the stream holds a write it did not deliver by the previous check.
   * Once restarted, what the stream held then counts as seen: the new watch delivered every key
   * as it is, and a newest message purged before delivery cannot restart it again.
   */
  async #check(): Promise<void> {
    if (this.#checking || this.#stopped) return;
    this.#checking = true;
    try {
      const { last_seq: lastSeq, messages } = (await this.#kv.status()).streamInfo.state;
      const behind = this.#behindSeq;
      // An empty stream (all expired, or purged) has nothing to deliver, whatever its last sequence.
      this.#behindSeq = messages > 0 && lastSeq > this.#seenSeq ? lastSeq : undefined;
      if (behind === undefined || this.#seenSeq >= behind || this.#stopped) return;
      this.#log?.warn({ seenSeq: this.#seenSeq, lastSeq }, "KV watch stalled; restarting it");
      this.#stopWatch();
      await this.#loop;
      if (this.#stopped) return;
      await this.#startWatch();
      // Stopped meanwhile: the new watch goes too.
      if (this.#stopped) return this.#stopWatch();
      this.#seenSeq = Math.max(this.#seenSeq, lastSeq);
      this.#behindSeq = undefined;
    } catch (err) {
      // NATS unreachable: the next check tries again.
      this.#log?.debug({ err: errorMessage(err) }, "KV watch check failed");
    } finally {
      this.#checking = false;
    }
  }

  get(key: string): Versioned<T> | undefined {
    return this.#entries.get(key);
  }

  entries(): [string, Versioned<T>][] {
    return [...this.#entries];
  }

  values(): T[] {
    return [...this.#entries.values()].map((e) => e.value);
  }

  /** performance.now() when the watch last delivered anything: a stalled watch stops moving it. */
  get lastDeliveryMs(): number {
    return this.#lastDeliveryMs;
  }

  /** The key's value straight from KV, bypassing the cache: for a write the watch has not delivered yet. */
  async read(key: string): Promise<Versioned<T> | undefined> {
    // The leader's: a direct get (`kv.get`) may be answered by a replica still without the write.
    const entry = await this.#kv.latest(key);
    if (entry === null || entry.operation !== "PUT") return undefined;
    try {
      return { value: this.#decode(entry), revision: entry.revision };
    } catch {
      // The watch reported it once; reads of the same bad entry stay quiet.
      return undefined;
    }
  }

  /** Caches our own write at once, so the writer's next decision sees it before the watch delivers it. */
  applyOwnWrite(key: string, value: T, revision: number): void {
    if (revision > (this.#revisions.get(key) ?? 0)) this.#set(key, value, revision);
  }

  /**
   * Forgets a key we deleted, at once. KV deletes return no revision, so the key stays at its
   * last known one: a later write by another node would show until our marker arrives.
   */
  applyOwnDelete(key: string): void {
    const current = this.#entries.get(key);
    if (current === undefined) return;
    this.#entries.delete(key);
    this.#emit({ key, revision: current.revision, value: undefined, previous: current.value });
  }

  onChange(listener: (change: KvChange<T>) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #receive(entry: KvWatchEntry): void {
    this.#seenSeq = Math.max(this.#seenSeq, entry.revision);
    if (entry.revision <= (this.#revisions.get(entry.key) ?? 0)) return;
    if (entry.operation !== "PUT") return this.#set(entry.key, undefined, entry.revision);
    let value: T;
    try {
      value = this.#decode(entry);
    } catch (err) {
      this.#log?.warn({ key: entry.key, revision: entry.revision, err: errorMessage(err) }, "undecodable KV entry skipped");
      return;
    }
    this.#set(entry.key, value, entry.revision);
  }

  #set(key: string, value: T | undefined, revision: number): void {
    const previous = this.#entries.get(key)?.value;
    this.#revisions.set(key, revision);
    if (value === undefined) this.#entries.delete(key);
    else this.#entries.set(key, { value, revision });
    this.#emit({ key, revision, value, previous });
  }

  #emit(change: KvChange<T>): void {
    for (const listener of this.#listeners) {
      try {
        listener(change);
      } catch (err) {
        // A listener's bug must not end the watch every other reader depends on.
        this.#log?.error({ key: change.key, err: errorMessage(err) }, "KV change listener failed");
      }
    }
  }
}
