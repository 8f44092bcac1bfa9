/**
 * Log retention (ARCHITECTURE §4, decision 007): how far a shard log may be purged, and
 * which shared snapshots are still needed. Pure: the coordinator gathers the inputs (the
 * shard's snapshots, what each live replica may still read, the collection's point-in-time
 * window, holds of backups and readers) and acts on the answer.
 *
 * The floor is a log sequence: entries at or below it may be purged, the log keeps
 * floor + 1 onwards. It is the lowest of
 *   - the newest shared snapshot: a replica that starts from nothing restores it and
 *     replays after it (no snapshot yet: nothing is purged); a snapshot it replaced less than
 *     `graceMs` ago counts too, with the log after it, so a restore that was downloading it
 *     when the newer one appeared still finishes (one snapshot interval);
 *   - every live replica's need: its local checkpoint (it restarts from there), or what it
 *     applied when it has none, or 0 while it is being placed (a migration or transfer
 *     that still reads the log from wherever its copy starts);
 *   - the point-in-time window: restoring to any instant in the window needs a snapshot at
 *     or before that instant and the log after it, so the floor is the newest snapshot
 *     saved before the window began (none: the log is kept whole), and a few snapshots
 *     spread over the window are kept so that floor moves on as the window slides;
 *   - holds: a backup or restore in progress keeps the log after what it copies, and the
 *     snapshot it copies.
 * A replica on a node that is gone is not waited for: when it comes back, its checkpoint
 * is older than the log and it restores the shared snapshot instead (restore.ts), and a
 * follower that finds the log purged under it does the same (follow.ts).
 */

/** A shared snapshot of the shard: the sequence it covers and when its upload completed. */
export interface SnapshotAt {
  name: string;
  seq: number;
  savedAtMs: number;
}

/** Newest first: by sequence, then (two of one sequence: a graph saved again) by when it was saved. */
export function newestSnapshotFirst(a: Omit<SnapshotAt, "name">, b: Omit<SnapshotAt, "name">): number {
  return b.seq - a.seq || b.savedAtMs - a.savedAtMs;
}

/** Something that needs the log after `seq` (and, for a backup or restore, the snapshot it copies); `what` names it in status and logs. */
export interface LogNeed {
  what: string;
  seq: number;
  snapshot?: string;
}

export interface FloorInput {
  nowMs: number;
  /** How long a replaced snapshot stays restorable: the collection's snapshot interval. */
  graceMs: number;
  /** The collection's point-in-time window; 0 keeps only what restores need. */
  pointInTimeMs: number;
  snapshots: readonly SnapshotAt[];
  /** Live replicas (placed or being placed) and what each may still read. */
  replicas: readonly LogNeed[];
  holds: readonly LogNeed[];
}

export interface ShardFloor {
  /** Entries at or below this sequence may be purged. */
  seq: number;
  /** What holds the floor where it is. */
  heldBy: string;
  /** Shared snapshots to delete: not the newest, not one replaced within the grace period, not one the point-in-time window keeps. */
  obsoleteSnapshots: string[];
}

export const noSnapshotYet = "no snapshot yet";
export const pointInTimeWindow = "point-in-time window";

/**
 * Snapshots kept inside a point-in-time window, besides the newest: one per this share of the
 * window. Restoring to an instant needs a snapshot before it; as the window slides, the next
 * kept snapshot becomes the base and the floor moves on. So a window holds about this many
 * full copies and up to 1 + 1/this of the window's log.
 */
export const pointInTimeSnapshotsPerWindow = 4;

export function shardFloor(input: FloorInput): ShardFloor {
  const newestFirst = [...input.snapshots].sort(newestSnapshotFirst);
  const newest = newestFirst[0];
  if (newest === undefined) return { seq: 0, heldBy: noSnapshotYet, obsoleteSnapshots: [] };
  // The newest, and those replaced (by the next newer one) within the grace period.
  const restorable = newestFirst.filter((s, i) => i === 0 || newestFirst[i - 1]!.savedAtMs > input.nowMs - input.graceMs);
  const oldestRestorable = restorable[restorable.length - 1]!;
  const needs: LogNeed[] = [{ what: `snapshot ${oldestRestorable.seq}`, seq: oldestRestorable.seq }, ...input.replicas];
  const keep = new Set(restorable.map((s) => s.name));
  if (input.pointInTimeMs > 0) {
    const windowStartMs = input.nowMs - input.pointInTimeMs;
    const base = newestFirst.find((s) => s.savedAtMs <= windowStartMs);
    needs.push({ what: pointInTimeWindow, seq: base?.seq ?? 0 });
    for (const name of spacedFrom(base, newestFirst, input.pointInTimeMs / pointInTimeSnapshotsPerWindow)) keep.add(name);
  }
  needs.push(...input.holds);
  for (const hold of input.holds) if (hold.snapshot !== undefined) keep.add(hold.snapshot);
  const lowest = needs.reduce((low, need) => (need.seq < low.seq ? need : low));
  return {
    seq: Math.max(0, lowest.seq),
    heldBy: lowest.what,
    obsoleteSnapshots: newestFirst.filter((s) => !keep.has(s.name)).map((s) => s.name),
  };
}

/**
 * From `base` (or the oldest snapshot when the window reaches before all of them) on, the
 * snapshots at least `spacingMs` after the previous one kept. Stable from pass to pass: the
 * next base is one of these, and the chain after it is the same.
 */
function spacedFrom(base: SnapshotAt | undefined, newestFirst: readonly SnapshotAt[], spacingMs: number): string[] {
  const oldestFirst = [...newestFirst].reverse();
  const start = base ? oldestFirst.indexOf(base) : 0;
  const kept: string[] = [];
  let lastMs = Number.NEGATIVE_INFINITY;
  for (const snapshot of oldestFirst.slice(start)) {
    if (snapshot.savedAtMs < lastMs + spacingMs) continue;
    kept.push(snapshot.name);
    lastMs = snapshot.savedAtMs;
  }
  return kept;
}

/** Were the log's entries from `neededSeq` on purged? (An emptied log keeps its last sequence.) */
export function logPurgedPast(state: { first_seq: number; last_seq: number }, neededSeq: number): boolean {
  return state.first_seq > neededSeq && state.last_seq >= neededSeq;
}

/** What a replica may still read, from its heartbeat: after its checkpoint, or after what it applied. */
export function replicaNeedSeq(beat: { checkpointSeq: number; appliedSeq: number } | undefined): number {
  if (beat === undefined) return 0;
  return beat.checkpointSeq > 0 ? Math.min(beat.checkpointSeq, beat.appliedSeq) : beat.appliedSeq;
}
