/**
 * Tracks how far each replica of each shard has applied its log, and how full its fresh
 * buffer is, from the `jade.applied.<collection>.<shard>` notices replicas publish
 * (runtime/applied-notice.ts), so a write with consistency one|quorum|all can wait until
 * enough replicas applied it, and the writers pace on the leading replica (pace.ts).
 */
import type { NatsConnection, Subscription } from "@nats-io/nats-core";
import { parseAppliedNotice } from "../../runtime/applied-notice.ts";
import { ErrorCode, JadeError } from "../../runtime/errors.ts";
import { parseAppliedSubject, shardKey, shardKeyPrefix, subjects } from "../../runtime/subjects.ts";

interface Waiter {
  seq: number;
  replicas: number;
  resolve: () => void;
}

export const trackerWaitersMax = 10_000;

/**
 * A replica's fresh-buffer report older than this is not counted: one whose graph is absorbing
 * reports every 250 ms (replica.ts), so an older one is from a replica that left the shard or
 * stopped, whose last report must not hold the writers for good.
 */
export const freshReportStaleMs = 5_000;

interface ReplicaReport {
  seq: number;
  freshBytes: number;
  /** When the fresh-buffer figure was last reported (performance.now()). */
  atMs: number;
}

/** Told of every replica's progress (the writers' back-pressure listens). */
export type ProgressListener = (collection: string, shard: number) => void;

export class AppliedTracker {
  /** shardKey(collection, shard) → node → its last report. */
  readonly #applied = new Map<string, Map<string, ReplicaReport>>();
  readonly #listeners: ProgressListener[] = [];
  readonly #waiters = new Map<string, Set<Waiter>>();
  #waiterCount = 0;
  #sub: Subscription | undefined;
  readonly #nowMs: () => number;

  constructor(nowMs: () => number = () => performance.now()) {
    this.#nowMs = nowMs;
  }

  start(nc: NatsConnection): void {
    this.#sub = nc.subscribe(subjects.appliedWildcard, {
      callback: (err, msg) => {
        if (err) return;
        const where = parseAppliedSubject(msg.subject);
        if (!where) return;
        // Not ours to answer: a malformed notice is ignored.
        const notice = parseAppliedNotice(msg.data);
        if (notice) this.record(where.collection, where.shard, notice.node, notice.seq, notice.freshBytes ?? 0);
      },
    });
  }

  stop(): void {
    this.#sub?.unsubscribe();
  }

  record(collection: string, shard: number, node: string, seq: number, freshBytes = 0): void {
    const key = shardKey(collection, shard);
    let nodes = this.#applied.get(key);
    if (!nodes) this.#applied.set(key, (nodes = new Map()));
    const last = nodes.get(node);
    // Notices may arrive out of order: a sequence never goes back, and an older notice's fresh figure is not news.
    if (last && last.seq > seq) return;
    nodes.set(node, { seq, freshBytes, atMs: this.#nowMs() });
    if (last && last.seq === seq && last.freshBytes === freshBytes) return;
    for (const listener of this.#listeners) listener(collection, shard);
    if (last && last.seq === seq) return;
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

  /**
   * The leading replica of the shard: the highest sequence applied, and the bytes its fresh
   * buffer held then (of the emptier buffer when two replicas are level; 0 when its report is
   * stale, or none came).
   */
  leading(collection: string, shard: number): { seq: number; freshBytes: number } {
    const nowMs = this.#nowMs();
    let leader: { seq: number; freshBytes: number } | undefined;
    for (const report of this.#applied.get(shardKey(collection, shard))?.values() ?? []) {
      const freshBytes = nowMs - report.atMs <= freshReportStaleMs ? report.freshBytes : 0;
      if (!leader || report.seq > leader.seq || (report.seq === leader.seq && freshBytes < leader.freshBytes)) leader = { seq: report.seq, freshBytes };
    }
    return leader ?? { seq: 0, freshBytes: 0 };
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

  #count(nodes: Map<string, ReplicaReport> | undefined, seq: number): number {
    let n = 0;
    for (const report of nodes?.values() ?? []) if (report.seq >= seq) n++;
    return n;
  }
}
