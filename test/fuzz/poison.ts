/**
 * Writes to the reference collections that the documentation says must be refused
 * whole: each upsert carries good points (overwriting reference ids, so an accepted
 * one shows) around one bad point, each delete good ids around one bad id, each transaction
 * a bad point or a condition that fails. Also
 * stray messages published straight into a reference shard's log, which every
 * replica must skip. After a batch with any of these, the references are compared
 * with their first reading.
 */
import fc from "fast-check";
import { Packr } from "msgpackr";
import { defineKey, nested, NumberLiteral, type Json } from "./body.ts";
import { vectorBytes, type FuzzRequest } from "./requests.ts";
import { vectorArb } from "./values.ts";
import { referencePointsCount, type CollectionSpec, type World } from "./world.ts";

const refId = fc.integer({ min: 0, max: referencePointsCount - 1 }).map((i) => `r${i}`);

/** A vector of `s` with one component (or the whole vector) made invalid for its space. */
function badVector(s: CollectionSpec): fc.Arbitrary<Json> {
  const component: Json[] = [new NumberLiteral("1e39"), new NumberLiteral("-1e39"), new NumberLiteral("3.4028236e38"), new NumberLiteral("1e999"), "1", null, true, [1]];
  if (s.quantization === "f16") component.push(65505, -70_000, 1e5);
  const whole: Json[] = [[], Array.from({ length: s.dimension - 1 }, () => 1), Array.from({ length: s.dimension + 1 }, () => 1), "vector", null, {}];
  if (s.metric === "cosine") whole.push(Array.from({ length: s.dimension }, () => 0), Array.from({ length: s.dimension }, () => 1e-39));
  else whole.push(Array.from({ length: s.dimension }, () => 1e19));
  return fc.oneof(
    fc.tuple(vectorArb(s), fc.integer({ min: 0, max: s.dimension - 1 }), fc.constantFrom(...component)).map(([v, i, x]) => {
      const copy: Json[] = [...v];
      copy[i] = x;
      return copy;
    }),
    fc.constantFrom(...whole),
  );
}

function protoPayload(): Json {
  const payload: { [key: string]: Json } = { color: "red" };
  defineKey(payload, "__proto__", { color: "blue" });
  return payload;
}

const badPayloads: readonly Json[] = [
  { x: new NumberLiteral("1e999") },
  { s: "lone \ud800" },
  { ["k".repeat(257)]: 1 },
  nested(17, 1, (inner) => ({ d: inner })),
  Object.fromEntries(Array.from({ length: 1_025 }, (_, i) => [`k${i}`, i])),
  { list: Array.from({ length: 4_097 }, () => 0) },
  { big: "b".repeat(64 * 1024) },
  [1, 2],
  "payload",
  7,
];

const badIds: readonly Json[] = ["", "x".repeat(257), "é".repeat(129), "nul\u0000", "bell\u0007", "c1\u0085", "\ud800", "x\udc00y", 7, null, ["r1"]];

/** One point that breaks a rule: its vector, id, payload, or its shape. */
function badPoint(s: CollectionSpec): fc.Arbitrary<Json> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.tuple(refId, badVector(s)).map(([id, vector]) => ({ id, vector })) },
    { weight: 2, arbitrary: fc.tuple(fc.constantFrom(...badIds), vectorArb(s)).map(([id, vector]) => ({ id, vector })) },
    { weight: 2, arbitrary: fc.tuple(refId, vectorArb(s), fc.oneof(fc.constantFrom(...badPayloads), fc.constant(null).map(protoPayload))).map(([id, vector, payload]) => ({ id, vector, payload })) },
    { weight: 1, arbitrary: fc.tuple(refId, vectorArb(s)).map(([id, vector]) => ({ id, vector, extra: 1 })) },
    { weight: 1, arbitrary: fc.constantFrom<Json>({ id: "r1" }, { vector: [1] }, null, "point", []) },
  );
}

