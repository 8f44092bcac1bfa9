/**
 * Write back-pressure: per shard, the bytes the writers are ahead of the shard's graph. That is
 * this node's log entries no replica has applied yet (in flight to JetStream, or acknowledged
 * and waiting in the log), plus the vectors the leading replica applied that its graph has not
 * absorbed (its fresh buffer, from its notices: applied-tracker.ts). A write whose entry would
 * push that past the bound waits until the graph catches up, and is refused `rate_limited`
 * (retryable) if its deadline passes first. So when the index falls behind, writes slow to its
 * pace, memory stays bounded, and an acknowledged point is applied, searchable, at once: the
 * bound counts the fresh buffer, so the replica's buffer has room for what was acknowledged.
 *
 * The bound has two levels. A burst may run `burstBytesMax` ahead: it is acknowledged as fast as
 * the log takes it and searched exactly in the fresh buffers until the graph absorbs it. A shard
 * that stayed more than `sustainedBytesMax` ahead for `sustainAfterMs` is in a sustained import,
 * and is held to that: every search scans every fresh buffer, and full ones cost the graphs'
 * absorption and the searches' latency (docs/performance.md, "Writers pace on the fresh
 * buffers"). It gets its burst bound back once it stayed under half of that for `burstAgainAfterMs`.
 *
 * Each node bounds its own entries (it knows their sizes); N writing nodes hold at most N bounds
 * per shard. One entry is always let through when nothing is ahead, however large, so a write
 * never waits for nothing.
 */
import { deferred, withDeadline, type Deferred } from "../../runtime/async.ts";
import { ErrorCode, JadeError } from "../../runtime/errors.ts";
import type { CollectionConfig } from "../../runtime/schemas.ts";
import { shardKey } from "../../runtime/subjects.ts";
import { freshBytesMaxDefault } from "../vector-index/shard-index.ts";
import type { AppliedTracker } from "./applied-tracker.ts";

export interface PaceSettings {
  /** How far a sustained import may run ahead of a shard's graph. */
  sustainedBytesMax: number;
  /** How far a burst may. */
  burstBytesMax: number;
  sustainAfterMs: number;
  burstAgainAfterMs: number;
}

export const paceDefaults: PaceSettings = {
  // ~8,000 points of 128-d a shard: what every search scans exactly per shard during a sustained
  // import, and room for a few of the graph's turns (absorber.ts: ~1 MiB a turn at 1M × 128-d,
  // 4 shards, 2 cores).
  sustainedBytesMax: 4 * 1024 * 1024,
  // What a fresh buffer holds, so every acknowledged point finds room there: a 100,000 × 128-d
  // burst into 4 shards is ~13 MiB a shard.
  burstBytesMax: freshBytesMaxDefault,
  // The burst at ~40,000 points a second is 2.5 s long: well inside.
  sustainAfterMs: 5_000,
  burstAgainAfterMs: 5_000,
};

function checkPaceSettings(settings: PaceSettings): void {
  const { sustainedBytesMax, burstBytesMax, sustainAfterMs, burstAgainAfterMs } = settings;
  if (!(sustainedBytesMax > 0)) throw new Error(`backlog bound must be positive, got ${sustainedBytesMax}`);
  if (!(burstBytesMax >= sustainedBytesMax)) throw new Error(`burst bound ${burstBytesMax} is under the sustained bound ${sustainedBytesMax}`);
  if (!(sustainAfterMs >= 0 && burstAgainAfterMs >= 0)) throw new Error("pace durations must not be negative");
}

/** Which bound a shard's writes are held to, from what was seen of how far ahead they were. */
export interface PaceMode {
  sustained: boolean;
  /** Since when the shard was seen over the sustained bound without a break (undefined: it is not). */
  overSinceMs: number | undefined;
  /** When it was last seen over half the sustained bound. */
  busyAtMs: number;
}

export function paceMode(): PaceMode {
  return { sustained: false, overSinceMs: undefined, busyAtMs: Number.NEGATIVE_INFINITY };
}

/**
 * Notes that the shard's writers were `aheadBytes` ahead at `nowMs` (`writing`: seen by a write
 * waiting to be let through, not by a replica's notice); returns the bound they are held to now.
 * Only a write turns a shard sustained: a burst that ended leaves its shard ahead while the graph
 * absorbs it, and is no sustained import until more writes come.
 */
