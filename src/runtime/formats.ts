/**
 * Format versions (mixed versions during a rolling upgrade): the formats this build reads,
 * announced in every heartbeat, and the ones the cluster writes, kept in KV `jade_config` key
 * `formats`. A node refuses to join a cluster that writes a format it cannot read: it would skip
 * log entries as undecodable (losing them on its replicas) or misread its peers. A future
 * build that reads formats 1–2 joins a cluster writing 1 and keeps writing 1; the cluster moves
 * to 2 only once every node reads it.
 */
import { z } from "zod";

/** What this build reads (min–max) and writes (the cluster's choice, within it). */
export const buildFormats = {
  /** Shard-log entries (runtime/log-entry.ts): 2 adds the transaction entries (decision 013), plain entries are unchanged. */
  log: { min: 1, max: 2 },
  /** Messages between nodes: heartbeats, replica requests, placements. */
  message: { min: 1, max: 1 },
} as const;

export type FormatName = keyof typeof buildFormats;

const Range = z.object({ min: z.number().int().min(1), max: z.number().int().min(1) }).strict();
/** What a node reads, as its heartbeat says (nodes older than this field read format 1 only). */
export const ReadableFormats = z.object({ log: Range, message: Range }).strict();
export type ReadableFormats = z.infer<typeof ReadableFormats>;

/** The formats the cluster writes: the stored value of `jade_config` key `formats`. */
export const FormatsInUse = z.object({ log: z.number().int().min(1), message: z.number().int().min(1) }).strict();
export type FormatsInUse = z.infer<typeof FormatsInUse>;

/** What a new cluster writes: the newest format of each kind this build reads. */
export function newClusterFormats(): FormatsInUse {
  return { log: buildFormats.log.max, message: buildFormats.message.max };
}

/** Why a node that reads `readable` cannot join a cluster writing `inUse`, in words; undefined when it can. */
export function formatIssue(inUse: FormatsInUse, readable: ReadableFormats = buildFormats): string | undefined {
  for (const name of ["log", "message"] as const) {
    const { min, max } = readable[name];
    if (inUse[name] < min || inUse[name] > max) {
      return `the cluster writes ${name} format ${inUse[name]}; this node reads ${name} formats ${min}–${max}: run a jade that reads format ${inUse[name]} (a newer one, during an upgrade)`;
    }
  }
  return undefined;
}

/**
 * What the cluster may write once every node in `readers` reads it: for each kind, the newest
 * format all of them read, when it is newer than the one written and none of them has left it
 * behind (its `min` above it). Undefined when nothing moves. A format never moves back: a node
 * that reads only older ones cannot join any more (`formatIssue`), as Elasticsearch's nodes
 * cannot rejoin a cluster upgraded past them.
 */
export function formatsToRaise(inUse: FormatsInUse, readers: readonly ReadableFormats[]): FormatsInUse | undefined {
  if (readers.length === 0) return undefined;
  const next = { ...inUse };
  for (const name of ["log", "message"] as const) {
    const common = Math.min(...readers.map((r) => r[name].max));
    if (common > inUse[name] && readers.every((r) => r[name].min <= common)) next[name] = common;
  }
  return next.log === inUse.log && next.message === inUse.message ? undefined : next;
}