function refusedUpsert(s: CollectionSpec): fc.Arbitrary<Json> {
  const good = fc.tuple(refId, vectorArb(s)).map(([id, vector]): Json => ({ id, vector, payload: { poisoned: true } }));
  const withBadPoint = fc
    .tuple(fc.array(good, { maxLength: 4 }), badPoint(s), fc.nat())
    .map(([points, bad, at]) => {
      const all = [...points];
      all.splice(at % (points.length + 1), 0, bad);
      return { points: all, consistency: "all" } as Json;
    });
  const badOptions = fc
    .tuple(fc.array(good, { minLength: 1, maxLength: 3 }), fc.constantFrom<[string, Json]>(
      ["consistency", "maybe"],
      ["requestId", "a\r\nb"],
      ["requestId", "with space"],
      ["requestId", "r".repeat(129)],
      ["timeoutMs", 0],
      ["timeoutMs", 60_001],
      ["timeoutMs", 1.5],
      ["timeoutMs", "100"],
      ["extra", true],
    ))
    .map(([points, [key, value]]) => ({ points, [key]: value }) as Json);
  const badList = fc.constantFrom<Json>({ points: [] }, { points: {} }, { points: "x" }, {});
  return fc.oneof({ weight: 6, arbitrary: withBadPoint }, { weight: 2, arbitrary: badOptions }, { weight: 1, arbitrary: badList });
}

function refusedDelete(): fc.Arbitrary<Json> {
  return fc.oneof(
    fc.tuple(fc.array(refId, { maxLength: 4 }), fc.constantFrom(...badIds), fc.nat()).map(([ids, bad, at]) => {
      const all: Json[] = [...ids];
      all.splice(at % (ids.length + 1), 0, bad);
      return { ids: all };
    }),
    fc.array(refId, { minLength: 1, maxLength: 3 }).map((ids): Json => ({ ids, consistency: "maybe" })),
    fc.constantFrom<Json>({ ids: [] }, { ids: "r1" }, {}),
  );
}

/**
 * Transactions on a reference collection that must change nothing: one bad point in an op (refused
 * before anything is written), a malformed request, or a valid one whose condition fails (every
 * reference point exists): prepared on the shards, voted no, aborted there.
 */
function refusedTransaction(s: CollectionSpec): fc.Arbitrary<Json> {
  const good = fc.tuple(refId, vectorArb(s)).map(([id, vector]): Json => ({ id, vector, payload: { poisoned: true } }));
  const withBadPoint = fc.tuple(fc.array(good, { maxLength: 3 }), badPoint(s), refId).map(([points, bad, id]): Json => ({ ops: [{ op: "delete", ids: [id] }, { op: "upsert", points: [...points, bad] }] }));
  const failing = fc
    .tuple(fc.array(good, { minLength: 1, maxLength: 3 }), refId, fc.constantFrom("log", "all"))
    .map(([points, id, consistency]): Json => ({ ops: [{ op: "upsert", points }, { op: "delete", ids: [id] }], conditions: [{ id, exists: false }], consistency }));
  const malformed = fc.constantFrom<Json>(
    {},
    { ops: [] },
    { ops: [{ op: "frob", ids: ["r1"] }] },
    { ops: [{ op: "delete", ids: ["r1"] }], conditions: [{ id: "r1" }] },
    { ops: [{ op: "delete", ids: ["r1"] }], conditions: [{ id: "r1", exists: false, version: 1 }] },
    { ops: [{ op: "delete", ids: ["r1"] }], timeoutMs: 60_001 },
    { ops: [{ op: "delete", ids: ["r1"], extra: true }] },
  );
  return fc.oneof({ weight: 3, arbitrary: withBadPoint }, { weight: 3, arbitrary: failing }, { weight: 1, arbitrary: malformed });
}

const packr = new Packr({ useRecords: false });

/** Messages no writer makes, published straight into a reference shard's log. */
function strayLogEntry(s: CollectionSpec): fc.Arbitrary<Uint8Array> {
  const nanBytes = new Uint8Array(Float32Array.from({ length: s.dimension }, () => Number.NaN).buffer);
  const infBytes = new Uint8Array(Float32Array.from({ length: s.dimension }, (_, i) => (i === 0 ? Infinity : 1)).buffer);
  const zeroBytes = new Uint8Array(s.dimension * 4);
  const entries: unknown[] = [
    { k: "u", i: ["r1"], p: [null], d: s.dimension, v: nanBytes },
    { k: "u", i: ["r2"], p: [null], d: s.dimension, v: infBytes },
    { k: "u", i: ["r3"], p: [null], d: s.dimension + 1, v: new Uint8Array((s.dimension + 1) * 4) },
    { k: "u", i: ["r4", "r5"], p: [null], d: s.dimension, v: new Uint8Array(s.dimension * 8) },
    { k: "d", i: [5] },
    { k: "d", i: "r1" },
    { k: "x", i: ["r1"] },
    [1, 2, 3],
    "text",
  ];
  if (s.metric === "cosine") entries.push({ k: "u", i: ["r6"], p: [null], d: s.dimension, v: zeroBytes });
  return fc.oneof(fc.constantFrom(...entries).map((e) => packr.pack(e)), fc.uint8Array({ minLength: 0, maxLength: 64 }));
}

