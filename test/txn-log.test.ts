/**
 * Transaction entries in a shard log (decision 013), without a server: their encoding, the
 * sequencer that orders what takes effect, and a ShardIndex and a backup's ShardReplay that
 * apply the same log (with a snapshot taken while a transaction is staged) and agree.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LogRecord, ShardIndexConfig } from "../src/actors/vector-index/api.ts";
import { ShardIndex } from "../src/actors/vector-index/shard-index.ts";
import { ShardReplay } from "../src/actors/backup/replay.ts";
import { versionOf } from "../src/actors/vector-index/points.ts";
import { decodeEntry, encodeEntry, EntryKind, isInvalidEntryError, type LogEntry, type PlainEntry, type TxnCondition, type TxnPrepareEntry } from "../src/runtime/log-entry.ts";
import { decodeStaged, TxnSequencer, type Effect } from "../src/runtime/txn-sequencer.ts";
import { Packr } from "msgpackr";
import { parseFilter } from "../src/runtime/filter.ts";
import { unversioned } from "./support/points.ts";

const dim = 2;
const cfg: ShardIndexConfig = { dimension: dim, metric: "l2", index: { connectivity: 16, expansionAdd: 64, expansionSearch: 64, quantization: "f32" } };

function vectorsOf(ids: string[]): Float32Array {
  return Float32Array.from(ids.flatMap((id) => [id.length, id.charCodeAt(0)]));
}
const upsert = (ids: string[]): LogEntry => ({ kind: EntryKind.Upsert, ids, dimension: dim, vectors: vectorsOf(ids) });
const del = (ids: string[]): LogEntry => ({ kind: EntryKind.Delete, ids });
function prepare(txn: string, write: string[], remove: string[] = [], conditions: TxnCondition[] = []): LogEntry {
  return { kind: EntryKind.TxnPrepare, txn, ...(write.length > 0 ? { upsert: { ids: write, dimension: dim, vectors: vectorsOf(write), payloads: write.map((id) => ({ by: txn, id })) } } : {}), deleteIds: remove, conditions, deadlineAtMs: 1_000 };
}
const commit = (txn: string, prepareSeq: number): LogEntry => ({ kind: EntryKind.TxnCommit, txn, prepareSeq, committedAtMs: 500 });
const abort = (txn: string, prepareSeq: number): LogEntry => ({ kind: EntryKind.TxnAbort, txn, prepareSeq });
const records = (entries: LogEntry[], firstSeq = 1): LogRecord[] => entries.map((entry, i) => ({ seq: firstSeq + i, data: encodeEntry(entry) }));

/** Feeds records to a sequencer as a replica does, tracking versions; returns the effects' ids in order. */
function sequence(sequencer: TxnSequencer, recs: LogRecord[], versions = new Map<string, number>(), reader = false): { effects: string[]; votes: Map<string, boolean> } {
  const effects: string[] = [];
  const votes = new Map<string, boolean>();
  const apply = (list: Effect[]) => {
    // Nothing takes effect on an id a transaction holds staged.
    const staged = new Set(sequencer.staged().flatMap((t) => [...(t.entry.upsert?.ids ?? []), ...t.entry.deleteIds]));
    for (const e of list) expect(e.entry.ids.filter((id) => staged.has(id))).toEqual([]);
    for (const e of list) {
      if (e.kind === EntryKind.Delete) {
        for (const id of e.entry.ids) (versions.delete(id), effects.push(`-${id}`));
      } else e.entry.ids.forEach((id, p) => (versions.set(id, versionOf(e.seq, p)), effects.push(`+${id}@${e.seq}`)));
    }
  };
  for (const { seq, data } of recs) {
    const entry = decodeEntry(data);
    if (entry.kind === EntryKind.TxnPrepare) votes.set(entry.txn, sequencer.prepare(seq, entry, data, reader ? undefined : (id) => versions.get(id)).yes);
    else if (entry.kind === EntryKind.TxnCommit || entry.kind === EntryKind.TxnAbort) apply(sequencer.read(seq, entry, data, undefined));
    else apply(sequencer.plain(seq, entry, data));
  }
  return { effects, votes };
}

