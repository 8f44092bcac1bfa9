/**
 * Generators of the values inside valid requests: vectors of a collection's space,
 * ids, payloads and filters. They follow docs/api.md, written out here a second
 * time on purpose: a generator that called the server's own validators could not
 * catch a validator that refuses what the documentation allows.
 */
import fc from "fast-check";
import type { Json } from "./body.ts";
import type { CollectionSpec } from "./world.ts";

/** Documented id rules: 1–256 UTF-8 bytes, well-formed, no C0/C1 control characters. */
export function isDocumentedId(id: string): boolean {
  return id.length > 0 && Buffer.byteLength(id) <= 256 && id.isWellFormed() && !/[\u0000-\u001f\u007f-\u009f]/.test(id);
}

const unicodeText = (maxLength: number) => fc.string({ unit: "grapheme", maxLength });

/**
 * 256 unicode ids drawn once from a fixed seed: written ids come from a bounded set, so
 * the scratch collections stop growing and the node's memory at the end of a long run
 * measures leaks, not data.
 */
const unicodeIds: readonly string[] = fc.sample(unicodeText(24).filter(isDocumentedId), { seed: 8, numRuns: 256 });

export const idArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 63 }).map((i) => `s${i}`) },
  { weight: 1, arbitrary: fc.constantFrom(...unicodeIds) },
  { weight: 1, arbitrary: fc.constantFrom("constructor", "__proto__", "prototype", "toString", "a.b", "日本語", "🦀", "x".repeat(256)) },
);

/** A vector valid in the spec's space: components within ±4 (inside f16 and every norm bound), cosine ones with a direction. */
export function vectorArb(s: Pick<CollectionSpec, "dimension" | "metric">): fc.Arbitrary<number[]> {
  return fc
    .array(fc.float({ min: -4, max: 4, noNaN: true, noDefaultInfinity: true }), { minLength: s.dimension, maxLength: s.dimension })
    .map((v) => (s.metric === "cosine" && v.every((x) => Math.abs(x) < 1e-3) ? [1, ...v.slice(1)] : v));
}

export const fieldNames = ["color", "n", "tags", "meta.even", "meta.constructor", "constructor", "missing", "a.b.c"] as const;

const payloadKey = fc.oneof(
  fc.constantFrom("color", "n", "tags", "meta", "constructor", "prototype", "toString", "", "with space", "日本"),
  unicodeText(12),
).filter((k) => k !== "__proto__" && k.isWellFormed() && Buffer.byteLength(k) <= 256);

const scalarArb: fc.Arbitrary<Json> = fc.oneof(
  unicodeText(16),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom("red", "green", "blue", "\u0000nul inside", "tab\tand\nnewline"),
);

export const payloadArb: fc.Arbitrary<Json> = fc.letrec<{ value: Json; object: Json }>((tie) => ({
  value: fc.oneof({ depthSize: "small", maxDepth: 4, withCrossShrink: true }, scalarArb, fc.array(tie("value"), { maxLength: 4 }), tie("object")),
  object: fc.dictionary(payloadKey, tie("value"), { maxKeys: 5, noNullPrototype: true }) as fc.Arbitrary<Json>,
})).object;

const operandArb: fc.Arbitrary<Json> = fc.oneof(fc.constantFrom("red", "green", "t1", 3, 10.5, true, false, null), unicodeText(8), fc.integer({ min: -100, max: 200 }));
const orderedArb: fc.Arbitrary<Json> = fc.oneof(fc.integer({ min: -10, max: 130 }), fc.constantFrom("a", "m", "t3"));

const fieldClause: fc.Arbitrary<Json> = fc
  .tuple(
    fc.constantFrom(...fieldNames),
    fc.oneof(
      operandArb,
      operandArb.map((v) => ({ $eq: v })),
      operandArb.map((v) => ({ $ne: v })),
      fc.array(operandArb, { maxLength: 5 }).map((v) => ({ $in: v })),
      fc.array(operandArb, { maxLength: 5 }).map((v) => ({ $nin: v })),
      fc.tuple(fc.constantFrom("$gt", "$gte", "$lt", "$lte"), orderedArb).map(([op, v]) => ({ [op]: v })),
    ),
  )
  .map(([field, condition]) => ({ [field]: condition }) as Json);

/** Valid filters: field clauses and $and/$or up to 3 levels (the limit is 8). */
export const filterArb: fc.Arbitrary<Json> = fc.letrec<{ filter: Json }>((tie) => ({
  filter: fc.oneof(
    { depthSize: "small", maxDepth: 3 },
    fieldClause,
    fc.constant({}),
    fc.tuple(fc.constantFrom("$and", "$or"), fc.array(tie("filter"), { minLength: 1, maxLength: 3 })).map(([op, list]) => ({ [op]: list }) as Json),
  ),
})).filter;

export const timeoutArb = fc.integer({ min: 1, max: 2_000 });
