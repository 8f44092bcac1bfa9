/**
 * Which payloads may be stored. A payload is a JSON object kept as it was sent:
 * what `get` returns must be what `upsert` wrote. Two layers would silently
 * change some values, so those are refused at the door instead:
 *
 * - a key `__proto__`: zod's records drop it and msgpackr renames it `__proto_`
 *   (both measured), and a plain-object write of it would set a prototype.
 *   `constructor` and `prototype` are ordinary keys and are stored as such;
 * - a non-finite number (JSON `1e999` parses to Infinity) would come back as null;
 * - a string or key with a lone surrogate would come back with U+FFFD.
 *
 * The walk bounds depth before anything recursive (JSON.stringify, msgpack,
 * structured clone all overflow the stack near 10,000 levels) touches the value.
 */
import { limits } from "./limits.ts";
import { describeValue, quote, unicodeIssue, utf8Bytes } from "./text.ts";

export interface PayloadIssue {
  path: (string | number)[];
  message: string;
}

interface Walk {
  keys: number;
}

/** An object as JSON.parse makes it (a plain prototype, or none): not an array, Date, Map, … */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** The first rule the payload breaks, or undefined when it can be stored exactly. */
export function payloadIssue(value: unknown): PayloadIssue | undefined {
  if (!isJsonObject(value)) return { path: [], message: `must be a JSON object, got ${describeValue(value)}` };
  const issue = walk(value, [], 1, { keys: 0 });
  if (issue) return issue;
  const bytes = utf8Bytes(JSON.stringify(value));
  if (bytes > limits.payloadBytesMax) return { path: [], message: `is ${bytes} bytes as JSON, at most ${limits.payloadBytesMax} are allowed` };
  return undefined;
}

function walk(value: unknown, path: (string | number)[], depth: number, state: Walk): PayloadIssue | undefined {
  if (value === null || typeof value === "boolean") return undefined;
  if (typeof value === "number") return Number.isFinite(value) ? undefined : { path, message: `${value} is not a finite number` };
  if (typeof value === "string") {
    const issue = unicodeIssue(value);
    return issue ? { path, message: issue } : undefined;
  }
  if (depth > limits.payloadDepthMax) return { path, message: `nests deeper than ${limits.payloadDepthMax} levels` };
  if (Array.isArray(value)) {
    if (value.length > limits.payloadArrayItemsMax) {
      return { path, message: `has ${value.length} items, at most ${limits.payloadArrayItemsMax} are allowed in one array` };
    }
    for (let i = 0; i < value.length; i++) {
      const issue = walk(value[i], [...path, i], depth + 1, state);
      if (issue) return issue;
    }
    return undefined;
  }
  if (!isJsonObject(value)) return { path, message: "must be JSON, got an object that is not a plain object" };
  for (const key of Object.keys(value)) {
    state.keys += 1;
    if (state.keys > limits.payloadKeysMax) return { path, message: `has more than ${limits.payloadKeysMax} keys in all` };
    const keyIssue = payloadKeyIssue(key);
    if (keyIssue) return { path, message: `key ${quote(key)} ${keyIssue}` };
    const issue = walk(value[key], [...path, key], depth + 1, state);
    if (issue) return issue;
  }
  return undefined;
}

function payloadKeyIssue(key: string): string | undefined {
  if (key === "__proto__") return "is reserved (it cannot be stored as an ordinary key)";
  const bytes = utf8Bytes(key);
  if (bytes > limits.payloadKeyBytesMax) return `is ${bytes} bytes, at most ${limits.payloadKeyBytesMax} are allowed`;
  return unicodeIssue(key);
}
