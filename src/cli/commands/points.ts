/**
 * Point sources for `upsert` and `import`: JSON lines (one `{"id","vector","payload"?}`
 * per line) and .fvecs files. A JSON line is checked with the API's own Point
 * schema and the collection's dimension, so a bad line is skipped (and reported
 * with its number) instead of failing the batch it would have joined.
 */
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { ErrorCode, JadeError } from "../../runtime/errors.ts";
import { Point, parse } from "../../runtime/schemas.ts";
import { readFvecs, shortestFloat32 } from "../fvecs.ts";

export type PointLine =
  | { line: number; bytes: number; ok: true; json: string }
  | { line: number; bytes: number; ok: false; reason: string };

/** Reads JSON lines from a stream; blank lines are ignored (but still counted and weighed). */
export async function* readPointLines(input: Readable, dimension: number): AsyncGenerator<PointLine> {
  const lines = createInterface({ input, crlfDelay: Infinity });
  let line = 0;
  for await (const raw of lines) {
    line++;
    const bytes = raw.length + 1;
    const text = raw.trim();
    if (text === "") {
      yield { line, bytes, ok: false, reason: "" };
      continue;
    }
    const reason = checkPointLine(text, dimension);
    yield reason === undefined ? { line, bytes, ok: true, json: text } : { line, bytes, ok: false, reason };
  }
}

/** Why a line is not a valid point of a `dimension`-d collection, or undefined when it is one. */
export function checkPointLine(text: string, dimension: number): string | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return `malformed JSON: ${(err as Error).message}`;
  }
  try {
    const point = parse(Point, value);
    if (point.vector.length !== dimension) return `vector: expected dimension ${dimension}, got ${point.vector.length}`;
  } catch (err) {
    return err instanceof JadeError ? err.message : String(err);
  }
  return undefined;
}

export function openPointFile(file: string): Readable {
  return createReadStream(file, { encoding: "utf8", highWaterMark: 1 << 20 });
}

/** The rows of an .fvecs file as JSON-encoded points with ids `<prefix><row>`. */
export async function* readFvecsPoints(
  file: string,
  dimension: number,
  idPrefix: string,
): AsyncGenerator<{ row: number; ok: true; json: string } | { row: number; ok: false; reason: string }> {
  for await (const { row, vector } of readFvecs(file)) {
    if (vector.length !== dimension) {
      throw new JadeError(
        ErrorCode.DimensionMismatch,
        `${file} row ${row}: the collection has dimension ${dimension}, the file's vector has ${vector.length}`,
      );
    }
    const values = new Array<number>(vector.length);
    let finite = true;
    for (let i = 0; i < vector.length; i++) {
      const x = vector[i]!;
      if (!Number.isFinite(x)) finite = false;
      values[i] = shortestFloat32(x);
    }
    if (!finite) yield { row, ok: false, reason: "vector has NaN or infinite values" };
    else yield { row, ok: true, json: JSON.stringify({ id: `${idPrefix}${row}`, vector: values }) };
  }
}