/** Binary upserts (msgpack columns) that must be refused whole: bad float32 values, lengths, ids or payloads. */
function refusedBinaryUpsert(s: CollectionSpec): fc.Arbitrary<unknown> {
  const dim = s.dimension;
  const row = (fill: (i: number) => number) => Array.from({ length: dim }, (_, i) => fill(i));
  const badRows: number[][] = [row(() => Number.NaN), row((i) => (i === 0 ? Infinity : 1)), row((i) => (i === 0 ? -Infinity : 1))];
  if (s.quantization === "f16") badRows.push(row(() => 70_000));
  if (s.metric === "cosine") badRows.push(row(() => 0));
  else badRows.push(row(() => 1e19));
  const good = fc.array(fc.tuple(refId, vectorArb(s)), { minLength: 1, maxLength: 4 });
  const columns = (rows: [string, number[]][]) => ({ ids: rows.map(([id]) => id), vectors: vectorBytes(rows.flatMap(([, v]) => v)), consistency: "all" });
  return fc.oneof(
    fc.tuple(good, refId, fc.constantFrom(...badRows), fc.nat()).map(([rows, id, bad, at]) => {
      const all = [...rows];
      all.splice(at % (rows.length + 1), 0, [id, bad]);
      return columns(all);
    }),
    good.map((rows) => ({ ...columns(rows), vectors: vectorBytes(rows.flatMap(([, v]) => v).slice(1)) })),
    good.map((rows) => ({ ...columns(rows), vectors: new Uint8Array(rows.length * dim * 4 + 2) })),
    // msgpack cannot carry a lone surrogate (the encoder sends U+FFFD, a valid id): only the ids it can carry.
    fc.tuple(good, fc.constantFrom(...badIds.filter((id) => typeof id !== "string" || id.isWellFormed()))).map(([rows, id]) => ({ ...columns(rows), ids: [...rows.map(([i]) => i).slice(1), id] })),
    fc.tuple(good, fc.constantFrom(...badPayloads.slice(2, 7))).map(([rows, payload]) => ({ ...columns(rows), payloads: rows.map(() => payload) })),
    good.map((rows) => ({ ...columns(rows), payloads: [...rows.map(() => null), null] })),
    good.map((rows) => ({ ...columns(rows), payloads: rows.map(() => protoPayload()) })),
  );
}

export function poisonRequest(world: World): fc.Arbitrary<FuzzRequest> {
  return fc.constantFrom(...world.references).chain((s) =>
    fc.oneof(
      {
        weight: 2,
        arbitrary: refusedBinaryUpsert(s).map((msgpack): FuzzRequest => ({ ...refused(`jade.v1.${s.name}.upsert`, "upsert.msgpack.refused", null), body: { msgpack }, encoding: "msgpack" })),
      },
      { weight: 6, arbitrary: refusedUpsert(s).map((json): FuzzRequest => refused(`jade.v1.${s.name}.upsert`, "upsert.refused", json)) },
      { weight: 2, arbitrary: refusedDelete().map((json): FuzzRequest => refused(`jade.v1.${s.name}.delete`, "delete.refused", json)) },
      { weight: 2, arbitrary: refusedTransaction(s).map((json): FuzzRequest => refused(`jade.v1.${s.name}.transaction`, "transaction.refused", json)) },
      {
        weight: 1,
        arbitrary: fc.tuple(fc.integer({ min: 0, max: s.shards - 1 }), strayLogEntry(s)).map(([shard, bytes]): FuzzRequest => ({
          family: "log.stray",
          subject: `jade.log.${s.name}.${shard}`,
          body: { bytes },
          expect: "any",
          transport: "publish",
          touchesReference: true,
        })),
      },
    ),
  );
}

function refused(subject: string, family: string, json: Json): FuzzRequest {
  return { family, subject, body: { json }, expect: "refused", transport: "request", touchesReference: true };
}
