/**
 * From a value to the API's answer: `parse(schema, raw)` turns a zod failure into an
 * `invalid_argument` JadeError whose details list the offending paths (written
 * `points[3].vector[0]`), and the checks that need the collection (its vector space,
 * its shard count) throw the error the API answers.
 */
import type { z } from "zod";
import { ErrorCode, invalidArgument, JadeError } from "./errors.ts";
import type { SessionToken } from "./schemas.ts";
import { clip } from "./text.ts";
import { vectorIssue, type VectorIssue, type VectorSpace } from "./vectors.ts";

export function parse<S extends z.ZodType>(schema: S, raw: unknown): z.output<S> {
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const issues = result.error.issues.slice(0, 10).map((i) => ({ path: formatPath(i.path), message: clip(i.message) }));
  const first = issues[0];
  throw invalidArgument(first ? `${first.path || "request"}: ${first.message}` : "invalid request", { issues });
}

/** `["points", 3, "vector", 0]` → `points[3].vector[0]`; long keys are cut. */
export function formatPath(path: readonly PropertyKey[]): string {
  let text = "";
  for (const segment of path) {
    if (typeof segment === "number") text += `[${segment}]`;
    else {
      const name = clip(String(segment), 64);
      text += text === "" ? name : `.${name}`;
    }
  }
  return text;
}

export function dimensionMismatch(expected: number, got: number, where: string): JadeError {
  return new JadeError(ErrorCode.DimensionMismatch, `${where}: expected dimension ${expected}, got ${got}`, {
    details: { expected, got },
  });
}

/** Throws the error the API answers when `vector` breaks a rule of the collection's space (`where` names it). */
export function checkVector(vector: ArrayLike<number>, space: VectorSpace, where: string): void {
  const issue = vectorIssue(vector, space);
  if (issue) throw vectorError(issue, vector.length, where);
}

/** The error the API answers for `issue` of the vector of `length` values that `where` names. */
export function vectorError(issue: VectorIssue, length: number, where: string): JadeError {
  if (issue.expected !== undefined) return dimensionMismatch(issue.expected, length, where);
  const path = `${where}${formatPath(issue.path)}`;
  return invalidArgument(`${path}: ${issue.message}`, { issues: [{ path, message: issue.message }] });
}

/** A session token's shards must exist in the collection (sequences are checked against the log by the router). */
export function checkToken(token: SessionToken | undefined, shards: number): void {
  if (token === undefined) return;
  for (const key of Object.keys(token)) {
    if (Number(key) >= shards) throw invalidArgument(`token: shard ${key} does not exist (the collection has ${shards} shards)`);
  }
}
