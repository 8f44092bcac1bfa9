import { describe, expect, it } from "vitest";
import { ErrorCode, JadeError } from "../src/runtime/errors.ts";
import { checkFilterAst, compileFilter, parseFilter } from "../src/runtime/filter.ts";
import { limits } from "../src/runtime/limits.ts";
import type { Payload } from "../src/runtime/schemas.ts";

const payloads: Record<string, Payload | undefined> = {
  red: { color: "red", size: 10, tags: ["a", "b"], meta: { owner: "ann", score: 0.5 }, active: true, gone: null },
  blue: { color: "blue", size: 3, tags: ["c"], meta: { owner: "bob" }, active: false },
  bare: { size: "10" },
  none: undefined,
};

function matching(filter: unknown): string[] {
  const predicate = compileFilter(parseFilter(filter));
  return Object.entries(payloads)
    .filter(([, payload]) => predicate(payload))
    .map(([name]) => name);
}

describe("filter evaluation", () => {
  const cases: [string, unknown, string[]][] = [
    ["empty filter matches all", {}, ["red", "blue", "bare", "none"]],
    ["implicit equality", { color: "red" }, ["red"]],
    ["$eq", { color: { $eq: "blue" } }, ["blue"]],
    ["equality is type-strict", { size: 10 }, ["red"]],
    ["boolean equality", { active: false }, ["blue"]],
    ["null matches explicit null only", { gone: null }, ["red"]],
    ["$ne matches missing fields", { color: { $ne: "red" } }, ["blue", "bare", "none"]],
    ["$in", { color: { $in: ["red", "green"] } }, ["red"]],
    ["$in with mixed types", { size: { $in: [3, "10"] } }, ["blue", "bare"]],
    ["$nin matches missing fields", { color: { $nin: ["red"] } }, ["blue", "bare", "none"]],
    ["$gt numbers", { size: { $gt: 3 } }, ["red"]],
    ["$gte numbers", { size: { $gte: 3 } }, ["red", "blue"]],
    ["$lt numbers", { size: { $lt: 10 } }, ["blue"]],
    ["$lte numbers", { size: { $lte: 10 } }, ["red", "blue"]],
    ["$gt strings only compare with strings", { size: { $gt: "1" } }, ["bare"]],
    ["$lt strings", { color: { $lt: "c" } }, ["blue"]],
    ["range operators are ANDed", { size: { $gt: 2, $lt: 5 } }, ["blue"]],
    ["fields are ANDed", { color: "red", size: 10 }, ["red"]],
    ["fields are ANDed (no match)", { color: "red", size: 3 }, []],
    ["dotted path", { "meta.owner": "bob" }, ["blue"]],
    ["dotted path range", { "meta.score": { $lt: 1 } }, ["red"]],
    ["dotted path through a non-object", { "color.x": { $ne: 1 } }, ["red", "blue", "bare", "none"]],
    ["missing dotted path", { "meta.score": { $gte: 0 } }, ["red"]],
    ["array equality matches any element", { tags: "b" }, ["red"]],
    ["array $in", { tags: { $in: ["c", "z"] } }, ["blue"]],
    ["array $nin means no element matches", { tags: { $nin: ["a"] } }, ["blue", "bare", "none"]],
    ["array $ne means no element equals", { tags: { $ne: "c" } }, ["red", "bare", "none"]],
    ["$or", { $or: [{ color: "red" }, { size: 3 }] }, ["red", "blue"]],
    ["$and", { $and: [{ color: { $in: ["red", "blue"] } }, { size: { $lt: 5 } }] }, ["blue"]],
    ["nested $or inside $and", { $and: [{ $or: [{ color: "red" }, { color: "blue" }] }, { active: true }] }, ["red"]],
    ["$and next to a field", { $and: [{ size: { $gt: 1 } }], color: "blue" }, ["blue"]],
    ["equality on an object never matches", { meta: { $eq: "ann" } }, []],
    ["prototype properties are not fields", { constructor: { $ne: null }, toString: { $nin: ["x"] } }, ["red", "blue", "bare", "none"]],
    ["inherited property does not match equality", { "meta.hasOwnProperty": { $in: [null] } }, []],
  ];
  it.each(cases)("%s", (_name, filter, expected) => {
    expect(matching(filter)).toEqual(expected);
  });

  it("normalizes to a structured-cloneable AST", () => {
    const filter = parseFilter({ color: "red", $or: [{ size: { $gt: 1, $lte: 9 } }, { tags: { $in: ["a"] } }] });
    expect(structuredClone(filter)).toEqual(filter);
    expect(filter).toEqual({
      op: "and",
      clauses: [
        { op: "eq", path: ["color"], value: "red" },
        {
          op: "or",
          clauses: [
            {
              op: "and",
              clauses: [
                { op: "gt", path: ["size"], value: 1 },
                { op: "lte", path: ["size"], value: 9 },
              ],
            },
            { op: "in", path: ["tags"], values: ["a"] },
          ],
        },
      ],
    });
  });
});

function nested(depth: number): unknown {
  let filter: unknown = { a: 1 };
  for (let i = 0; i < depth; i++) filter = { $and: [filter] };
  return filter;
}

