/**
 * The purge floor, pure: the lowest of the newest snapshot, every live replica's need,
 * the point-in-time window's base snapshot and the holds; and which snapshots may go.
 */
import { describe, expect, it } from "vitest";
import { noSnapshotYet, pointInTimeSnapshotsPerWindow, pointInTimeWindow, replicaNeedSeq, shardFloor, type SnapshotAt } from "../src/runtime/retention.ts";

const hourMs = 3_600_000;
const now = 100 * hourMs;
const snap = (seq: number, hoursAgo: number): SnapshotAt => ({ name: `c/0/${seq}`, seq, savedAtMs: now - hoursAgo * hourMs });

describe("shardFloor", () => {
  it("purges nothing before the first snapshot", () => {
    expect(shardFloor({ nowMs: now, graceMs: 30_000, pointInTimeMs: 0, snapshots: [], replicas: [{ what: "replica on a", seq: 50 }], holds: [] })).toEqual({
      seq: 0,
      heldBy: noSnapshotYet,
      obsoleteSnapshots: [],
    });
  });

  it("without a window: the newest snapshot, unless a replica or a hold needs less; older snapshots go", () => {
    const snapshots = [snap(40, 3), snap(90, 1), snap(70, 2)];
    const base = { nowMs: now, graceMs: 30_000, pointInTimeMs: 0, snapshots, holds: [] };
    expect(shardFloor({ ...base, replicas: [{ what: "replica on a", seq: 95 }] })).toEqual({ seq: 90, heldBy: "snapshot 90", obsoleteSnapshots: ["c/0/70", "c/0/40"] });
    expect(shardFloor({ ...base, replicas: [{ what: "replica on a", seq: 95 }, { what: "replica on b", seq: 60 }] }).seq).toBe(60);
    expect(shardFloor({ ...base, replicas: [], holds: [{ what: "backup b1", seq: 12 }] })).toMatchObject({ seq: 12, heldBy: "backup b1" });
    // A replica being placed (no heartbeat yet) needs the whole log.
    expect(shardFloor({ ...base, replicas: [{ what: "replica on c", seq: replicaNeedSeq(undefined) }] })).toMatchObject({ seq: 0, heldBy: "replica on c" });
  });

  it("with a window: the newest snapshot saved before it began, and a few spread over it are kept", () => {
    const windowMs = 24 * hourMs;
    // No grace period here (graceMs 0): the newest was saved this instant, and the grace has its own case below.
    // One snapshot an hour for 30 hours: seq = 10 × (30 − hours ago).
    const snapshots = Array.from({ length: 31 }, (_, h) => snap(10 * (30 - h), h));
    const floor = shardFloor({ nowMs: now, graceMs: 0, pointInTimeMs: windowMs, snapshots, replicas: [], holds: [] });
    expect(floor.seq).toBe(60); // saved 24 h ago: the window's base
    expect(floor.heldBy).toBe(pointInTimeWindow);
    const kept = snapshots.map((s) => s.name).filter((n) => !floor.obsoleteSnapshots.includes(n));
    // The base, then one per window / 4 (6 h), and the newest.
    expect(kept.sort()).toEqual(["c/0/60", "c/0/120", "c/0/180", "c/0/240", "c/0/300"].sort());
    expect(kept.length).toBeLessThanOrEqual(pointInTimeSnapshotsPerWindow + 1);

    // An hour later the base has not moved (the next kept one is 6 h newer); 6 h later it has, and the rest stay.
    const later = (hours: number) => shardFloor({ nowMs: now + hours * hourMs, graceMs: 0, pointInTimeMs: windowMs, snapshots: snapshots.filter((s) => kept.includes(s.name)), replicas: [], holds: [] });
    expect(later(1)).toMatchObject({ seq: 60, obsoleteSnapshots: [] });
    expect(later(6)).toMatchObject({ seq: 120, obsoleteSnapshots: ["c/0/60"] });
  });

  it("keeps a replaced snapshot, and the log after it, for the grace period: a restore downloading it finishes", () => {
    const fresh = (seq: number, msAgo: number): SnapshotAt => ({ name: `c/0/${seq}`, seq, savedAtMs: now - msAgo });
    const snapshots = [fresh(10, 90_000), fresh(20, 50_000), fresh(30, 10_000)];
    // 30 replaced 20 ten seconds ago (within 30 s): 20 is still restorable; 20 replaced 10 fifty seconds ago: 10 goes.
    expect(shardFloor({ nowMs: now, graceMs: 30_000, pointInTimeMs: 0, snapshots, replicas: [], holds: [] })).toEqual({ seq: 20, heldBy: "snapshot 20", obsoleteSnapshots: ["c/0/10"] });
    // Once the grace has passed, only the newest is kept.
    expect(shardFloor({ nowMs: now + 25_000, graceMs: 30_000, pointInTimeMs: 0, snapshots, replicas: [], holds: [] })).toEqual({ seq: 30, heldBy: "snapshot 30", obsoleteSnapshots: ["c/0/20", "c/0/10"] });
  });

  it("of two snapshots of one sequence (a graph saved again), the later one is the newest; the earlier goes after the grace", () => {
    const at = (name: string, seq: number, msAgo: number): SnapshotAt => ({ name, seq, savedAtMs: now - msAgo });
    // Listed in either order: the one saved last wins.
    for (const snapshots of [
      [at("first", 30, 60_000), at("again", 30, 40_000), at("older", 20, 90_000)],
      [at("again", 30, 40_000), at("older", 20, 90_000), at("first", 30, 60_000)],
    ]) {
      expect(shardFloor({ nowMs: now, graceMs: 30_000, pointInTimeMs: 0, snapshots, replicas: [], holds: [] })).toEqual({ seq: 30, heldBy: "snapshot 30", obsoleteSnapshots: ["first", "older"] });
      // Within the grace, the one it replaced stays.
      expect(shardFloor({ nowMs: now - 20_000, graceMs: 30_000, pointInTimeMs: 0, snapshots, replicas: [], holds: [] }).obsoleteSnapshots).toEqual(["older"]);
    }
  });

  it("a backup or restore in progress keeps the snapshot it copies and the log after it", () => {
    const snapshots = [snap(40, 3), snap(90, 1), snap(70, 2)];
    const floor = shardFloor({ nowMs: now, graceMs: 30_000, pointInTimeMs: 0, snapshots, replicas: [], holds: [{ what: "backup b1", seq: 70, snapshot: "c/0/70" }] });
    expect(floor).toEqual({ seq: 70, heldBy: "backup b1", obsoleteSnapshots: ["c/0/40"] });
  });

  it("keeps the whole log while the window reaches before the first snapshot", () => {
    const floor = shardFloor({ nowMs: now, graceMs: 30_000, pointInTimeMs: 24 * hourMs, snapshots: [snap(10, 2), snap(20, 1)], replicas: [], holds: [] });
    expect(floor).toMatchObject({ seq: 0, heldBy: pointInTimeWindow });
    expect(floor.obsoleteSnapshots).toEqual([]); // 1 h apart: fewer than 6 h, but the newest is always kept
  });
});

describe("replicaNeedSeq", () => {
  it("is the local checkpoint when there is one, else what the replica applied", () => {
    expect(replicaNeedSeq({ checkpointSeq: 40, appliedSeq: 55 })).toBe(40);
    expect(replicaNeedSeq({ checkpointSeq: 0, appliedSeq: 55 })).toBe(55);
    expect(replicaNeedSeq(undefined)).toBe(0);
  });
});
