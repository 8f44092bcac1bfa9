/**
 * Point sources for `upsert` and `import`: JSON lines (one `{"id","vector","payload"?}`
 * per line) and .fvecs files. A line or row is checked with the server's own rules (the
 * Point schema, then the collection's vector space: dimension, range of its storage type,
 * a direction for cosine), so a bad one is skipped (and reported with its number) instead
 * of failing the batch it would have joined, and nothing the server would accept is skipped.
 */
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { errorMessage, ErrorCode, JadeError } from "../../runtime/errors.ts";
import { checkVector, formatPath, parse } from "../../runtime/checks.ts";
import { Point } from "../../runtime/schemas.ts";
import { shapeIssue, vectorIssue, type VectorSpace } from "../../runtime/vectors.ts";
import { readFvecs, shortestFloat32 } from "../fvecs.ts";

export type PointLine =
  | { line: number; bytes: number; ok: true; json: string }
  | { line: number; bytes: number; ok: false; reason: string };

/** Reads JSON lines from a stream; blank lines are ignored (but still counted and weighed). */
export async function* readPointLines(input: Readable, space: VectorSpace): AsyncGenerator<PointLine> {
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
    const reason = checkPointLine(text, space);
    yield reason === undefined ? { line, bytes, ok: true, json: text } : { line, bytes, ok: false, reason };
  }
}

/** Why a line is not a valid point of a collection with this vector space, or undefined when it is one. */
export function checkPointLine(text: string, space: VectorSpace): string | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return `malformed JSON: ${errorMessage(err)}`;
  }
  try {
    checkVector(parse(Point, value).vector, space, "vector");
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
  space: VectorSpace,
  idPrefix: string,
): AsyncGenerator<{ row: number; ok: true; json: string } | { row: number; ok: false; reason: string }> {
  for await (const { row, vector } of readFvecs(file)) {
    if (vector.length !== space.dimension) {
      throw new JadeError(
        ErrorCode.DimensionMismatch,
        `${file} row ${row}: the collection has dimension ${space.dimension}, the file's vector has ${vector.length}`,
      );
    }
    const values = Array.from(vector, shortestFloat32);
    const issue = shapeIssue(values) ?? vectorIssue(values, space);
    if (issue) yield { row, ok: false, reason: `vector${formatPath(issue.path)}: ${issue.message}` };
    else yield { row, ok: true, json: JSON.stringify({ id: `${idPrefix}${row}`, vector: values }) };
  }
}
