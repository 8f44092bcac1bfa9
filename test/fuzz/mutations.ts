/**
 * Mutations of valid requests: a value anywhere replaced by a nasty one (boundary
 * numbers, type swaps, huge or deep values, control characters and lone
 * surrogates, prototype keys), a field dropped or added, the collection token of the
 * subject replaced, or the body replaced by text that is not a request at all
 * (truncated, binary, empty, oversized). A mutated request may happen to stay
 * valid; the properties only ask that its reply is documented and never `internal`.
 * A backup location stays below the run's temp dir whatever the mutation (`confine`).
 */
import fc from "fast-check";
import { limits } from "../../src/runtime/limits.ts";
import { defineKey, isObject, nested, NumberLiteral, pathsOf, toJsonText, valueAt, withValue, type Json, type Path } from "./body.ts";
import type { FuzzRequest } from "./requests.ts";
import { confineDirs } from "./backups.ts";

/** Numbers at the edges: of float32, f16, safe integers, subnormals, and literals JSON.parse turns into something else. */
export const boundaryNumbers: readonly Json[] = [
  0,
  new NumberLiteral("-0"),
  5e-324,
  1e-310,
  1.1754942e-38,
  1e-45,
  3.4028235e38,
  new NumberLiteral("3.4028236e38"),
  new NumberLiteral("1e39"),
  new NumberLiteral("-1e39"),
  65504,
  65505,
  -65505,
  2 ** 31,
  2 ** 53,
  new NumberLiteral("9007199254740993"),
  -1,
  1.5,
  new NumberLiteral("1e999"),
  new NumberLiteral("-1e999"),
  new NumberLiteral(`0.${"3".repeat(5_000)}1`),
  new NumberLiteral(`1${"0".repeat(400)}`),
  new NumberLiteral("1E-400"),
];

function prototypeKeys(): Json {
  const value: { [key: string]: Json } = {};
  defineKey(value, "__proto__", { polluted: true, color: "red" });
  value["constructor"] = { prototype: { polluted: true } };
  value["prototype"] = { polluted: true };
  return value;
}

const nastyStrings: readonly string[] = [
  "",
  "\u0000",
  "a\u0000b",
  "\u0001\u001f\u007f\u0085",
  "\ud800",
  "x\udfff",
  "\u202etxet",
  "e\u0301\u0301\u0301",
  "🦀".repeat(100),
  "__proto__",
  "constructor",
  "$and",
  "a.b",
  " ",
];

/** Values that are expensive to build are built once. */
const bigValues: readonly Json[] = [
  "a".repeat(1 << 20),
  Array.from({ length: 100_000 }, (_, i) => i % 7),
  nested(1_000, 1, (inner) => [inner]),
  nested(1_000, { a: 1 }, (inner) => ({ $and: [inner] })),
  { color: { $in: Array.from({ length: 100_000 }, (_, i) => `v${i}`) } },
  Array.from({ length: 5_000 }, () => 0.5),
];
/** JSON only: msgpack encoders (ours and the node's) recurse, and 10,000 levels overflow the stack before a byte is sent. */
const veryDeep: Json = nested(10_000, {}, (inner) => ({ a: inner }));

function nastyValueOf(big: readonly Json[]): fc.Arbitrary<Json> {
  return fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...boundaryNumbers) },
    { weight: 4, arbitrary: fc.constantFrom<Json>("", "x", true, false, null, [], {}, 0, [[]], [null], ["1"]) },
    { weight: 3, arbitrary: fc.constantFrom(...nastyStrings) },
    { weight: 1, arbitrary: fc.constantFrom(...big) },
    { weight: 1, arbitrary: fc.constant(null).map(prototypeKeys) },
    { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 40 }) },
  );
}

export const nastyValue: fc.Arbitrary<Json> = nastyValueOf([...bigValues, veryDeep]);
const packableNastyValue: fc.Arbitrary<Json> = nastyValueOf(bigValues);

const nastyKey = fc.constantFrom("__proto__", "constructor", "prototype", "extra", "", "\u0000", "\ud800", "k".repeat(300), "toString", "$where");

type JsonMutation = { kind: "replace"; path: Path; value: Json } | { kind: "drop"; path: Path } | { kind: "add"; path: Path; key: string; value: Json };

