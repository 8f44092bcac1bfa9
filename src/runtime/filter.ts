/**
 * Payload filters (API §5): `{field: value}`, `{field: {$op: operand, …}}`,
 * `{$and: [...]}`, `{$or: [...]}`. Several fields or operators in one object are
 * ANDed. Dotted paths (`"a.b"`) address nested payload objects.
 *
 * `parseFilter` validates untrusted input once, at the gateway, into a normalized
 * AST of plain objects (it crosses worker boundaries by structured clone);
 * `compileFilter` turns that AST into closures evaluated per payload in the worker.
 *
 * Semantics follow MongoDB where users expect them to:
 * - a missing field never matches $eq/$in/$gt/$gte/$lt/$lte, and always matches $ne/$nin;
 * - `{f: null}` matches an explicit null only (unlike MongoDB, not a missing field);
 * - an array field matches $eq/$in/$gt… when any element matches, and $ne/$nin when none does;
 * - $gt/$gte/$lt/$lte compare numbers with numbers and strings with strings (UTF-16
 *   code-unit order); across types they are false;
 * - arrays are not traversed in the middle of a dotted path;
 * - `{}` matches every point.
 */
import { invalidArgument } from "./errors.ts";
import { limits } from "./limits.ts";
import type { Payload } from "./schemas.ts";
import { clip, describeValue, quote, unicodeIssue, utf8Bytes } from "./text.ts";

export type Scalar = string | number | boolean | null;
export type Ordered = string | number;

export const EqualityOp = { Eq: "eq", Ne: "ne" } as const;
export const SetOp = { In: "in", Nin: "nin" } as const;
export const RangeOp = { Gt: "gt", Gte: "gte", Lt: "lt", Lte: "lte" } as const;
export const LogicalOp = { And: "and", Or: "or" } as const;

type ValuesOf<T> = T[keyof T];

export type Filter =
  | { op: ValuesOf<typeof LogicalOp>; clauses: Filter[] }
  | { op: ValuesOf<typeof EqualityOp>; path: string[]; value: Scalar }
  | { op: ValuesOf<typeof SetOp>; path: string[]; values: Scalar[] }
  | { op: ValuesOf<typeof RangeOp>; path: string[]; value: Ordered };

export type Predicate = (payload: Payload | undefined) => boolean;

type FieldOp = Exclude<Filter["op"], ValuesOf<typeof LogicalOp>>;

const fieldOperators: Readonly<Record<string, FieldOp>> = {
  $eq: "eq",
  $ne: "ne",
  $in: "in",
  $nin: "nin",
  $gt: "gt",
  $gte: "gte",
  $lt: "lt",
  $lte: "lte",
};

const matchAll: Filter = { op: "and", clauses: [] };

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isScalar(value: unknown): value is Scalar {
  return (
    value === null ||
    typeof value === "string" ||
    typeof value === "boolean" ||
    (typeof value === "number" && Number.isFinite(value))
  );
}

/** Parse state shared by one parseFilter call: the clause budget. */
interface Budget {
  clauses: number;
}

function spend(budget: Budget): void {
  budget.clauses += 1;
  if (budget.clauses > limits.filterClausesMax) {
    throw invalidArgument(`filter: more than ${limits.filterClausesMax} clauses`);
  }
}

/**
 * A dotted field path. Its segments are payload keys, so they follow the payload's key
 * rules: a path no payload can hold (`__proto__`, too deep, a lone surrogate) is refused
 * rather than silently matching nothing.
 */
function parsePath(field: string, where: string): string[] {
  const path = field.split(".");
  if (path.some((segment) => segment.length === 0)) {
    throw invalidArgument(`${where}: field name ${quote(field)} has an empty path segment`);
  }
  if (path.length > limits.filterPathSegmentsMax) {
    throw invalidArgument(`${where}: field name has ${path.length} segments, payloads nest at most ${limits.filterPathSegmentsMax} levels`);
  }
  for (const segment of path) {
    const issue = segment === "__proto__" ? "is reserved: no payload holds it" : keyIssue(segment);
    if (issue) throw invalidArgument(`${where}: field name segment ${quote(segment)} ${issue}`);
  }
  return path;
}

function keyIssue(segment: string): string | undefined {
  if (utf8Bytes(segment) > limits.payloadKeyBytesMax) return `is longer than ${limits.payloadKeyBytesMax} bytes, the longest payload key`;
  return unicodeIssue(segment);
}

/** A string operand must be one a payload can hold: well-formed Unicode. */
function checkString(value: Scalar, where: string): void {
  if (typeof value !== "string") return;
  const issue = unicodeIssue(value);
  if (issue) throw invalidArgument(`${where}: ${issue}`);
}

