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
 *
 * Format 2 adds the transaction entries (decision 013), each with `f: 2`; plain upserts and
 * deletes stay format 1, so a cluster that writes format 2 writes them byte for byte as before.
 * - `txn.prepare`: `{k:"tp", f:2, t: txn, w?: upsert (as above, without k), r?: ids to delete,
 *   c?: [{i: id, v?: version, e?: exists}], dl: deadline (ms since the epoch)}`: staged, invisible;
 * - `txn.commit`: `{k:"tc", f:2, t, s: the prepare's sequence, at: commit time (ms)}`;
 * - `txn.abort`: `{k:"ta", f:2, t, s}`.
 */
import { Packr } from "msgpackr";
import { limits, positionsPerEntry } from "./limits.ts";
import type { Payload } from "./schemas.ts";
import { errorMessage } from "./errors.ts";
import { rowIssue, type VectorSpace } from "./vectors.ts";

export const EntryKind = { Upsert: "upsert", Delete: "delete", TxnPrepare: "txn.prepare", TxnCommit: "txn.commit", TxnAbort: "txn.abort" } as const;
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

/** A condition of a transaction on one point: its version, or whether it exists. */
export interface TxnCondition {
  id: string;
  version?: number;
  exists?: boolean;
}

/** One shard's part of a transaction: what becomes of each id it touches (an id is in `upsert` or `deleteIds`, never both). */
export interface TxnPrepareEntry {
  kind: typeof EntryKind.TxnPrepare;
  txn: string;
  upsert?: Omit<UpsertEntry, "kind" | "deleteIds">;
  deleteIds: string[];
  conditions: TxnCondition[];
  /** Past it, a replica still holding the ops asks recovery to finish the transaction. */
  deadlineAtMs: number;
}

export interface TxnCommitEntry {
  kind: typeof EntryKind.TxnCommit;
  txn: string;
  /** The sequence of the shard's prepare: where a reader that starts after it finds the ops. */
  prepareSeq: number;
  /** The record's commit time: a point-in-time restore includes the transaction when it is at or before the instant. */
  committedAtMs: number;
  /**
   * Every shard the transaction touches: a router that finds it applied on one shard checks
   * the others of its read reflect it too, without reading its record. Absent on a marker a
   * restore appends (the router then reads the record).
   */
  shards?: number[];
}

export interface TxnAbortEntry {
  kind: typeof EntryKind.TxnAbort;
  txn: string;
  /**
   * Its prepare's sequence; where none was found (one may still be on its way, and is then
   * ignored: txn-sequencer.ts), a sequence at or before it: recovery's, the log's end; a gateway's, 1.
   */
  prepareSeq: number;
}

export type PlainEntry = UpsertEntry | DeleteEntry;
export type TxnEntry = TxnPrepareEntry | TxnCommitEntry | TxnAbortEntry;
export type LogEntry = PlainEntry | TxnEntry;

/** The ids a plain entry or a prepare writes or deletes. */
export function touchedIds(entry: PlainEntry | TxnPrepareEntry): string[] {
  switch (entry.kind) {
    case EntryKind.Upsert:
      return entry.deleteIds ? [...entry.deleteIds, ...entry.ids] : entry.ids;
    case EntryKind.Delete:
      return entry.ids;
    case EntryKind.TxnPrepare:
      return entry.upsert ? [...entry.upsert.ids, ...entry.deleteIds] : entry.deleteIds;
  }
}

const packr = new Packr({ useRecords: false, moreTypes: false });

/** The newest format this module writes: plain entries are format 1 (no `f`), transaction entries format 2. */
export const entryFormat = 2;
/** The format a log must be written in before transaction entries may be appended to it (runtime/formats.ts). */
export const txnEntryFormat = 2;

interface WireUpsert { k: "u"; i: string[]; p?: (Payload | null)[]; d: number; v: Uint8Array; x?: string[]; f?: number }
interface WireDelete { k: "d"; i: string[] }
interface WireCondition { i: string; v?: number; e?: boolean }
interface WirePrepare { k: "tp"; f: 2; t: string; w?: Omit<WireUpsert, "k" | "x" | "f">; r?: string[]; c?: WireCondition[]; dl: number }
interface WireMarker { k: "tc" | "ta"; f: 2; t: string; s: number; at?: number; sh?: number[] }

