/**
 * Output helpers of the client commands: the one place that decides how
 * results look (aligned tables, key/value blocks, JSON, notes on stderr).
 * Human output goes to stdout; warnings, notes and errors go to stderr.
 */

/** The CLI speaks MiB/s; the settings count bytes. */
export const bytesPerMib = 1024 * 1024;

export type Cell = string | number | boolean | null | undefined;

export interface TableOptions {
  /** Columns whose cells are right-aligned (numbers); default: every column whose cells are all numbers. */
  alignRight?: number[];
}

/** An aligned plain-text table with a header and a dashed rule. */
export function table(headers: string[], rows: Cell[][], options: TableOptions = {}): string {
  const text = rows.map((row) => headers.map((_, c) => cellText(row[c])));
  const widths = headers.map((h, c) => Math.max(width(h), ...text.map((row) => width(row[c]!))));
  const right = new Set(
    options.alignRight ??
      headers.map((_, c) => c).filter((c) => rows.length > 0 && rows.every((row) => typeof row[c] === "number")),
  );
  const line = (cells: string[]) =>
    cells
      .map((cell, c) => (right.has(c) ? pad(cell, widths[c]!, "left") : pad(cell, widths[c]!, "right")))
      .join("  ")
      .trimEnd();
  return [line(headers), line(widths.map((w) => "-".repeat(w))), ...text.map(line)].join("\n");
}

/** `key: value` lines with the keys aligned. */
export function keyValues(entries: [string, Cell][]): string {
  const w = Math.max(0, ...entries.map(([k]) => width(k)));
  return entries.map(([k, v]) => `${pad(k + ":", w + 1, "right")} ${cellText(v)}`).join("\n");
}

function cellText(value: Cell): string {
  if (value === null || value === undefined) return "";
  return String(value);
}

function width(s: string): number {
  return [...s].length;
}

function pad(s: string, w: number, side: "left" | "right"): string {
  const fill = " ".repeat(Math.max(0, w - width(s)));
  return side === "left" ? fill + s : s + fill;
}

/** Shortens a string to at most `max` characters, marking the cut with an ellipsis. */
export function truncate(s: string, max: number): string {
  const chars = [...s];
  return chars.length <= max ? s : chars.slice(0, Math.max(1, max - 1)).join("") + "…";
}

/** A payload (or any JSON value) on one line, shortened for a table cell. */
export function compactJson(value: unknown, max = 80): string {
  if (value === undefined) return "";
  return truncate(JSON.stringify(value), max);
}

/** A vector for a table cell: the first few components and the dimension. */
export function vectorPreview(vector: readonly number[] | undefined, shown = 4): string {
  if (!vector) return "";
  const head = vector.slice(0, shown).map((x) => formatNumber(x, 4));
  return `[${head.join(", ")}${vector.length > shown ? `, … (${vector.length})` : ""}]`;
}

/** A number with at most `digits` significant digits, without trailing zeros. */
export function formatNumber(x: number, digits = 6): string {
  if (!Number.isFinite(x)) return String(x);
  if (Number.isInteger(x) && Math.abs(x) < 1e15) return String(x);
  return String(Number(x.toPrecision(digits)));
}

/** A count with thousands separators (1,234,567). */
export function formatCount(n: number): string {
  return n.toLocaleString("en-US");
}

/** "1 point", "2 points" (with thousands separators). */
/** Bytes as whole MiB, for people. */
export function formatMib(bytes: number): string {
  return `${formatCount(Math.round(bytes / 1_048_576))} MiB`;
}

export function plural(n: number, word: string, pluralWord = word + "s"): string {
  return `${formatCount(n)} ${n === 1 ? word : pluralWord}`;
}

export function formatSeconds(ms: number): string {
  return (ms / 1000).toFixed(ms < 10_000 ? 2 : 1);
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + "\n");
}

export function printLine(text = ""): void {
  process.stdout.write(text + "\n");
}

export function printWarning(text: string): void {
  process.stderr.write(`warning: ${text}\n`);
}

export function printNote(text: string): void {
  process.stderr.write(`note: ${text}\n`);
}

export function printError(text: string): void {
  process.stderr.write(`error: ${text}\n`);
}

export interface CoverageLike {
  partial: boolean;
  shards: { total: number; answered: number };
  errors?: { shard: number; code: string; message: string }[];
}

/** Tells the user (on stderr) that a read did not hear from every shard. */
export function printPartialNote(result: CoverageLike): void {
  if (!result.partial) return;
  printNote(`partial result: ${result.shards.answered} of ${result.shards.total} shards answered`);
  for (const e of result.errors ?? []) printNote(`  shard ${e.shard}: ${e.code}: ${e.message}`);
}