function combine(op: ValuesOf<typeof LogicalOp>, clauses: Filter[]): Filter {
  if (op === "and" && clauses.length === 1 && clauses[0] !== undefined) return clauses[0];
  return { op, clauses };
}

function parseOperand(op: FieldOp, operand: unknown, path: string[], where: string): Filter {
  switch (op) {
    case "eq":
    case "ne":
      if (!isScalar(operand)) {
        throw invalidArgument(`${where}: operand must be a string, number, boolean or null, got ${describeValue(operand)}`);
      }
      checkString(operand, where);
      return { op, path, value: operand };
    case "in":
    case "nin": {
      if (!Array.isArray(operand)) throw invalidArgument(`${where}: operand must be an array, got ${describeValue(operand)}`);
      if (operand.length > limits.inListMax) {
        throw invalidArgument(`${where}: list has ${operand.length} values, at most ${limits.inListMax} are allowed`);
      }
      operand.forEach((value: unknown, i) => {
        if (!isScalar(value)) {
          throw invalidArgument(`${where}[${i}]: values must be strings, numbers, booleans or null, got ${describeValue(value)}`);
        }
        checkString(value, `${where}[${i}]`);
      });
      return { op, path, values: [...(operand as Scalar[])] };
    }
    case "gt":
    case "gte":
    case "lt":
    case "lte":
      if (typeof operand !== "string" && !(typeof operand === "number" && Number.isFinite(operand))) {
        throw invalidArgument(`${where}: operand must be a number or a string, got ${describeValue(operand)}`);
      }
      checkString(operand, where);
      return { op, path, value: operand };
  }
}

function parseField(field: string, condition: unknown, where: string, budget: Budget): Filter {
  const path = parsePath(field, where);
  if (!isPlainObject(condition)) {
    spend(budget);
    return parseOperand("eq", condition, path, where);
  }
  const keys = Object.keys(condition);
  if (keys.length === 0) throw invalidArgument(`${where}: empty operator object`);
  if (!keys.every((k) => k.startsWith("$"))) {
    throw invalidArgument(
      `${where}: equality values must be scalars; to match a nested field use a dotted path like ${quote(`${field}.${keys[0]}`)}`,
    );
  }
  const clauses = keys.map((key) => {
    const op = Object.hasOwn(fieldOperators, key) ? fieldOperators[key] : undefined;
    if (op === undefined) {
      throw invalidArgument(`${where}: unknown operator ${quote(key)} (allowed: ${Object.keys(fieldOperators).join(", ")})`);
    }
    spend(budget);
    return parseOperand(op, condition[key], path, `${where}.${key}`);
  });
  return combine("and", clauses);
}

function parseObject(raw: unknown, where: string, depth: number, budget: Budget): Filter {
  if (!isPlainObject(raw)) throw invalidArgument(`${where}: a filter must be an object, got ${describeValue(raw)}`);
  const clauses: Filter[] = [];
  for (const [key, value] of Object.entries(raw)) {
    if (key === "$and" || key === "$or") {
      const op = key === "$and" ? "and" : "or";
      if (depth + 1 > limits.filterDepthMax) {
        throw invalidArgument(`${where}.${key}: $and/$or nested deeper than ${limits.filterDepthMax} levels`);
      }
      if (!Array.isArray(value)) throw invalidArgument(`${where}.${key}: must be an array of filters, got ${describeValue(value)}`);
      if (value.length === 0) throw invalidArgument(`${where}.${key}: must not be empty`);
      const children = value.map((child: unknown, i) => {
        spend(budget);
        return parseObject(child, `${where}.${key}[${i}]`, depth + 1, budget);
      });
      clauses.push(combine(op, children));
    } else if (key.startsWith("$")) {
      throw invalidArgument(`${where}: unknown operator ${quote(key)} (only $and and $or may appear at this level)`);
    } else {
      clauses.push(parseField(key, value, `${where}.${clip(key, 64)}`, budget));
    }
  }
  return combine("and", clauses);
}

/** Validates an untrusted filter; throws an `invalid_argument` JadeError naming the problem. */
export function parseFilter(raw: unknown): Filter {
  const parsed = parseObject(raw, "filter", 0, { clauses: 0 });
  return parsed.op === "and" && parsed.clauses.length === 0 ? matchAll : parsed;
}

/**
 * Checks a normalized filter that arrived from another node (replica requests carry the
 * AST, not the user's syntax): the same limits as parseFilter, and nothing a compiled
 * predicate could trip over. Depth is checked before recursing.
 */