describe("transaction log entries", () => {
  it("round-trip, and carry format 2; plain entries stay format 1", () => {
    const packr = new Packr({ useRecords: false, moreTypes: false });
    const entries = [prepare("t1", ["a", "b"], ["c"], [{ id: "a", version: 65_536 }, { id: "z", exists: false }]), prepare("t2", [], ["x"]), commit("t1", 4), abort("t2", 5)];
    for (const entry of entries) {
      const data = encodeEntry(entry);
      expect((packr.unpack(data) as { f?: number }).f).toBe(2);
      const back = decodeEntry(data);
      if (back.kind === EntryKind.TxnPrepare && back.upsert) back.upsert.vectors = Float32Array.from(back.upsert.vectors);
      expect(back).toEqual(entry);
    }
    expect((packr.unpack(encodeEntry(upsert(["a"]))) as { f?: number }).f).toBeUndefined();
  });

  it("are refused when they could not have been written: no format, an id twice, a bad condition, a marker without its prepare", () => {
    const packr = new Packr({ useRecords: false, moreTypes: false });
    const bad = [
      { k: "tc", t: "t1", s: 3, at: 1 },
      { k: "tp", f: 2, t: "t1", r: ["a", "a"], dl: 1 },
      { k: "tp", f: 2, t: "t1", r: ["a"], w: { i: ["a"], d: 1, v: new Uint8Array(4) }, dl: 1 },
      { k: "tp", f: 2, t: "t1", r: ["a"], c: [{ i: "a", v: -1 }], dl: 1 },
      { k: "tp", f: 2, t: "", r: ["a"], dl: 1 },
      { k: "tc", f: 2, t: "t1", at: 1 },
      { k: "ta", f: 3, t: "t1", s: 1 },
    ];
    for (const wire of bad) expect(() => decodeEntry(packr.pack(wire)), JSON.stringify(wire)).toThrow(expect.objectContaining({ code: "invalid_entry" }));
    expect(isInvalidEntryError(new Error("x"))).toBe(false);
  });
});

