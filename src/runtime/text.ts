/**
 * Rules for strings that cross the API, and for quoting untrusted text in error
 * messages. Everything we store goes through UTF-8 (msgpack in the log, JSON in
 * replies), so a string that UTF-8 cannot carry — a lone surrogate such as
 * "\ud800" — would come back as U+FFFD, a different string: it is refused, not
 * stored changed. Lengths are measured in UTF-8 bytes, as they are stored.
 */

/** C0 controls, DEL and C1 controls: invisible in logs and terminals, and NUL ends C strings. */
const controlPattern = /[\u0000-\u001f\u007f-\u009f]/;

export function utf8Bytes(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

/** Why `s` is not well-formed Unicode (a lone surrogate), or undefined. */
export function unicodeIssue(s: string): string | undefined {
  if (s.isWellFormed()) return undefined;
  const at = [...s].findIndex((c) => c.length === 1 && c.charCodeAt(0) >= 0xd800 && c.charCodeAt(0) <= 0xdfff);
  return `contains a lone UTF-16 surrogate at character ${at}, which UTF-8 cannot store`;
}

/** Why `s` is not a valid identifier-like token (ids, split points): 1 – bytesMax UTF-8 bytes, well-formed, no controls. */
export function tokenIssue(s: string, bytesMax: number): string | undefined {
  if (s.length === 0) return "must be a non-empty string";
  const bytes = utf8Bytes(s);
  if (bytes > bytesMax) return `is ${bytes} bytes (UTF-8), at most ${bytesMax} are allowed`;
  const unicode = unicodeIssue(s);
  if (unicode) return unicode;
  const control = controlPattern.exec(s);
  if (control) return `contains the control character U+${control[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}`;
  return undefined;
}

/** What kind of JSON value `value` is, for a message ("got a string", "got null"). */
export function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (value === undefined) return "nothing (missing)";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "number" && !Number.isFinite(value)) return "a non-finite number";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

/** Quoted user input for an error message, cut to `charsMax` so a 1 MiB key does not become a 1 MiB reply. */
export function quote(s: string, charsMax = 64): string {
  return s.length <= charsMax ? JSON.stringify(s) : `${JSON.stringify(s.slice(0, charsMax))}… (${s.length} chars)`;
}

/** A message cut to `charsMax` characters. */
export function clip(message: string, charsMax = 300): string {
  return message.length <= charsMax ? message : `${message.slice(0, charsMax)}…`;
}