export function checkFilterAst(raw: unknown): Filter {
  const budget: Budget = { clauses: 0 };
  const check = (node: unknown, depth: number): void => {
    if (!isPlainObject(node)) throw invalidArgument("filter: a node must be an object");
    const op = node["op"];
    if (op === "and" || op === "or") {
      const clauses = node["clauses"];
      // The root object and a field with several operators each add one level to the $and/$or nesting.
      if (depth > limits.filterDepthMax + 2) throw invalidArgument(`filter: nested deeper than ${limits.filterDepthMax} levels`);
      if (!Array.isArray(clauses)) throw invalidArgument("filter: clauses must be an array");
      for (const clause of clauses) {
        spend(budget);
        check(clause, depth + 1);
      }
      return;
    }
    const path = node["path"];
    if (!Array.isArray(path) || path.length === 0 || path.length > limits.filterPathSegmentsMax || !path.every((p) => typeof p === "string" && p.length > 0)) {
      throw invalidArgument("filter: path must be 1 – 16 non-empty strings");
    }
    spend(budget);
    switch (op) {
      case "eq":
      case "ne":
        if (!isScalar(node["value"])) throw invalidArgument(`filter: ${op} needs a scalar value`);
        return;
      case "in":
      case "nin": {
        const values = node["values"];
        if (!Array.isArray(values) || values.length > limits.inListMax || !values.every(isScalar)) {
          throw invalidArgument(`filter: ${op} needs at most ${limits.inListMax} scalar values`);
        }
        return;
      }
      case "gt":
      case "gte":
      case "lt":
      case "lte": {
        const value = node["value"];
        if (typeof value !== "string" && !(typeof value === "number" && Number.isFinite(value))) {
          throw invalidArgument(`filter: ${op} needs a number or a string`);
        }
        return;
      }
      default:
        throw invalidArgument("filter: unknown node");
    }
  };
  check(raw, 0);
  return raw as Filter;
}

/**
 * A reader of the value at `path`: undefined when a segment is missing. Only own
 * properties are followed (so `"__proto__.x"` reads nothing), except at the last
 * segment, where an inherited property of a plain object is never a scalar and so
 * already behaves like a missing field, and skipping the own-property check halves
 * the cost of a scan.
 */
function resolver(path: readonly string[]): (payload: Payload | undefined) => unknown {
  const last = path[path.length - 1]!;
  const parents = path.slice(0, -1);
  if (parents.length === 0) return (payload) => (payload === undefined ? undefined : payload[last]);
  return (payload) => {
    let current: unknown = payload;
    for (const segment of parents) {
      if (!isPlainObject(current) || !Object.hasOwn(current, segment)) return undefined;
      current = current[segment];
    }
    return isPlainObject(current) ? current[last] : undefined;
  };
}

function anyElement(value: unknown, test: (v: unknown) => boolean): boolean {
  if (Array.isArray(value)) return value.some(test);
  return test(value);
}

function rangeTest(op: ValuesOf<typeof RangeOp>, bound: Ordered): (v: unknown) => boolean {
  const type = typeof bound;
  switch (op) {
    case "gt":
      return (v) => typeof v === type && (v as Ordered) > bound;
    case "gte":
      return (v) => typeof v === type && (v as Ordered) >= bound;
    case "lt":
      return (v) => typeof v === type && (v as Ordered) < bound;
    case "lte":
      return (v) => typeof v === type && (v as Ordered) <= bound;
  }
}

function compileNode(filter: Filter): Predicate {
  switch (filter.op) {
    case "and": {
      const parts = filter.clauses.map(compileNode);
      if (parts.length === 0) return () => true;
      return (p) => {
        for (const part of parts) if (!part(p)) return false;
        return true;
      };
    }
    case "or": {
      const parts = filter.clauses.map(compileNode);
      return (p) => {
        for (const part of parts) if (part(p)) return true;
        return false;
      };
    }
    case "eq":
    case "ne": {
      const { value } = filter;
      const resolve = resolver(filter.path);
      const equals = (v: unknown): boolean => v === value;
      const positive = filter.op === "eq";
      // A missing field (undefined) never equals a scalar, so $ne is the plain negation.
      return (p) => anyElement(resolve(p), equals) === positive;
    }
    case "in":
    case "nin": {
      const resolve = resolver(filter.path);
      const set = new Set<unknown>(filter.values);
      const member = (v: unknown): boolean => v !== undefined && set.has(v);
      const positive = filter.op === "in";
      return (p) => anyElement(resolve(p), member) === positive;
    }
    case "gt":
    case "gte":
    case "lt":
    case "lte": {
      const resolve = resolver(filter.path);
      const test = rangeTest(filter.op, filter.value);
      return (p) => anyElement(resolve(p), test);
    }
  }
}

export function compileFilter(filter: Filter): Predicate {
  return compileNode(filter);
}
