/**
 * The value rules at their boundaries (vectors.ts, payload.ts, text.ts, the session
 * token schema), the shard log's own check of entries (log-entry.ts, shard-index.ts), and
 * what ingestion does with a record that fails.
 */
import fc from "fast-check";
import { Packr } from "msgpackr";
import { describe, expect, it } from "vitest";
import { ShardIndex } from "../src/actors/vector-index/shard-index.ts";
import { failureOutcome, unexpectedFailuresMax } from "../src/actors/write/ingestion.ts";
import { ErrorCode, JadeError } from "../src/runtime/errors.ts";
import { limits } from "../src/runtime/limits.ts";
import { decodeEntry, encodeEntry, EntryKind, isInvalidEntryError } from "../src/runtime/log-entry.ts";
import { payloadIssue } from "../src/runtime/payload.ts";
import { parse } from "../src/runtime/checks.ts";
import { checkColumns } from "../src/runtime/columns.ts";
import { SessionToken } from "../src/runtime/schemas.ts";
import { quote, tokenIssue } from "../src/runtime/text.ts";
import { f16Max, shapeIssue, vectorIssue, type VectorSpace } from "../src/runtime/vectors.ts";

const space = (metric: VectorSpace["metric"], quantization: VectorSpace["quantization"] = "f32", dimension = 2): VectorSpace => ({ dimension, metric, quantization });

