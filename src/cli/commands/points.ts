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
import { float32Of } from "../../runtime/columns.ts";
import { Point, type Payload } from "../../runtime/schemas.ts";
import { rowIssue, type VectorSpace } from "../../runtime/vectors.ts";
import { readFvecsChunks, type FvecsChunk } from "../fvecs.ts";

/** A checked point, its vector as float32 values: what the batch sender packs into columns. */
export interface CheckedPoint {
  id: string;
  vector: Float32Array;
  payload?: Payload;
}

export type PointLine =
  | { line: number; bytes: number; ok: true; point: CheckedPoint }
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
    const checked = checkPointLine(text, space);
    yield typeof checked === "string" ? { line, bytes, ok: false, reason: checked } : { line, bytes, ok: true, point: checked };
  }
}

/** The point a line holds, or why it is not a valid point of a collection with this vector space. */
export function checkPointLine(text: string, space: VectorSpace): CheckedPoint | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return `malformed JSON: ${errorMessage(err)}`;
  }
  try {
    const point = parse(Point, value);
    const vector = float32Of(point.vector);
    checkVector(vector, space, "vector");
    return point.payload === undefined ? { id: point.id, vector } : { id: point.id, vector, payload: point.payload };
  } catch (err) {
    return err instanceof JadeError ? err.message : String(err);
  }
}

export function openPointFile(file: string): Readable {
  return createReadStream(file, { encoding: "utf8", highWaterMark: 1 << 20 });
}

/** The chunks of an .fvecs file (fvecs.ts), refused when their dimension is not the collection's. */
export async function* readFvecsFor(file: string, space: VectorSpace): AsyncGenerator<FvecsChunk> {
  for await (const chunk of readFvecsChunks(file)) {
    if (chunk.dimension !== space.dimension) {
      throw new JadeError(
        ErrorCode.DimensionMismatch,
        `${file} row ${chunk.firstRow}: the collection has dimension ${space.dimension}, the file's vector has ${chunk.dimension}`,
      );
    }
    yield chunk;
  }
}

/** Why row `r` of `chunk` is not a valid point of the collection, or undefined when it is. */
export function fvecsRowIssue(chunk: FvecsChunk, r: number, space: VectorSpace): string | undefined {
  const issue = rowIssue(chunk.values, r * chunk.dimension, space);
  return issue && `vector${formatPath(issue.path)}: ${issue.message}`;
}
