/**
 * The two encodings of API bodies, chosen per request by the `Jade-Encoding` header:
 *
 * - `json` (the default, no header): any NATS client can speak it;
 * - `msgpack`: the same request and reply objects in MessagePack, where any vector may be
 *   given as a bin of little-endian float32 values, and an upsert may carry its points as
 *   columns (`ids`, one bin of all vectors, optional `payloads`). The SDK, the CLI's import
 *   and JetStream ingestion use it, so no float is printed and parsed as text on the hot
 *   path (JSON cost 150 µs per 784-d point on the way in: docs/performance.md).
 *
 * A reply is encoded like its request. Build and parse live here together.
 */
import { Packr } from "msgpackr";
import { errorMessage, invalidArgument } from "./errors.ts";
import { decodeJsonBody } from "./json-body.ts";

export const encodingHeader = "Jade-Encoding";

export const Encoding = { Json: "json", Msgpack: "msgpack" } as const;
export type Encoding = (typeof Encoding)[keyof typeof Encoding];

/** The encoding a header value names; anything but `msgpack` is JSON (a misspelt header fails as JSON would). */
export function encodingOf(headerValue: string | undefined): Encoding {
  return headerValue === Encoding.Msgpack ? Encoding.Msgpack : Encoding.Json;
}

const packr = new Packr({ useRecords: false, moreTypes: false });
const encoder = new TextEncoder();
/** msgpackr renames a map key `__proto__` to `__proto_` as it decodes: the fixstr bytes of the original name. */
const protoKeyBytes = Buffer.from([0xa9, ...Buffer.from("__proto__")]);

/**
 * `value` in `encoding`. msgpack cannot carry a lone surrogate (msgpackr would send U+FFFD in
 * its place, silently changing an id), so such a string is refused here, as the server
 * refuses one in JSON.
 */
export function encodeBody(value: unknown, encoding: Encoding): Uint8Array {
  if (encoding === Encoding.Json) return encoder.encode(JSON.stringify(value));
  if (!stringsWellFormed(value)) throw invalidArgument("a string holds a lone UTF-16 surrogate, which msgpack cannot carry");
  return packr.pack(value);
}

function stringsWellFormed(root: unknown): boolean {
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const value = stack.pop();
    if (typeof value === "string") {
      if (!value.isWellFormed()) return false;
    } else if (Array.isArray(value)) for (const item of value) stack.push(item);
    else if (typeof value === "object" && value !== null && !(value instanceof Uint8Array)) {
      for (const key of Object.keys(value)) {
        if (!key.isWellFormed()) return false;
        stack.push((value as Record<string, unknown>)[key]);
      }
    }
  }
  return true;
}

/** One request body; bytes that do not decode are `invalid_argument`. An empty body is `{}`. */
export function decodeBody(data: Uint8Array, encoding: Encoding): unknown {
  if (encoding === Encoding.Json) return decodeJsonBody(data);
  if (data.byteLength === 0) return {};
  let value: unknown;
  try {
    value = packr.unpack(data);
  } catch (err) {
    throw invalidArgument(`malformed msgpack: ${errorMessage(err).slice(0, 160)}`);
  }
  // What msgpackr changes silently is refused, so a handler sees exactly what was sent (as with JSON).
  const raw = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const seen = inspectStrings(value);
  if (seen.replacementChars > occurrences(raw, replacementCharBytes)) throw invalidArgument("a string is not valid UTF-8");
  if (seen.protoLikeKeys > 0 && raw.includes(protoKeyBytes)) throw invalidArgument('a key "__proto__" is not allowed');
  return value;
}

/** msgpackr decodes bytes that are not UTF-8 as U+FFFD: more of them than the body's own EF BF BD means it did. */
const replacementCharBytes = Buffer.from([0xef, 0xbf, 0xbd]);

function occurrences(bytes: Buffer, pattern: Buffer): number {
  let count = 0;
  for (let at = bytes.indexOf(pattern); at >= 0; at = bytes.indexOf(pattern, at + pattern.length)) count++;
  return count;
}

/** U+FFFD characters in every string and key, and keys named `__proto_` (what msgpackr makes of `__proto__`). */
function inspectStrings(root: unknown): { replacementChars: number; protoLikeKeys: number } {
  let replacementChars = 0;
  let protoLikeKeys = 0;
  const countIn = (text: string): void => {
    for (let at = text.indexOf("\ufffd"); at >= 0; at = text.indexOf("\ufffd", at + 1)) replacementChars++;
  };
  // Iterative: a body may nest deeper than the stack (payload.ts bounds depth only after decoding).
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const value = stack.pop();
    if (typeof value === "string") countIn(value);
    else if (Array.isArray(value)) for (const item of value) stack.push(item);
    else if (typeof value === "object" && value !== null && !(value instanceof Uint8Array)) {
      for (const key of Object.keys(value)) {
        countIn(key);
        if (key === "__proto_") protoLikeKeys++;
        stack.push((value as Record<string, unknown>)[key]);
      }
    }
  }
  return { replacementChars, protoLikeKeys };
}

/** The bytes of a float32 array (a view, no copy): what a msgpack bin of vectors carries. */
export function float32Bytes(vector: Float32Array): Uint8Array {
  return new Uint8Array(vector.buffer, vector.byteOffset, vector.byteLength);
}

/** Float32 values of little-endian bytes: a view when aligned, else an aligned copy. */
export function float32FromBytes(bytes: Uint8Array): Float32Array {
  if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  const aligned = new Uint8Array(bytes.byteLength);
  aligned.set(bytes);
  return new Float32Array(aligned.buffer);
}