describe("vector rules", () => {
  it.each([
    ["the largest float32", [3.4028234663852886e38, 0], undefined],
    ["a value that rounds to the largest float32", [3.4028235e38, 0], undefined],
    ["a value that rounds to Infinity", [3.4028236e38, 0], /\[0\]: 3\.4028236e\+38 is not a finite float32/],
    ["1e39", [0, -1e39], /\[1\]: -1e\+39 is not a finite float32/],
    ["a string", ["1", 0], /must be a number, got a string/],
    ["null", [null], /got null/],
    ["empty", [], /must not be empty/],
    ["too long", Array.from({ length: limits.dimensionMax + 1 }, () => 1), /at most 4096/],
    ["not an array", { 0: 1 }, /must be an array/],
  ])("shape: %s", (_name, value, message) => {
    const issue = shapeIssue(value);
    if (message === undefined) expect(issue).toBeUndefined();
    else expect(`[${issue?.path.join("][")}]: ${issue?.message}`).toMatch(message as RegExp);
  });

  it.each([
    ["f16 at its largest", space("l2", "f16"), [f16Max, -f16Max], undefined],
    ["f16 just beyond", space("l2", "f16"), [1, 65_505], /outside ±65504/],
    ["f32 beyond f16 is fine", space("l2"), [65_505, 1], undefined],
    ["l2 at the norm bound (2^62 squared, twice)", space("l2"), [2 ** 62, -(2 ** 62)], undefined],
    ["l2 just above it", space("l2"), [2 ** 62, 2 ** 62 * 1.0000001], /above 2\^125/],
    ["l2 beyond it", space("l2"), [1e20, 1e20], /squared length 2\.000e\+40, above 2\^125/],
    ["ip beyond it", space("ip"), [7e18, 0], /its ip distances would overflow/],
    ["cosine with a huge component", space("cosine"), [1e30, 1], undefined],
    ["cosine zero", space("cosine"), [0, -0], /zero vector/],
    ["cosine all subnormal", space("cosine"), [1e-39, -1e-40], /smallest normal f32/],
    ["cosine at the smallest normal f32", space("cosine"), [2 ** -126, 0], undefined],
    ["cosine f16 below its smallest normal", space("cosine", "f16"), [6e-5, 0], /smallest normal f16/],
    ["cosine f16 at it", space("cosine", "f16"), [2 ** -14, 0], undefined],
    ["ip zero is fine", space("ip"), [0, 0], undefined],
  ])("space: %s", (_name, s, vector, message) => {
    const issue = vectorIssue(vector, s);
    if (message === undefined) expect(issue).toBeUndefined();
    else expect(issue?.message).toMatch(message as RegExp);
  });

  it("a wrong length is a dimension mismatch, whatever the values", () => {
    expect(vectorIssue([1e39], space("cosine"))).toMatchObject({ expected: 2, path: [] });
  });

  it("a bulk write's columns are checked row by row with the same rules, the first bad row named", () => {
    const value = fc.oneof(
      { weight: 8, arbitrary: fc.float({ min: -2, max: 2, noNaN: true }) },
      { weight: 1, arbitrary: fc.constantFrom(Number.NaN, Infinity, -Infinity, 0, 7e4, 1e-39, 2 ** 62, 1e20) },
    );
    const spaces = fc.record({
      metric: fc.constantFrom("l2" as const, "ip" as const, "cosine" as const),
      quantization: fc.constantFrom("f32" as const, "f16" as const),
      dimension: fc.integer({ min: 1, max: 6 }),
    });
    fc.assert(
      fc.property(
        spaces.chain((s) => fc.tuple(fc.constant(s), fc.array(fc.array(value, { minLength: s.dimension, maxLength: s.dimension }), { minLength: 1, maxLength: 8 }))),
        ([s, rows]) => {
          const vectors = Float32Array.from(rows.flat());
          const expected = rows.map((_, i) => vectorIssue(vectors.subarray(i * s.dimension, (i + 1) * s.dimension), s)).findIndex((issue) => issue !== undefined);
          const ids = rows.map((_, i) => `p${i}`);
          let thrown: unknown;
          try {
            checkColumns({ ids, vectors }, s, (i) => `vectors[${i}]`);
          } catch (err) {
            thrown = err;
          }
          if (expected < 0) {
            expect(thrown).toBeUndefined();
            return;
          }
          const issue = vectorIssue(vectors.subarray(expected * s.dimension, (expected + 1) * s.dimension), s)!;
          expect(thrown).toBeInstanceOf(JadeError);
          expect((thrown as JadeError).code).toBe(ErrorCode.InvalidArgument);
          expect((thrown as JadeError).message).toBe(`vectors[${expected}]${issue.path.map((i) => `[${i}]`).join("")}: ${issue.message}`);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("payload rules", () => {
  const nested = (depth: number) => {
    let value: unknown = 1;
    for (let i = 1; i < depth; i++) value = { d: value };
    return { d: value };
  };
  it.each([
    ["16 levels", nested(16), undefined],
    ["17 levels", nested(17), /nests deeper than 16 levels/],
    ["20,000 levels (JSON.parse builds it; nothing recursive may)", JSON.parse(`${'{"a":'.repeat(20_000)}1${"}".repeat(20_000)}`), /nests deeper/],
    ["1,024 keys", Object.fromEntries(Array.from({ length: 1_024 }, (_, i) => [`k${i}`, i])), undefined],
    ["1,025 keys over two levels", { a: Object.fromEntries(Array.from({ length: 1_024 }, (_, i) => [`k${i}`, i])) }, /more than 1024 keys/],
    ["a 256-byte key", { ["é".repeat(128)]: 1 }, undefined],
    ["a 257-byte key", { ["é".repeat(128) + "x"]: 1 }, /is 257 bytes/],
    ["4,096 items", { a: Array.from({ length: 4_096 }, () => 0) }, undefined],
    ["4,097 items", { a: Array.from({ length: 4_097 }, () => 0) }, /4097 items/],
    ["__proto__ as an own key, nested", { a: [JSON.parse('{"__proto__": 1}')] }, /key "__proto__" is reserved/],
    ["constructor and prototype", { constructor: { prototype: 1 }, prototype: null }, undefined],
    ["Infinity", JSON.parse('{"x": [1, 1e999]}'), /Infinity is not a finite number/],
    ["a lone surrogate in a value", { s: "a\udc00" }, /lone UTF-16 surrogate/],
    ["a lone surrogate in a key", { ["\ud800"]: 1 }, /lone UTF-16 surrogate/],
    ["control characters in a value", { s: "tab\tnul\u0000" }, undefined],
    ["exactly 65,536 bytes", { s: "x".repeat(limits.payloadBytesMax - 8) }, undefined],
    ["one byte more", { s: "x".repeat(limits.payloadBytesMax - 7) }, /65537 bytes as JSON/],
    ["an array", [1], /must be a JSON object, got an array/],
    ["a Date (not JSON)", { d: new Date(0) }, /must be JSON/],
  ])("%s", (_name, payload, message) => {
    const issue = payloadIssue(payload);
    if (message === undefined) expect(issue).toBeUndefined();
    else expect(issue?.message).toMatch(message as RegExp);
  });

  it("names the path of the problem", () => {
    expect(payloadIssue({ a: { b: [0, { c: 1e999 * 0 }] } })).toEqual({ path: ["a", "b", 1, "c"], message: "NaN is not a finite number" });
  });
});

describe("ids and tokens", () => {
  it.each([
    ["a", undefined],
    ["日本語 🦀", undefined],
    ["x".repeat(256), undefined],
    ["é".repeat(128), undefined],
    ["é".repeat(129), /258 bytes/],
    ["", /non-empty/],
    ["a\u0000", /U\+0000/],
    ["a\u007f", /U\+007F/],
    ["a\u0085", /U\+0085/],
    ["\ud800", /lone UTF-16 surrogate at character 0/],
    ["ok\udfff", /at character 2/],
  ])("id %j", (id, message) => {
    const issue = tokenIssue(id, limits.idBytesMax);
    if (message === undefined) expect(issue).toBeUndefined();
    else expect(issue).toMatch(message);
  });

  it("quotes long input short", () => {
    expect(quote("k".repeat(1 << 20))).toBe(`"${"k".repeat(64)}"… (1048576 chars)`);
  });

  it.each([
    [{ "0": 0, "12": 99 }, undefined],
    [{ "007": 1 }, /"007" is not a shard number/],
    [{ "-1": 1 }, /not a shard number/],
    [{ "1000": 1 }, /not a shard number/],
    [{ "0": -1 }, /integer from 0 to 2\^53 − 1, got -1/],
    [{ "0": 1.5 }, /got 1.5/],
    [{ "0": 2 ** 53 }, /got 9007199254740992/],
    [{ "0": "5" }, /got string/],
    [JSON.parse('{"__proto__": 3}'), /"__proto__" is not a shard number/],
    [Object.fromEntries(Array.from({ length: 65 }, (_, i) => [String(i), 0])), /names 65 shards/],
    [[1], /must be an object/],
  ])("token %j", (token, message) => {
    if (message === undefined) expect(parse(SessionToken, token)).toEqual(token);
    else expect(() => parse(SessionToken, token)).toThrow(message);
  });
});

describe("shard-log entries no writer could have made", () => {
  const packr = new Packr({ useRecords: false });
  const config = { dimension: 2, metric: "cosine" as const, index: { connectivity: 16, expansionAdd: 64, expansionSearch: 64, quantization: "f32" as const } };
  const good = (id: string, vector: number[]) => encodeEntry({ kind: EntryKind.Upsert, ids: [id], payloads: [null], dimension: 2, vectors: Float32Array.from(vector) });
  const raw = (value: unknown) => packr.pack(value);

  it.each([
    ["not msgpack", Uint8Array.from([0xc1])],
    ["not an object", raw("text")],
    ["an unknown kind", raw({ k: "x", i: ["a"] })],
    ["ids that are not strings", raw({ k: "d", i: [5] })],
    ["an empty id", raw({ k: "d", i: [""] })],
    ["vector bytes that do not match", raw({ k: "u", i: ["a"], p: [null], d: 2, v: new Uint8Array(12) })],
    ["one payload for two ids", raw({ k: "u", i: ["a", "b"], p: [null], d: 2, v: new Uint8Array(16) })],
    ["an array payload", raw({ k: "u", i: ["a"], p: [[1]], d: 2, v: new Uint8Array(8) })],
  ])("decodeEntry refuses %s", (_name, bytes) => {
    let thrown: unknown;
    try {
      decodeEntry(bytes);
    } catch (err) {
      thrown = err;
    }
    expect(isInvalidEntryError(thrown)).toBe(true);
  });

  it("every replica skips them identically and keeps applying what follows", () => {
    const nan = raw({ k: "u", i: ["nan"], p: [null], d: 2, v: new Uint8Array(Float32Array.from([NaN, 1]).buffer) });
    const zero = good("zero", [0, 0]);
    const records = [
      { seq: 1, data: good("a", [1, 0]) },
      { seq: 2, data: Uint8Array.from([0xc1, 0xff]) },
      { seq: 3, data: nan },
      { seq: 4, data: zero },
      { seq: 5, data: good("b", [0, 1]) },
    ];
    const replicas = [new ShardIndex(config), new ShardIndex(config)];
    const results = replicas.map((r) => r.apply(records));
    expect(results[0]).toEqual(results[1]);
    expect(results[0]!.appliedSeq).toBe(5);
    expect(results[0]!.count).toBe(2);
    expect(results[0]!.rejected?.map((r) => r.seq)).toEqual([2, 3, 4]);
    expect(results[0]!.rejected?.[1]!.reason).toMatch(/point 0: vector\[0\] NaN is not a finite float32/);
    expect(results[0]!.rejected?.[2]!.reason).toMatch(/zero vector/);
    expect(replicas[0]!.contentDigest()).toEqual(replicas[1]!.contentDigest());
    expect(replicas[0]!.get(["a", "b", "nan", "zero"], false).map((p) => p.id)).toEqual(["a", "b"]);
  });
});

describe("ingestion failures", () => {
  it("retries what may succeed, dead-letters what cannot, and gives up on a bug after five deliveries", () => {
    expect(failureOutcome(new JadeError(ErrorCode.Unavailable, "log electing"), 1_000)).toBe("retry");
    expect(failureOutcome(new JadeError(ErrorCode.InvalidArgument, "bad"), 1)).toBe("dead-letter");
    expect(failureOutcome(new Error("bug"), unexpectedFailuresMax - 1)).toBe("retry");
    expect(failureOutcome(new Error("bug"), unexpectedFailuresMax)).toBe("dead-letter");
  });
});