function wireUpsert(entry: Omit<UpsertEntry, "kind" | "deleteIds">): Omit<WireUpsert, "k" | "x" | "f"> {
  const v = new Uint8Array(entry.vectors.buffer, entry.vectors.byteOffset, entry.vectors.byteLength);
  const wire: Omit<WireUpsert, "k" | "x" | "f"> = { i: entry.ids, d: entry.dimension, v };
  if (entry.payloads?.some((p) => p !== null)) wire.p = entry.payloads;
  return wire;
}

export function encodeEntry(entry: LogEntry): Uint8Array {
  switch (entry.kind) {
    case EntryKind.Delete:
      return packr.pack({ k: "d", i: entry.ids } satisfies WireDelete);
    case EntryKind.Upsert: {
      const wire: WireUpsert = { k: "u", ...wireUpsert(entry) };
      if (entry.deleteIds !== undefined) wire.x = entry.deleteIds;
      return packr.pack(wire);
    }
    case EntryKind.TxnPrepare: {
      const wire: WirePrepare = { k: "tp", f: txnEntryFormat, t: entry.txn, dl: entry.deadlineAtMs };
      if (entry.upsert) wire.w = wireUpsert(entry.upsert);
      if (entry.deleteIds.length > 0) wire.r = entry.deleteIds;
      if (entry.conditions.length > 0) wire.c = entry.conditions.map((c) => ({ i: c.id, ...(c.version !== undefined ? { v: c.version } : {}), ...(c.exists !== undefined ? { e: c.exists } : {}) }));
      return packr.pack(wire);
    }
    case EntryKind.TxnCommit:
      return packr.pack({ k: "tc", f: txnEntryFormat, t: entry.txn, s: entry.prepareSeq, at: entry.committedAtMs, ...(entry.shards ? { sh: entry.shards } : {}) } satisfies WireMarker);
    case EntryKind.TxnAbort:
      return packr.pack({ k: "ta", f: txnEntryFormat, t: entry.txn, s: entry.prepareSeq } satisfies WireMarker);
  }
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
  const w = wire as Record<string, unknown>;
  if (w.f !== undefined && w.f !== 1 && w.f !== txnEntryFormat) invalid(`entry format ${JSON.stringify(w.f).slice(0, 20)} is not one this node reads (1–${entryFormat})`);
  switch (w.k) {
    case "u":
    case "d":
      return decodePlain(w);
    case "tp":
    case "tc":
    case "ta":
      if (w.f !== txnEntryFormat) invalid(`a transaction entry is format ${txnEntryFormat}`);
      return w.k === "tp" ? decodePrepare(w) : decodeMarker(w);
    default:
      invalid(`unknown kind ${JSON.stringify(String(w.k)).slice(0, 40)}`);
  }
}

/**
 * The entry when it is a transaction's commit or abort marker, else undefined (an entry no
 * writer made too): for readers that look only at markers (a restore's cut) and need not copy
 * every upsert's vectors as `decodeEntry` does.
 */
export function readMarker(bytes: Uint8Array): TxnCommitEntry | TxnAbortEntry | undefined {
  let wire: unknown;
  try {
    wire = packr.unpack(bytes);
  } catch {
    return undefined;
  }
  const w = wire as Record<string, unknown> | null;
  if (typeof w !== "object" || w === null || (w.k !== "tc" && w.k !== "ta") || w.f !== txnEntryFormat) return undefined;
  try {
    return decodeMarker(w);
  } catch {
    return undefined;
  }
}

function decodePlain(w: Record<string, unknown>): PlainEntry {
  if (!isIdList(w.i)) invalid("ids must be a list of non-empty strings");
  if (w.k === "d") return { kind: EntryKind.Delete, ids: w.i };
  if (w.x !== undefined && !isIdList(w.x)) invalid("deleteIds must be a list of non-empty strings");
  const entry: UpsertEntry = { kind: EntryKind.Upsert, ...decodeUpsertPart(w) };
  if (w.x !== undefined) entry.deleteIds = w.x as string[];
  return entry;
}

function decodeUpsertPart(w: Record<string, unknown>): Omit<UpsertEntry, "kind" | "deleteIds"> {
  if (!isIdList(w.i)) invalid("ids must be a list of non-empty strings");
  const dimension = w.d;
  if (typeof dimension !== "number" || !Number.isInteger(dimension) || dimension < 1) invalid("dimension must be a positive integer");
  if (!(w.v instanceof Uint8Array) || w.v.byteLength !== w.i.length * dimension * 4) invalid("vector bytes do not match ids × dimension");
  if (w.p !== undefined && (!Array.isArray(w.p) || w.p.length !== w.i.length || !w.p.every((p) => p === null || (typeof p === "object" && !Array.isArray(p))))) {
    invalid("payloads must be one object or null per id");
  }
  // The bytes may sit at an unaligned offset inside the message: copy into an aligned buffer.
  const aligned = new Uint8Array(w.v.byteLength);
  aligned.set(w.v);
  const part: Omit<UpsertEntry, "kind" | "deleteIds"> = { ids: w.i, dimension, vectors: new Float32Array(aligned.buffer) };
  if (w.p !== undefined) part.payloads = w.p as (Payload | null)[];
  return part;
}

