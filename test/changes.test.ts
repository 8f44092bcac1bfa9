/**
 * The change feed's pure parts, property-based: position tokens round-trip, and any string
 * given as a position is either a position of this collection or refused as invalid_argument
 * (never another error); an entry yields one change per id, in entry order.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { changesOf, decodePosition, encodePosition } from "../src/client/changes.ts";
import { ErrorCode, JadeError } from "../src/runtime/errors.ts";
import { EntryKind } from "../src/runtime/log-entry.ts";

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
  it("gives one change per id, in entry order, with its vector and payload", () => {
    const entry = { kind: EntryKind.Upsert, ids: ["a", "b"], payloads: [null, { x: 1 }], dimension: 2, vectors: Float32Array.from([1, 2, 3, 4]) };
    expect(changesOf(entry, 1, 7, "t")).toEqual([
      { op: "upsert", id: "a", vector: [1, 2], payload: null, shard: 1, seq: 7, index: 0, time: "t" },
      { op: "upsert", id: "b", vector: [3, 4], payload: { x: 1 }, shard: 1, seq: 7, index: 1, time: "t" },
    ]);
    expect(changesOf({ kind: EntryKind.Delete, ids: ["a"] }, 0, 3, "t")).toEqual([{ op: "delete", id: "a", shard: 0, seq: 3, index: 0, time: "t" }]);
    // A stray message (undecodable) and a move-only entry hold no change.
    expect(changesOf(undefined, 0, 4, "t")).toEqual([]);
    expect(changesOf({ kind: EntryKind.Upsert, ids: [], dimension: 2, vectors: new Float32Array(0), deleteIds: ["z"] }, 0, 5, "t")).toEqual([]);
  });
});
