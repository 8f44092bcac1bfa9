/**
 * Write back-pressure: per shard, the bytes of this node's log entries that no replica has
 * applied yet (in flight to JetStream, or acknowledged and waiting in the log). A write
 * whose entry would push that past `backlogBytesMax` waits until replicas catch up, and is
 * refused `rate_limited` (retryable) if its deadline passes first. Replicas apply into the
 * fresh buffer (searchable at once) until it is full, and the buffer drains only as fast as
 * the graph absorbs: so when the index falls behind, writes slow to its pace, and an
 * acknowledged point waits at most backlog ÷ apply rate before it is searchable.
 *
 * Each node bounds its own entries (it knows their sizes); N writing nodes hold at most N
 * bounds per shard. One entry is always let through, however large, so a write never waits
 * for nothing.
 */
import { deferred, withDeadline, type Deferred } from "../../runtime/async.ts";
import { ErrorCode, JadeError } from "../../runtime/errors.ts";
import type { CollectionConfig } from "../../runtime/schemas.ts";
import { shardKey } from "../../runtime/subjects.ts";
import type { AppliedTracker } from "./applied-tracker.ts";

/**
 * 4 MiB per shard: with 128-d vectors about 8,000 points. Once the fresh buffer is full, an
 * acknowledged point waits this many bytes ÷ the shard's absorb rate to be searchable: at
 * 8 MiB and ~1,000 points/s per shard (1M × 128-d, 4 shards, 2 cores) that was up to 18–23 s.
 * A burst below the fresh buffer's bound (16 MiB) is applied at once whatever this is.
 */
export const shardBacklogBytesMaxDefault = 4 * 1024 * 1024;

interface Ledger {
  uid: string;
  /** Bytes reserved by writes whose entry is not acknowledged yet. */
  inflightBytes: number;
  /** Acknowledged entries no replica has reported applying, oldest first. */
  entries: { seq: number; bytes: number }[];
  pendingBytes: number;
  /** Resolved (and replaced) at every change: a release, or a replica's progress. */
  changed: Deferred<void>;
}

/** What a reservation is settled with: the entry's sequence once acknowledged, undefined if it failed. */
export type Release = (seq: number | undefined) => void;

export class ShardBacklog {
  readonly #tracker: AppliedTracker;
  readonly #bytesMax: number;
  readonly #ledgers = new Map<string, Ledger>();

  constructor(tracker: AppliedTracker, bytesMax = shardBacklogBytesMaxDefault) {
    if (!(bytesMax > 0)) throw new Error(`backlog bound must be positive, got ${bytesMax}`);
    this.#tracker = tracker;
    this.#bytesMax = bytesMax;
    tracker.onProgress((collection, shard) => {
      const ledger = this.#ledgers.get(shardKey(collection, shard));
      if (ledger && ledger.entries.length > 0) wake(ledger);
    });
  }

  /** Waits until `bytes` more fit in the shard's backlog (or `deadline`, then rate_limited); returns the release. */
  async reserve(config: CollectionConfig, shard: number, bytes: number, deadline: number): Promise<Release> {
    const ledger = this.#ledger(config, shard);
    for (;;) {
      this.#prune(ledger, this.#tracker.appliedMax(config.name, shard));
      const held = ledger.inflightBytes + ledger.pendingBytes;
      if (held === 0 || held + bytes <= this.#bytesMax) break;
      const remainingMs = deadline - performance.now();
      if (remainingMs <= 0) throw behind(config, shard, held);
      await withDeadline(ledger.changed.promise, remainingMs, () => new Error("deadline")).catch(() => undefined);
    }
    ledger.inflightBytes += bytes;
    let settled = false;
    return (seq) => {
      if (settled) return;
      settled = true;
      ledger.inflightBytes -= bytes;
      if (seq !== undefined) {
        ledger.entries.push({ seq, bytes });
        ledger.pendingBytes += bytes;
      }
      wake(ledger);
    };
  }

  #ledger(config: CollectionConfig, shard: number): Ledger {
    const key = shardKey(config.name, shard);
    let ledger = this.#ledgers.get(key);
    // A re-created collection starts its logs over: its predecessor's entries mean nothing.
    if (!ledger || ledger.uid !== config.uid) {
      ledger = { uid: config.uid, inflightBytes: 0, entries: [], pendingBytes: 0, changed: deferred() };
      this.#ledgers.set(key, ledger);
    }
    return ledger;
  }

  #prune(ledger: Ledger, appliedSeq: number): void {
    let drop = 0;
    while (drop < ledger.entries.length && ledger.entries[drop]!.seq <= appliedSeq) ledger.pendingBytes -= ledger.entries[drop++]!.bytes;
    if (drop > 0) ledger.entries.splice(0, drop);
  }
}

function wake(ledger: Ledger): void {
  const changed = ledger.changed;
  ledger.changed = deferred();
  changed.resolve();
}

function behind(config: CollectionConfig, shard: number, heldBytes: number): JadeError {
  const mib = (heldBytes / 1024 / 1024).toFixed(1);
  return new JadeError(ErrorCode.RateLimited, `shard ${shard} of ${config.name} is ${mib} MiB behind the writes: its index is absorbing; retry later`, {
    details: { shard, backlogBytes: heldBytes },
  });
}
