/**
 * When a replica saves a snapshot (replica.ts binds these to its machine): how long a save
 * holds the next one back, and when a snapshot that left points outside its graph is worth
 * saving again once the graph holds them. Pure numbers, shared with status readers (tests,
 * the backup bench) that wait for a replica to settle.
 */

/** How much of a snapshot's graph was missing: points saved before the graph absorbed them. */
export interface Unabsorbed {
  /** points the snapshot's graph did not hold */
  unabsorbed?: number;
  /** every point of the snapshot */
  points?: number;
}

/**
 * After a save of D ms no save starts for this many times D: saves then take at most 1/20th of
 * a replica's time whatever the shard's size. A save's cost grows with the shard, the work it
 * spares a restart grows with what was applied since the last one; at a million points a
 * save every 30 s interval for a trickle of writes spent seconds saving for a few entries.
 */
export const snapshotCostFactor = 20;

/**
 * A snapshot saved while the graph was still absorbing a burst of writes leaves the points it
 * had not absorbed to whoever loads it (a restart, a new replica, a restore of a backup), who
 * indexes them again: a save with no new entries is still worth it once the graph holds them,
 * if they are at least this many…
 */
export const resaveUnabsorbedMin = 1_024;
/** …and at least this share of the snapshot's points. */
export const resaveUnabsorbedShare = 0.05;

/** Whether a snapshot that left `unabsorbed` of its `points` outside its graph is worth saving again once they are absorbed. */
export function worthResaving(unabsorbed: number, points: number): boolean {
  return unabsorbed >= resaveUnabsorbedMin && unabsorbed >= resaveUnabsorbedShare * points;
}