describe("TxnSequencer", () => {
  it("stages a prepare until its commit; plain writes to its ids wait behind it, others go on, each id in log order", () => {
    const s = new TxnSequencer();
    const { effects, votes } = sequence(
      s,
      records([
        upsert(["a", "b"]), // 1
        prepare("t1", ["a", "c"]), // 2
        upsert(["a"]), // 3: waits for t1
        upsert(["d"]), // 4: goes on
        del(["a", "d"]), // 5: waits (a), and d with it
        upsert(["e"]), // 6: goes on
        commit("t1", 2), // 7
      ]),
    );
    expect(votes.get("t1")).toBe(true);
    expect(effects).toEqual(["+a@1", "+b@1", "+d@4", "+e@6", "+a@2", "+c@2", "+a@3", "-a", "-d"]);
    expect(s.idle).toBe(true);
  });

  it("names the recent commits, newest first with their shards, for readers that must see all of a transaction or none", () => {
    const s = new TxnSequencer();
    const at = (txn: string, prepareSeq: number, committedAtMs: number, shards?: number[]): LogEntry => ({ kind: EntryKind.TxnCommit, txn, prepareSeq, committedAtMs, ...(shards ? { shards } : {}) });
    sequence(s, records([prepare("t1", ["a"]), prepare("t2", ["b"]), at("t1", 1, 100, [0, 3]), abort("t2", 2), prepare("t3", ["c"]), at("t3", 5, 200), prepare("t4", ["d"]), at("t4", 7, 300, [1])]));
    expect(s.recentCommits(0, 10)).toEqual([{ txn: "t4", shards: [1] }, { txn: "t3" }, { txn: "t1", shards: [0, 3] }]);
    expect(s.recentCommits(150, 10)).toEqual([{ txn: "t4", shards: [1] }, { txn: "t3" }]);
    expect(s.recentCommits(0, 1)).toEqual([{ txn: "t4", shards: [1] }]);
    expect(s.recentCommits(301, 10)).toEqual([]);
    // A snapshot keeps them.
    const restored = new TxnSequencer();
    restored.restore(s.state(), decodeStaged);
    expect(restored.recentCommits(150, 10)).toEqual(s.recentCommits(150, 10));
  });

  it("an abort drops the staged ops and releases what waited", () => {
    const s = new TxnSequencer();
    const { effects } = sequence(s, records([prepare("t1", ["a"], ["b"]), upsert(["b"]), abort("t1", 1), commit("t1", 1)]));
    expect(effects).toEqual(["+b@2"]);
    expect(s.outcome("t1")).toMatchObject({ outcome: "aborted", seq: 3 });
  });

  it("an abort ahead of its prepare makes the prepare void: nothing staged, nothing held", () => {
    const s = new TxnSequencer();
    const { effects, votes } = sequence(s, records([abort("late", 1), prepare("late", ["a"]), upsert(["a"]), commit("late", 2)]));
    expect(votes.get("late")).toBe(false);
    expect(effects).toEqual(["+a@3"]);
    expect(s.idle).toBe(true);
    expect(s.outcome("late")).toMatchObject({ outcome: "aborted", seq: 1 });
  });

  it("reports the sequence below which everything took effect", () => {
    const s = new TxnSequencer();
    sequence(s, records([prepare("t1", ["a"]), upsert(["x"]), upsert(["a"]), upsert(["y"])]));
    expect(s.visibleSeq(4)).toBe(2);
    sequence(s, records([commit("t1", 1)], 5));
    expect(s.visibleSeq(5)).toBe(5);
  });

  it("votes no on a failed condition, on an id another transaction stages, and on one a waiting write touches", () => {
    const s = new TxnSequencer();
    const versions = new Map<string, number>();
    const { votes } = sequence(
      s,
      records([
        upsert(["a"]), // 1: a at version 65536
        prepare("ok", ["b"], [], [{ id: "a", version: versionOf(1, 0) }, { id: "b", exists: false }]), // 2
        prepare("stale", ["c"], [], [{ id: "a", version: 7 }]), // 3
        prepare("absent", ["d"], [], [{ id: "zz", exists: true }]), // 4
        prepare("overlap", ["q"], ["b"]), // 5: b is ok's
        upsert(["b", "w"]), // 6: waits for ok
        prepare("reads-waiting", ["r"], [], [{ id: "w", exists: false }]), // 7: w has a write waiting
      ]),
      versions,
    );
    expect(Object.fromEntries(votes)).toEqual({ ok: true, stale: false, absent: false, overlap: false, "reads-waiting": false });
    expect(s.outcome("stale")?.vote.reason).toBe(`point "a" has version ${versionOf(1, 0)}, not 7`);
    expect(s.outcome("overlap")?.vote.reason).toBe('point "b" is held by transaction ok');
    expect(s.outcome("reads-waiting")?.vote.reason).toBe('point "w" has a write waiting for another transaction');
    // A failed condition still stages (staging follows the log alone): its ids wait for its abort.
    expect(s.outcome("stale")?.outcome).toBe("staged");
    expect(s.plain(8, { kind: EntryKind.Delete, ids: ["c"] }, new Uint8Array())).toEqual([]);
    expect(s.marker(9, "stale", undefined).map((e) => e.entry.ids)).toEqual([["c"]]);
    expect(s.outcome("stale")).toMatchObject({ outcome: "aborted", vote: { yes: false } });
    // A conflict refuses: nothing staged, so its marker changes nothing.
    expect(s.outcome("overlap")?.outcome).toBe("refused");
    expect(s.marker(10, "overlap", { atMs: 0 })).toEqual([]);
  });

  it("a reader without points (the change feed) takes conditions as met", () => {
    const s = new TxnSequencer();
    const entry = decodeEntry(encodeEntry(prepare("t", ["a"], [], [{ id: "a", version: 99 }]))) as TxnPrepareEntry;
    expect(s.prepare(1, entry, encodeEntry(entry), undefined)).toEqual({ yes: true });
  });

  it("restored from its state at any entry, it goes on exactly as one that never stopped; a reader without points agrees", () => {
    const ids = ["a", "b", "c", "d"];
    const idList = fc.uniqueArray(fc.constantFrom(...ids), { minLength: 1, maxLength: 3 });
    const step = fc.oneof(
      idList.map((l) => ({ t: "u" as const, ids: l })),
      idList.map((l) => ({ t: "d" as const, ids: l })),
      fc.tuple(idList, fc.boolean(), fc.constantFrom(undefined, 0, versionOf(1, 0))).map(([l, split, version]) => ({ t: "p" as const, ids: l, split, version })),
      fc.boolean().map((yes) => ({ t: "m" as const, commit: yes })),
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 30 }), fc.nat(), (steps, cutAt) => {
        // Markers name the oldest prepare not yet marked.
        const entries: LogEntry[] = [];
        const open: { txn: string; seq: number }[] = [];
        steps.forEach((st, i) => {
          const seq = entries.length + 1;
          if (st.t === "u") entries.push(upsert(st.ids));
          else if (st.t === "d") entries.push(del(st.ids));
          else if (st.t === "p") {
            const half = st.split ? Math.ceil(st.ids.length / 2) : st.ids.length;
            entries.push(prepare(`t${i}`, st.ids.slice(0, half), st.ids.slice(half), st.version === undefined ? [] : [{ id: st.ids[0]!, version: st.version }]));
            open.push({ txn: `t${i}`, seq });
          } else if (open.length > 0) {
            const { txn, seq: p } = open.shift()!;
            entries.push(st.commit ? commit(txn, p) : abort(txn, p));
          }
        });
        const recs = records(entries);
        const whole = sequence(new TxnSequencer(), recs);
        const cut = recs.length === 0 ? 0 : cutAt % (recs.length + 1);
        const first = new TxnSequencer();
        const versions = new Map<string, number>();
        const before = sequence(first, recs.slice(0, cut), versions);
        const restored = new TxnSequencer();
        restored.restore(structuredClone(first.state()), decodeStaged);
        const after = sequence(restored, recs.slice(cut), versions);
        expect([...before.effects, ...after.effects]).toEqual(whole.effects);
        // A reader without points (the change feed) sees the same effects in the same order.
        expect(sequence(new TxnSequencer(), recs, new Map(), true).effects).toEqual(whole.effects);
        return true;
      }),
      { seed: 13, numRuns: 300 },
    );
  });
});

