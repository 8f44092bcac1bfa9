/**
 * The change feed's pure parts, property-based: position tokens round-trip, and any string
 * given as a position is either a position of this collection or refused as invalid_argument
 * (never another error); an entry yields one change per id, in entry order.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { changesOf, decodePosition, effectsOf, encodePosition } from "../src/client/changes.ts";
import { TxnSequencer } from "../src/runtime/txn-sequencer.ts";
import { ErrorCode, JadeError } from "../src/runtime/errors.ts";
import { encodeEntry, EntryKind, type LogEntry } from "../src/runtime/log-entry.ts";

const config = { name: "c", uid: "u-1", shards: 3 };

describe("change positions", () => {
  it("round-trip through their token", () => {
    const position = fc.record({ seq: fc.nat(), index: fc.nat({ max: 65_535 }) });
    fc.assert(
      fc.property(fc.tuple(position, position, position), (ps) => {
        const positions = new Map(ps.map((p, shard) => [shard, p]));
        expect(decodePosition(encodePosition(config.uid, positions), config)).toEqual(positions);
      }),
    );
  });

  it("refuse anything else as invalid_argument", () => {
    const mangled = fc.oneof(
      fc.string(),
      fc.string().map((s) => `v1.${s}`),
      fc.jsonValue().map((v) => `v1.${Buffer.from(JSON.stringify(v)).toString("base64url")}`),
      fc.constantFrom(encodePosition("u-2", new Map([[0, { seq: 1, index: 0 }], [1, { seq: 1, index: 0 }], [2, { seq: 1, index: 0 }]])), encodePosition("u-1", new Map([[0, { seq: 1, index: 0 }]]))),
    );
    fc.assert(
      fc.property(mangled, (token) => {
        try {
          const positions = decodePosition(token, config);
          expect([...positions.keys()].sort()).toEqual([0, 1, 2]);
        } catch (err) {
          expect(err).toBeInstanceOf(JadeError);
          expect((err as JadeError).code).toBe(ErrorCode.InvalidArgument);
        }
      }),
    );
  });
});

describe("changesOf", () => {
  const read = (txns: TxnSequencer, entry: LogEntry | undefined, seq: number) => changesOf(effectsOf(txns, entry, seq, entry ? encodeEntry(entry) : new Uint8Array()), 1, "t");

  it("gives one change per id, in entry order, with its vector and payload", () => {
    const txns = new TxnSequencer();
    const entry: LogEntry = { kind: EntryKind.Upsert, ids: ["a", "b"], payloads: [null, { x: 1 }], dimension: 2, vectors: Float32Array.from([1, 2, 3, 4]) };
    expect(read(txns, entry, 7)).toEqual([
      { op: "upsert", id: "a", vector: [1, 2], payload: null, shard: 1, seq: 7, index: 0, time: "t" },
      { op: "upsert", id: "b", vector: [3, 4], payload: { x: 1 }, shard: 1, seq: 7, index: 1, time: "t" },
    ]);
    expect(read(txns, { kind: EntryKind.Delete, ids: ["a"] }, 3)).toEqual([{ op: "delete", id: "a", shard: 1, seq: 3, index: 0, time: "t" }]);
    // A stray message (undecodable) and a move-only entry hold no change.
    expect(read(txns, undefined, 4)).toEqual([]);
    expect(read(txns, { kind: EntryKind.Upsert, ids: [], dimension: 2, vectors: new Float32Array(0), deleteIds: ["z"] }, 5)).toEqual([]);
  });

  it("gives a transaction's changes together when its commit is read, then the writes that waited for it; an aborted one's never", () => {
    const txns = new TxnSequencer();
    const prepare: LogEntry = { kind: EntryKind.TxnPrepare, txn: "t1", upsert: { ids: ["a"], dimension: 2, vectors: Float32Array.from([5, 6]) }, deleteIds: ["b"], conditions: [{ id: "a", version: 1 }], deadlineAtMs: 0 };
    expect(read(txns, prepare, 10)).toEqual([]);
    expect(read(txns, { kind: EntryKind.Delete, ids: ["a"] }, 11)).toEqual([]);
    expect(read(txns, { kind: EntryKind.Delete, ids: ["c"] }, 12)).toEqual([{ op: "delete", id: "c", shard: 1, seq: 12, index: 0, time: "t" }]);
    expect(read(txns, { kind: EntryKind.TxnCommit, txn: "t1", prepareSeq: 10, committedAtMs: 0 }, 13)).toEqual([
      { op: "upsert", id: "a", vector: [5, 6], payload: null, shard: 1, seq: 10, index: 0, time: "t" },
      { op: "delete", id: "b", shard: 1, seq: 10, index: 1, time: "t" },
      { op: "delete", id: "a", shard: 1, seq: 11, index: 0, time: "t" },
    ]);
    expect(read(txns, { ...prepare, txn: "t2" }, 14)).toEqual([]);
    expect(read(txns, { kind: EntryKind.TxnAbort, txn: "t2", prepareSeq: 14 }, 15)).toEqual([]);
    expect(txns.idle).toBe(true);
  });
});