describe("invalid filters", () => {
  const cases: [string, unknown, RegExp][] = [
    ["not an object", "red", /must be an object/],
    ["null", null, /must be an object/],
    ["an array", [{ a: 1 }], /must be an object/],
    ["$regex", { name: { $regex: "^a" } }, /unknown operator "\$regex"/],
    ["$foo at top level", { $foo: [{ a: 1 }] }, /unknown operator "\$foo"/],
    ["$not", { $not: { a: 1 } }, /unknown operator "\$not"/],
    ["$in not an array", { a: { $in: "x" } }, /must be an array/],
    ["$nin with an object", { a: { $nin: [{ b: 1 }] } }, /\$nin\[0\].*strings, numbers/],
    ["$in with an array value", { a: { $in: [[1]] } }, /strings, numbers/],
    ["$gt with a boolean", { a: { $gt: true } }, /number or a string/],
    ["$lte with null", { a: { $lte: null } }, /number or a string/],
    ["$eq with an array", { a: { $eq: [1] } }, /string, number, boolean or null/],
    ["equality with an array", { a: [1, 2] }, /string, number, boolean or null/],
    ["equality with a nested object", { a: { b: 1 } }, /dotted path like "a\.b"/],
    ["mixed operators and fields", { a: { $gt: 1, b: 2 } }, /dotted path/],
    ["empty operator object", { a: {} }, /empty operator object/],
    ["empty $and", { $and: [] }, /must not be empty/],
    ["empty $or", { $or: [] }, /must not be empty/],
    ["$or not an array", { $or: { a: 1 } }, /must be an array of filters/],
    ["$and member not an object", { $and: [1] }, /must be an object/],
    ["empty path segment", { "a..b": 1 }, /empty path segment/],
    ["empty field name", { "": 1 }, /empty path segment/],
    ["too deep", nested(limits.filterDepthMax + 1), /nested deeper than/],
    [
      "too many clauses",
      Object.fromEntries(Array.from({ length: limits.filterClausesMax + 1 }, (_, i) => [`f${i}`, i])),
      /more than \d+ clauses/,
    ],
    ["$in list too long", { a: { $in: Array.from({ length: limits.inListMax + 1 }, (_, i) => i) } }, /at most/],
    // JSON.parse makes "__proto__" an own key, as a request body would.
    ["__proto__ field", JSON.parse('{"__proto__": 1}'), /segment "__proto__" is reserved/],
    ["__proto__ segment", { "meta.__proto__.x": 1 }, /segment "__proto__" is reserved/],
    ["path deeper than a payload", { [Array.from({ length: limits.filterPathSegmentsMax + 1 }, () => "a").join(".")]: 1 }, /17 segments/],
    ["key longer than a payload key", { ["k".repeat(limits.payloadKeyBytesMax + 1)]: 1 }, /longer than 256 bytes/],
    ["lone surrogate operand", { a: "\ud800" }, /lone UTF-16 surrogate/],
    ["lone surrogate in $in", { a: { $in: ["ok", "x\udc00"] } }, /\$in\[1\]: contains a lone/],
    ["Infinity (JSON 1e999)", JSON.parse('{"a": {"$gt": 1e999}}'), /number or a string, got a non-finite number/],
    ["a 1 MiB operator name is quoted short", { a: { ["$" + "x".repeat(1 << 20)]: 1 } }, /^.{0,300}$/],
  ];
  it.each(cases)("%s", (_name, filter, message) => {
    let thrown: unknown;
    try {
      parseFilter(filter);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(JadeError);
    expect((thrown as JadeError).code).toBe(ErrorCode.InvalidArgument);
    expect((thrown as JadeError).message).toMatch(message);
  });

  it("checkFilterAst accepts what parseFilter builds and refuses anything else", () => {
    for (const [, raw] of [["", { a: 1 }], ["", { $or: [{ a: { $gt: 1, $lt: 5 } }, { b: { $nin: ["x", null] } }] }], ["", nested(limits.filterDepthMax)]] as const) {
      const ast = parseFilter(raw);
      expect(checkFilterAst(structuredClone(ast))).toEqual(ast);
    }
    const bad: unknown[] = [null, 1, { op: "xor", clauses: [] }, { op: "eq", path: [], value: 1 }, { op: "eq", path: ["a"], value: {} }, { op: "in", path: ["a"], values: "x" }, { op: "and", clauses: [{ op: "gt", path: ["a"], value: true }] }];
    for (const ast of bad) expect(() => checkFilterAst(ast)).toThrow(JadeError);
    let deep: unknown = { op: "eq", path: ["a"], value: 1 };
    for (let i = 0; i < 10_000; i++) deep = { op: "and", clauses: [deep] };
    expect(() => checkFilterAst(deep)).toThrow(/nested deeper/);
  });

  it("accepts filters at the limits", () => {
    expect(() => parseFilter(nested(limits.filterDepthMax))).not.toThrow();
    expect(() => parseFilter({ a: { $in: Array.from({ length: limits.inListMax }, (_, i) => i) } })).not.toThrow();
  });
});
