/** The join check of format versions (runtime/formats.ts): refuse a cluster this build cannot read. */
import type { KV } from "@nats-io/kv";
import { buildFormats, formatIssue, FormatsInUse, formatsToRaise, newClusterFormats, type ReadableFormats } from "../../runtime/formats.ts";
import { names } from "../../runtime/subjects.ts";
import { delay } from "../../runtime/async.ts";

/** Tries at recording the formats of a new cluster, and the pause after a failed one. */
const formatCreateAttemptsMax = 10;
const formatCreateRetryMs = 500;

/** A node that cannot read what the cluster writes: it must not join (its message says which build to run). */
export class IncompatibleFormatError extends Error {
  override readonly name = "IncompatibleFormatError";
  readonly code = "incompatible_format";
}

export function isIncompatibleFormatError(err: unknown): err is IncompatibleFormatError {
  return err instanceof IncompatibleFormatError;
}

/**
 * The formats the cluster writes, recorded by the first node of a new cluster; throws
 * IncompatibleFormatError when this build cannot read them.
 */
export async function joinFormats(kv: KV): Promise<FormatsInUse> {
  let entry = await kv.get(names.formatsKey);
  // Create-only: of two first nodes starting at once, one writes and both read the same. A
  // cluster that just formed may time a create out (its stream still electing a leader): try again.
  for (let attempt = 1; entry?.operation !== "PUT"; attempt++) {
    if (attempt > formatCreateAttemptsMax) throw new Error(`could not read or record the cluster's formats (KV ${names.configBucket} key ${names.formatsKey})`);
    await kv.create(names.formatsKey, JSON.stringify(newClusterFormats())).catch(() => delay(formatCreateRetryMs));
    entry = await kv.get(names.formatsKey);
  }
  const stored = FormatsInUse.safeParse(entry.json());
  if (!stored.success) {
    throw new IncompatibleFormatError(`the cluster's format record (KV ${names.configBucket} key ${names.formatsKey}) is not one this node reads: a newer jade wrote it`);
  }
  const issue = formatIssue(stored.data, buildFormats);
  if (issue) throw new IncompatibleFormatError(issue);
  return stored.data;
}

/**
 * Moves the formats the cluster writes up to the newest every node in `readers` reads (the
 * coordinator calls it as nodes report what they read): a compare-and-set on the record, so of
 * two coordinators at once one writes. Returns the formats written, or undefined.
 */
export async function raiseFormats(kv: KV, readers: readonly ReadableFormats[]): Promise<FormatsInUse | undefined> {
  const entry = await kv.get(names.formatsKey);
  if (entry?.operation !== "PUT") return undefined;
  const stored = FormatsInUse.safeParse(entry.json());
  if (!stored.success) return undefined;
  const next = formatsToRaise(stored.data, readers);
  if (!next) return undefined;
  await kv.update(names.formatsKey, JSON.stringify(next), entry.revision);
  return next;
}