function applyMutation(root: Json, m: JsonMutation): Json {
  switch (m.kind) {
    case "replace":
      return withValue(root, m.path, m.value);
    case "drop":
      return m.path.length === 0 ? {} : withValue(root, m.path, undefined);
    case "add": {
      const target = valueAt(root, m.path);
      if (!isObject(target)) return withValue(root, m.path, [target ?? null, m.value]);
      const copy: { [key: string]: Json } = {};
      for (const key of Object.keys(target)) defineKey(copy, key, target[key]!);
      defineKey(copy, m.key, m.value);
      return withValue(root, m.path, copy);
    }
  }
}

function jsonMutation(root: Json, values = nastyValue): fc.Arbitrary<JsonMutation> {
  const paths = pathsOf(root);
  const path = fc.constantFrom(...paths);
  return fc.oneof(
    { weight: 5, arbitrary: fc.tuple(path, values).map(([p, value]): JsonMutation => ({ kind: "replace", path: p, value })) },
    { weight: 2, arbitrary: path.map((p): JsonMutation => ({ kind: "drop", path: p })) },
    { weight: 2, arbitrary: fc.tuple(path, nastyKey, values).map(([p, key, value]): JsonMutation => ({ kind: "add", path: p, key, value })) },
  );
}

const encoder = new TextEncoder();

/** A body just under the NATS max payload: the largest request a node can receive. */
let oversized: Uint8Array | undefined;
const oversizedBody = (): Uint8Array => (oversized ??= encoder.encode(`{"pad":"${"p".repeat(limits.natsPayloadBytesMax - 4_096)}"}`));

/** Bodies that are not a JSON request: what a broken or hostile client sends. */
function rawBody(text: string): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    { weight: 20, arbitrary: fc.integer({ min: 0, max: Math.max(0, text.length - 1) }).map((cut) => encoder.encode(text.slice(0, cut))) },
    { weight: 20, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 300 }) },
    {
      weight: 20,
      arbitrary: fc.constantFrom("", " ", "null", "[]", "7", '"text"', "true", "{", "}", "{}}", `${text}${text}`, text.replace("{", '{"dup":1,"dup":2,')).map((t) => encoder.encode(t)),
    },
    { weight: 5, arbitrary: fc.constant(Uint8Array.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d])) },
    { weight: 1, arbitrary: fc.constant(null).map(oversizedBody) },
  );
}

/** Collection tokens a subject may carry that name no collection (all legal NATS subject tokens). */
const weirdCollectionToken = fc.constantFrom("日本語", "x".repeat(1_000), "bad$name", "-", "_", "UPPER", "fz-none", "collections", "0");

export function mutated(valid: fc.Arbitrary<FuzzRequest>): fc.Arbitrary<FuzzRequest> {
  return valid.chain((request) => {
    const family = `${request.family}.mutated`;
    const base = { ...request, family, expect: "any" as const };
    if ("json" in request.body) {
      const json = request.body.json;
      const confined = (j: Json): Json => (request.confine === undefined ? j : confineDirs(j, request.confine));
      return fc.oneof(
        { weight: 8, arbitrary: jsonMutation(json).map((m): FuzzRequest => ({ ...base, body: { json: confined(applyMutation(json, m)) } })) },
        { weight: 2, arbitrary: rawBody(toJsonText(json)).map((bytes): FuzzRequest => ({ ...base, body: { bytes } })) },
        { weight: 1, arbitrary: weirdCollectionToken.map((token): FuzzRequest => ({ ...base, subject: replaceCollectionToken(request.subject, token) })) },
      );
    }
    if ("msgpack" in request.body) {
      const object = request.body.msgpack as Json;
      return fc.oneof(
        { weight: 3, arbitrary: jsonMutation(object, packableNastyValue).map((m): FuzzRequest => ({ ...base, body: { msgpack: applyMutation(object, m) } })) },
        { weight: 1, arbitrary: fc.uint8Array({ minLength: 0, maxLength: 300 }).map((bytes): FuzzRequest => ({ ...base, body: { bytes } })) },
      );
    }
    return fc.constant(base);
  });
}

/** `jade.v1.<collection>.<op>` (or the node-addressed form) with another collection token. */
function replaceCollectionToken(subject: string, token: string): string {
  const parts = subject.split(".");
  // A diagnostics subject names a node, not a collection: another token would reach nobody.
  if (parts[1] === "diag") return subject;
  const at = parts[1] === "n" ? 4 : parts[0] === "jade" && parts[1] === "replica" ? 3 : 2;
  if (parts.length <= at) return subject;
  parts[at] = token;
  return parts.join(".");
}
