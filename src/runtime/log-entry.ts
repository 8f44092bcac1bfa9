/**
 * Shard log entries (the body of a message on `jade.log.<collection>.<shard>`).
 * msgpack, with vectors as raw little-endian float32 bytes so neither side
 * converts numbers one by one. Replicas derive usearch keys from the entry's
 * stream sequence and the point's position in it (a point's version), identical on
 * every replica of a shard.
 *
 * Upsert wire form: `{k:"u", i: ids, d: dimension, v: float32 bytes, p?: payloads, x?: deleteIds}`.
 * This is format 1, public since the change feed reads it (docs/changes.md): a later format
 * sets `f` to its number, and a reader refuses a format it does not know rather than
 * misreading it.
 * `p` is absent when no point of the entry has a payload (a bulk import of bare vectors
 * then carries no per-point null); entries written before that always carry it, and
 * both decode alike.
 */
import { Packr } from "msgpackr";
import { positionsPerEntry } from "./limits.ts";
import type { Payload } from "./schemas.ts";
import { errorMessage } from "./errors.ts";
import { vectorIssue, type VectorSpace } from "./vectors.ts";

export const EntryKind = { Upsert: "upsert", Delete: "delete" } as const;
export type EntryKind = (typeof EntryKind)[keyof typeof EntryKind];

export interface UpsertEntry {
  kind: typeof EntryKind.Upsert;
  ids: string[];
  /** null where a point has no payload; undefined when none has one. */
  payloads?: (Payload | null)[];
  dimension: number;
  /** ids.length × dimension float32 values. */
  vectors: Float32Array;
  /**
   * Ids to delete from the shard BEFORE the points are applied: with a sharding
   * strategy that is not id-stable (vector), an upsert may move an id to another
   * shard, and this removes the old copy. Absent for hash/range (not on the wire).
   */
  deleteIds?: string[];
}

export interface DeleteEntry {
  kind: typeof EntryKind.Delete;
  ids: string[];
}

export type LogEntry = UpsertEntry | DeleteEntry;

const packr = new Packr({ useRecords: false, moreTypes: false });

/** The format this module writes; entries of format 1 carry no `f`. */
export const entryFormat = 1;

interface WireUpsert { k: "u"; i: string[]; p?: (Payload | null)[]; d: number; v: Uint8Array; x?: string[]; f?: number }
interface WireDelete { k: "d"; i: string[] }

export function encodeEntry(entry: LogEntry): Uint8Array {
  if (entry.kind === EntryKind.Delete) return packr.pack({ k: "d", i: entry.ids } satisfies WireDelete);
  const v = new Uint8Array(entry.vectors.buffer, entry.vectors.byteOffset, entry.vectors.byteLength);
  const wire: WireUpsert = { k: "u", i: entry.ids, d: entry.dimension, v };
  if (entry.payloads?.some((p) => p !== null)) wire.p = entry.payloads;
  if (entry.deleteIds !== undefined) wire.x = entry.deleteIds;
  return packr.pack(wire);
}

/**
 * A shard-log message that is not an entry the writer could have made. Any NATS client
 * can publish to a log subject, so replicas check each entry and skip one that fails:
 * every replica decides the same from the same bytes, so they stay identical, and one
 * stray message cannot stop a shard.
 */
export class InvalidEntryError extends Error {
  override readonly name = "InvalidEntryError";
  readonly code = "invalid_entry" as const;
}

export function isInvalidEntryError(err: unknown): err is InvalidEntryError {
  return err instanceof InvalidEntryError;
}

function invalid(reason: string): never {
  throw new InvalidEntryError(reason);
}

function isIdList(value: unknown): value is string[] {
  return Array.isArray(value) && value.length <= positionsPerEntry && value.every((id) => typeof id === "string" && id.length > 0);
}

/** Decodes and checks an entry's shape (types, lengths); the vectors' values are the shard's to check (it knows the space). */
export function decodeEntry(bytes: Uint8Array): LogEntry {
  let wire: unknown;
  try {
    wire = packr.unpack(bytes);
  } catch (err) {
    invalid(`not msgpack: ${errorMessage(err).slice(0, 120)}`);
  }
  if (typeof wire !== "object" || wire === null) invalid("not an object");
  const w = wire as Partial<Record<keyof WireUpsert, unknown>>;
  if (w.f !== undefined && w.f !== entryFormat) invalid(`entry format ${JSON.stringify(w.f).slice(0, 20)} is not one this node reads (${entryFormat})`);
  if (!isIdList(w.i)) invalid("ids must be a list of non-empty strings");
  if (w.k === "d") return { kind: EntryKind.Delete, ids: w.i };
  if (w.k !== "u") invalid(`unknown kind ${JSON.stringify(String(w.k)).slice(0, 40)}`);
  const dimension = w.d;
  if (typeof dimension !== "number" || !Number.isInteger(dimension) || dimension < 1) invalid("dimension must be a positive integer");
  if (!(w.v instanceof Uint8Array) || w.v.byteLength !== w.i.length * dimension * 4) invalid("vector bytes do not match ids × dimension");
  if (w.p !== undefined && (!Array.isArray(w.p) || w.p.length !== w.i.length || !w.p.every((p) => p === null || (typeof p === "object" && !Array.isArray(p))))) {
    invalid("payloads must be one object or null per id");
  }
  if (w.x !== undefined && !isIdList(w.x)) invalid("deleteIds must be a list of non-empty strings");
  // The bytes may sit at an unaligned offset inside the message: copy into an aligned buffer.
  const aligned = new Uint8Array(w.v.byteLength);
  aligned.set(w.v);
  const entry: UpsertEntry = { kind: EntryKind.Upsert, ids: w.i, dimension, vectors: new Float32Array(aligned.buffer) };
  if (w.p !== undefined) entry.payloads = w.p as (Payload | null)[];
  if (w.x !== undefined) entry.deleteIds = w.x;
  return entry;
}

/**
 * An upsert's vectors must be valid in the shard's space: the rules the API applies
 * (vectors.ts). Replicas skip an entry that breaks them, whole; so does every replay that
 * must end in the same state (backups).
 */
export function checkUpsertValues(entry: UpsertEntry, space: VectorSpace): void {
  const dim = space.dimension;
  if (entry.dimension !== dim) throw new InvalidEntryError(`dimension ${entry.dimension}, the shard has ${dim}`);
  for (let p = 0; p < entry.ids.length; p++) {
    const issue = vectorIssue(entry.vectors.subarray(p * dim, (p + 1) * dim), space);
    if (issue) throw new InvalidEntryError(`point ${p}: vector${issue.path.map((i) => `[${i}]`).join("")} ${issue.message}`);
  }
}

/** usearch key of the point at `position` in the entry at stream sequence `seq`. */
export function keyOf(seq: number, position: number): bigint {
  if (position < 0 || position >= positionsPerEntry) throw new Error(`position ${position} out of range`);
  return BigInt(seq) * BigInt(positionsPerEntry) + BigInt(position);
}