const isTxnId = (value: unknown): value is string => typeof value === "string" && value.length > 0 && value.length <= 64;
const isShardList = (value: unknown): value is number[] =>
  Array.isArray(value) && value.length <= limits.shardsMax && new Set(value).size === value.length && value.every((n) => Number.isSafeInteger(n) && n >= 0 && n < limits.shardsMax);
const isSeq = (value: unknown): value is number => typeof value === "number" && Number.isSafeInteger(value) && value >= 1;

function decodePrepare(w: Record<string, unknown>): TxnPrepareEntry {
  if (!isTxnId(w.t)) invalid("a transaction id is 1–64 characters");
  if (typeof w.dl !== "number" || !Number.isFinite(w.dl)) invalid("a prepare has a deadline");
  const upsert = w.w === undefined ? undefined : typeof w.w === "object" && w.w !== null ? decodeUpsertPart(w.w as Record<string, unknown>) : invalid("upsert part must be an object");
  const deleteIds = w.r === undefined ? [] : isIdList(w.r) ? w.r : invalid("deleted ids must be a list of non-empty strings");
  if (w.c !== undefined && !(Array.isArray(w.c) && w.c.length <= positionsPerEntry)) invalid("conditions must be a list");
  const conditions = ((w.c ?? []) as unknown[]).map((c): TxnCondition => {
    const { i, v, e } = (typeof c === "object" && c !== null ? c : {}) as Record<string, unknown>;
    if (typeof i !== "string" || i.length === 0) invalid("a condition names a point");
    if (v !== undefined && !(typeof v === "number" && Number.isSafeInteger(v) && v >= 0)) invalid("a condition's version is a whole number");
    if (e !== undefined && typeof e !== "boolean") invalid("a condition's exists is true or false");
    return { id: i, ...(v !== undefined ? { version: v } : {}), ...(e !== undefined ? { exists: e } : {}) };
  });
  const upserted = new Set(upsert?.ids ?? []);
  if (upserted.size !== (upsert?.ids.length ?? 0) || new Set(deleteIds).size !== deleteIds.length || deleteIds.some((id) => upserted.has(id))) {
    invalid("a prepare names each id once");
  }
  return { kind: EntryKind.TxnPrepare, txn: w.t, ...(upsert ? { upsert } : {}), deleteIds, conditions, deadlineAtMs: w.dl };
}

function decodeMarker(w: Record<string, unknown>): TxnCommitEntry | TxnAbortEntry {
  if (!isTxnId(w.t)) invalid("a transaction id is 1–64 characters");
  if (!isSeq(w.s)) invalid("a marker names its prepare's sequence");
  if (w.k === "ta") return { kind: EntryKind.TxnAbort, txn: w.t, prepareSeq: w.s };
  if (typeof w.at !== "number" || !Number.isFinite(w.at)) invalid("a commit has its time");
  if (w.sh !== undefined && !isShardList(w.sh)) invalid("a commit's shards are distinct shard numbers");
  return { kind: EntryKind.TxnCommit, txn: w.t, prepareSeq: w.s, committedAtMs: w.at, ...(w.sh !== undefined ? { shards: w.sh } : {}) };
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
    const issue = rowIssue(entry.vectors, p * dim, space);
    if (issue) throw new InvalidEntryError(`point ${p}: vector${issue.path.map((i) => `[${i}]`).join("")} ${issue.message}`);
  }
}

/** The values an entry carries must be valid in the shard's space: an upsert's or a prepare's vectors. */
export function checkEntryValues(entry: LogEntry, space: VectorSpace): void {
  if (entry.kind === EntryKind.Upsert) checkUpsertValues(entry, space);
  else if (entry.kind === EntryKind.TxnPrepare && entry.upsert) checkUpsertValues({ kind: EntryKind.Upsert, ...entry.upsert }, space);
}

/** usearch key of the point at `position` in the entry at stream sequence `seq`. */
export function keyOf(seq: number, position: number): bigint {
  if (position < 0 || position >= positionsPerEntry) throw new Error(`position ${position} out of range`);
  return BigInt(seq) * BigInt(positionsPerEntry) + BigInt(position);
}