describe("a shard log with transactions, applied by a replica and by a backup's replay", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "jade-txn-log-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const log = records([
    upsert(["a", "b", "c"]), // 1
    prepare("t1", ["a", "n"], ["b"], [{ id: "a", version: versionOf(1, 0) }]), // 2
    upsert(["b", "z"]), // 3: b waits for t1
    prepare("t2", ["c"], [], [{ id: "c", version: 1 }]), // 4: votes no
    commit("t1", 2), // 5
    abort("t2", 4), // 6
  ]);

  it("staged ops are invisible until the commit; a snapshot taken while they are staged keeps them staged", async () => {
    const replica = new ShardIndex(cfg);
    replica.apply(log.slice(0, 4));
    // The write of b and z waits whole: an entry takes effect at once or not at all.
    expect(replica.get(["a", "b", "n", "z"], false).map((p) => p.id)).toEqual(["a", "b"]);
    expect(replica.get(["a"], false)[0]!.payload).toBeUndefined();
    expect(replica.visibleSeq).toBe(2);
    expect(replica.apply([]).visibleSeq).toBe(2);
    expect(replica.txns.outcome("t2")?.vote).toEqual({ yes: false, reason: 'point "c" has version 65538, not 1' });

    const file = path.join(dir, "staged.snap");
    await replica.save(file);
    expect((await readFile(file)).byteLength).toBeGreaterThan(0);
    const restored = await ShardIndex.load(cfg, file);
    expect(restored.visibleSeq).toBe(2);
    expect(restored.txns.outcome("t2")?.outcome).toBe("staged");

    for (const shard of [replica, restored]) {
      shard.apply(log.slice(4));
      expect(unversioned(shard.get(["a", "b", "c", "n", "z"], false))).toEqual([
        { id: "a", payload: { by: "t1", id: "a" } },
        { id: "b" },
        { id: "c" },
        { id: "n", payload: { by: "t1", id: "n" } },
        { id: "z" },
      ]);
      expect(shard.visibleSeq).toBe(6);
      expect(shard.apply([]).visibleSeq).toBeUndefined();
    }
    expect(restored.contentDigest()).toEqual(replica.contentDigest());

    // A backup replays the same log from the same snapshot to the same digest.
    const replay = new ShardReplay(cfg);
    async function* chunks() {
      yield await readFile(file);
    }
    await replay.loadSnapshot(chunks(), "staged.snap");
    for (const r of log.slice(4)) replay.apply(r.seq, r.data);
    expect(replay.digest()).toEqual(replica.contentDigest());
    const fromStart = new ShardReplay(cfg);
    for (const r of log) fromStart.apply(r.seq, r.data);
    expect(fromStart.digest()).toEqual(replica.contentDigest());
  });

  it("a read that assumes a staged transaction committed answers what the shard answers once it has", () => {
    const replica = new ShardIndex(cfg);
    const base = ["a", "b", "c", "d", "e"].map((id, i) => ({ id, vector: [i, i] }));
    replica.apply(records([{ kind: EntryKind.Upsert, ids: base.map((p) => p.id), dimension: dim, vectors: Float32Array.from(base.flatMap((p) => p.vector)), payloads: base.map((_, i) => ({ i })) }]));
    const staged: LogEntry = {
      kind: EntryKind.TxnPrepare,
      txn: "t",
      upsert: { ids: ["a", "n"], dimension: dim, vectors: Float32Array.from([9, 9, 2.1, 2.1]), payloads: [{ i: 90 }, { i: 91 }] },
      deleteIds: ["b"],
      conditions: [],
      deadlineAtMs: 0,
    };
    replica.apply(records([staged], 2));
    const ids = ["a", "b", "c", "n"];
    const query = (x: number, filter?: ReturnType<typeof parseFilter>) => ({ vector: Float32Array.from([x, x]), k: 3, withPayload: true, withVectors: false, ...(filter ? { filter } : {}) });
    const reads = (assume?: string[]) => ({
      get: replica.get(ids, true, assume),
      count: replica.count(undefined, assume),
      countBig: replica.count(parseFilter({ i: { $gte: 3 } }), assume),
      near2: replica.search({ ...query(2), ...(assume ? { assume } : {}) }),
      near9: replica.search({ ...query(9), ...(assume ? { assume } : {}) }),
      filtered: replica.search({ ...query(0, parseFilter({ i: { $gte: 2 } })), ...(assume ? { assume } : {}) }),
    });
    const before = reads();
    expect(before.count).toBe(5);
    expect(before.get.map((p) => p.id)).toEqual(["a", "b", "c"]);
    const assumed = reads(["t"]);
    expect(assumed.get.map((p) => p.id)).toEqual(["a", "c", "n"]);
    // A transaction not staged here changes nothing.
    expect(reads(["elsewhere"])).toEqual(before);
    replica.apply(records([{ kind: EntryKind.TxnCommit, txn: "t", prepareSeq: 2, committedAtMs: 0 }], 3));
    expect(reads()).toEqual(assumed);
  });

  it("a prepare of invalid vectors is skipped whole, as a plain upsert would be", () => {
    const replica = new ShardIndex(cfg);
    const bad: PlainEntry | TxnPrepareEntry = { kind: EntryKind.TxnPrepare, txn: "t", upsert: { ids: ["a"], dimension: 3, vectors: new Float32Array(3) }, deleteIds: [], conditions: [], deadlineAtMs: 1 };
    const result = replica.apply(records([bad, commit("t", 1)]));
    expect(result.rejected?.[0]?.reason).toMatch(/dimension 3/);
    expect(replica.count()).toBe(0);
  });
});