export function observeAhead(mode: PaceMode, aheadBytes: number, nowMs: number, writing: boolean, settings: PaceSettings): number {
  if (aheadBytes > settings.sustainedBytesMax / 2) mode.busyAtMs = nowMs;
  if (aheadBytes <= settings.sustainedBytesMax) mode.overSinceMs = undefined;
  else if (writing) mode.overSinceMs ??= nowMs;
  if (mode.sustained) {
    if (nowMs - mode.busyAtMs >= settings.burstAgainAfterMs) mode.sustained = false;
  } else if (writing && mode.overSinceMs !== undefined && nowMs - mode.overSinceMs >= settings.sustainAfterMs) {
    mode.sustained = true;
  }
  return mode.sustained ? settings.sustainedBytesMax : settings.burstBytesMax;
}

interface Ledger {
  uid: string;
  /** Bytes reserved by writes whose entry is not acknowledged yet. */
  inflightBytes: number;
  /** Acknowledged entries no replica has reported applying, oldest first. */
  entries: { seq: number; bytes: number }[];
  pendingBytes: number;
  mode: PaceMode;
  /** Resolved (and replaced) at every change: a release, or a replica's progress. */
  changed: Deferred<void>;
}

/** What a reservation is settled with: the entry's sequence once acknowledged, undefined if it failed. */
export type Release = (seq: number | undefined) => void;

export class ShardBacklog {
  readonly #tracker: AppliedTracker;
  readonly #settings: PaceSettings;
  readonly #nowMs: () => number;
  readonly #ledgers = new Map<string, Ledger>();

  /** `nowMs`: the clock the tracker's reports are timed by. */
  constructor(tracker: AppliedTracker, settings: PaceSettings = paceDefaults, nowMs = () => performance.now()) {
    checkPaceSettings(settings);
    this.#tracker = tracker;
    this.#settings = settings;
    this.#nowMs = nowMs;
    tracker.onProgress((collection, shard) => {
      const ledger = this.#ledgers.get(shardKey(collection, shard));
      if (!ledger) return;
      // Seen while the graph absorbs, too: a shard that drained gets its burst bound back without a write to notice.
      this.#ahead(ledger, collection, shard, false);
      wake(ledger);
    });
  }

  /** Waits until `bytes` more fit in the shard's bound (or `deadline`, then rate_limited); returns the release. */
  async reserve(config: CollectionConfig, shard: number, bytes: number, deadline: number): Promise<Release> {
    const ledger = this.#ledger(config, shard);
    for (;;) {
      const { aheadBytes, boundBytes } = this.#ahead(ledger, config.name, shard, true);
      if (aheadBytes === 0 || aheadBytes + bytes <= boundBytes) break;
      const remainingMs = deadline - performance.now();
      if (remainingMs <= 0) throw behind(config, shard, aheadBytes);
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

  /** How far this node's writes to the shard are ahead of its graph now, and the bound they are held to. */
  #ahead(ledger: Ledger, collection: string, shard: number, writing: boolean): { aheadBytes: number; boundBytes: number } {
    const nowMs = this.#nowMs();
    const leading = this.#tracker.leading(collection, shard);
    this.#prune(ledger, leading.seq);
    const aheadBytes = ledger.inflightBytes + ledger.pendingBytes + leading.freshBytes;
    return { aheadBytes, boundBytes: observeAhead(ledger.mode, aheadBytes, nowMs, writing, this.#settings) };
  }

  #ledger(config: CollectionConfig, shard: number): Ledger {
    const key = shardKey(config.name, shard);
    let ledger = this.#ledgers.get(key);
    // A re-created collection starts its logs over: its predecessor's entries mean nothing.
    if (!ledger || ledger.uid !== config.uid) {
      ledger = { uid: config.uid, inflightBytes: 0, entries: [], pendingBytes: 0, mode: paceMode(), changed: deferred() };
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

function behind(config: CollectionConfig, shard: number, aheadBytes: number): JadeError {
  const mib = (aheadBytes / 1024 / 1024).toFixed(1);
  return new JadeError(ErrorCode.RateLimited, `shard ${shard} of ${config.name} is ${mib} MiB behind the writes: its index is absorbing; retry later`, {
    details: { shard, backlogBytes: aheadBytes },
  });
}
