/**
 * Request bodies as the fuzzer builds them: a JSON tree that may hold number
 * literals JavaScript cannot hold (`1e999`, `9007199254740993`, a 5,000-digit
 * decimal), or raw bytes for bodies that are not JSON at all. Paths address the
 * tree so mutations can replace, drop or add a value anywhere.
 */

/** A number written exactly as `text` in the JSON (JSON.parse on the server decides what it becomes). */
export class NumberLiteral {
  constructor(readonly text: string) {}
}

export type Json = null | boolean | number | string | NumberLiteral | Json[] | { [key: string]: Json };

export type Body = { json: Json } | { bytes: Uint8Array } | { msgpack: unknown };

export type Path = (string | number)[];

/** JSON text, number literals written verbatim. Iterative, because mutated trees nest 10,000 deep. */
export function toJsonText(value: Json): string {
  const out: string[] = [];
  const stack: ({ value: Json } | { text: string })[] = [{ value }];
  while (stack.length > 0) {
    const item = stack.pop()!;
    if ("text" in item) {
      out.push(item.text);
      continue;
    }
    const v = item.value;
    if (v instanceof NumberLiteral) out.push(v.text);
    else if (Array.isArray(v)) {
      stack.push({ text: "]" });
      for (let i = v.length - 1; i >= 0; i--) {
        stack.push({ value: v[i]! });
        if (i > 0) stack.push({ text: "," });
      }
      stack.push({ text: "[" });
    } else if (isObject(v)) {
      const keys = Object.keys(v);
      stack.push({ text: "}" });
      for (let i = keys.length - 1; i >= 0; i--) {
        stack.push({ value: v[keys[i]!]! });
        stack.push({ text: `${JSON.stringify(keys[i])}:` });
        if (i > 0) stack.push({ text: "," });
      }
      stack.push({ text: "{" });
    } else out.push(JSON.stringify(v));
  }
  return out.join("");
}

/** `leaf` wrapped `depth` times by `wrap`: the deep values mutations and refused payloads use. */
export function nested(depth: number, leaf: Json, wrap: (inner: Json) => Json): Json {
  let value = leaf;
  for (let i = 0; i < depth; i++) value = wrap(value);
  return value;
}

/** `{"a":{"a":…1…}}`, `depth` objects deep, as text (a tree that deep cannot be stringified). */
export function nestedJsonText(depth: number): string {
  return `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`;
}

/** Every path in the tree that holds a value (the root is `[]`), up to `max` of them. */
export function pathsOf(value: Json, max = 200): Path[] {
  const paths: Path[] = [];
  const queue: { value: Json; path: Path }[] = [{ value, path: [] }];
  while (queue.length > 0 && paths.length < max) {
    const { value: v, path } = queue.shift()!;
    paths.push(path);
    if (Array.isArray(v)) v.slice(0, 8).forEach((child, i) => queue.push({ value: child, path: [...path, i] }));
    else if (isObject(v)) for (const key of Object.keys(v).slice(0, 16)) queue.push({ value: v[key]!, path: [...path, key] });
  }
  return paths;
}

export function isObject(v: Json | undefined): v is { [key: string]: Json } {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof NumberLiteral);
}

/** A copy of `root` with the value at `path` replaced (`undefined` deletes it). */
export function withValue(root: Json, path: Path, value: Json | undefined): Json {
  if (path.length === 0) return value === undefined ? null : value;
  const [head, ...rest] = path;
  if (Array.isArray(root) && typeof head === "number") {
    const copy = [...root];
    if (rest.length === 0 && value === undefined) copy.splice(head, 1);
    else copy[head] = withValue(root[head]!, rest, value);
    return copy;
  }
  if (isObject(root) && typeof head === "string") {
    const copy: { [key: string]: Json } = {};
    for (const key of Object.keys(root)) defineKey(copy, key, root[key]!);
    if (rest.length === 0 && value === undefined) delete copy[head];
    else defineKey(copy, head, withValue(root[head]!, rest, value));
    return copy;
  }
  return root;
}

/** Sets `key` as an own property even when it is `__proto__`. */
export function defineKey(target: { [key: string]: Json }, key: string, value: Json): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

export function valueAt(root: Json, path: Path): Json | undefined {
  let current: Json | undefined = root;
  for (const segment of path) {
    if (Array.isArray(current) && typeof segment === "number") current = current[segment];
    else if (isObject(current) && typeof segment === "string") current = current[segment];
    else return undefined;
  }
  return current;
}
