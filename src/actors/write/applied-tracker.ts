/**
 * Tracks how far each replica of each shard has applied its log, from the
 * `jade.applied.<collection>.<shard>` notices replicas publish, so a write with
 * consistency one|quorum|all can wait until enough replicas applied it.
 */
import type { NatsConnection, Subscription } from "@nats-io/nats-core";
import { ErrorCode, JadeError } from "../../runtime/errors.ts";
import { parseAppliedSubject, shardKey, shardKeyPrefix, subjects } from "../../runtime/subjects.ts";

interface Waiter {
  seq: number;
  replicas: number;
  resolve: () => void;
}

export const trackerWaitersMax = 10_000;

/** Told of every replica's progress (the writers' back-pressure listens). */
export type ProgressListener = (collection: string, shard: number) => void;

export class AppliedTracker {
  /** shardKey(collection, shard) → node → applied sequence. */
  readonly #applied = new Map<string, Map<string, number>>();
  readonly #listeners: ProgressListener[] = [];
  readonly #waiters = new Map<string, Set<Waiter>>();
  #waiterCount = 0;
  #sub: Subscription | undefined;

  start(nc: NatsConnection): void {
    this.#sub = nc.subscribe(subjects.appliedWildcard, {
      callback: (err, msg) => {
        if (err) return;
        const where = parseAppliedSubject(msg.subject);
        if (!where) return;
        try {
          const notice = msg.json<{ node: string; seq: number }>();
          if (typeof notice.node === "string" && Number.isInteger(notice.seq)) {
            this.record(where.collection, where.shard, notice.node, notice.seq);
          }
        } catch {
          // Not ours to answer: a malformed notice is ignored.
        }
      },
    });
  }

  stop(): void {
    this.#sub?.unsubscribe();
  }

  record(collection: string, shard: number, node: string, seq: number): void {
    const key = shardKey(collection, shard);
    let nodes = this.#applied.get(key);
    if (!nodes) this.#applied.set(key, (nodes = new Map()));
    if ((nodes.get(node) ?? 0) >= seq) return;
    nodes.set(node, seq);
    for (const listener of this.#listeners) listener(collection, shard);
    const waiters = this.#waiters.get(key);
    if (!waiters) return;
    for (const w of waiters) {
      if (this.#count(nodes, w.seq) >= w.replicas) {
        waiters.delete(w);
        this.#waiterCount--;
        w.resolve();
      }
    }
  }

  onProgress(listener: ProgressListener): void {
    this.#listeners.push(listener);
  }

  /** The highest sequence any replica of the shard reported applying (0 when none did). */
  appliedMax(collection: string, shard: number): number {
    let max = 0;
    for (const seq of this.#applied.get(shardKey(collection, shard))?.values() ?? []) if (seq > max) max = seq;
    return max;
  }

  /** Forgets a collection (dropped: its next incarnation's logs restart at 1). */
  forget(collection: string): void {
    for (const key of [...this.#applied.keys()]) if (key.startsWith(shardKeyPrefix(collection))) this.#applied.delete(key);
  }

  wait(collection: string, shard: number, seq: number, replicas: number, timeoutMs: number): Promise<void> {
    const key = shardKey(collection, shard);
    if (this.#count(this.#applied.get(key), seq) >= replicas) return Promise.resolve();
    if (this.#waiterCount >= trackerWaitersMax) {
      return Promise.reject(new JadeError(ErrorCode.RateLimited, "too many writes waiting for replicas"));
    }
    return new Promise((resolve, reject) => {
      let set = this.#waiters.get(key);
      if (!set) this.#waiters.set(key, (set = new Set()));
      const waiters = set;
      const timer = setTimeout(() => {
        if (!waiters.delete(waiter)) return;
        this.#waiterCount--;
        reject(
          new JadeError(ErrorCode.Timeout, `write is durable in the log but ${replicas} replica(s) of shard ${shard} did not apply it within ${timeoutMs} ms`, {
            details: { shard, seq, durable: true },
          }),
        );
      }, timeoutMs);
      const waiter: Waiter = { seq, replicas, resolve: () => (clearTimeout(timer), resolve()) };
      waiters.add(waiter);
      this.#waiterCount++;
    });
  }

  #count(nodes: Map<string, number> | undefined, seq: number): number {
    let n = 0;
    for (const applied of nodes?.values() ?? []) if (applied >= seq) n++;
    return n;
  }
}
