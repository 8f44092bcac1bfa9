/**
 * Shard log entries (the body of a message on `jade.log.<collection>.<shard>`).
 * msgpack, with vectors as raw little-endian float32 bytes so neither side
 * converts numbers one by one. Replicas derive usearch keys from the entry's
 * stream sequence and the point's position in it, so every replica of a shard
 * assigns identical keys.
 */
import { Packr } from "msgpackr";
import { positionsPerEntry } from "./limits.ts";
import type { Payload } from "./schemas.ts";

export const EntryKind = { Upsert: "upsert", Delete: "delete" } as const;
export type EntryKind = (typeof EntryKind)[keyof typeof EntryKind];

export interface UpsertEntry {
  kind: typeof EntryKind.Upsert;
  ids: string[];
  /** null where a point has no payload. */
  payloads: (Payload | null)[];
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

interface WireUpsert { k: "u"; i: string[]; p: (Payload | null)[]; d: number; v: Uint8Array; x?: string[] }
interface WireDelete { k: "d"; i: string[] }

export function encodeEntry(entry: LogEntry): Uint8Array {
  if (entry.kind === EntryKind.Delete) return packr.pack({ k: "d", i: entry.ids } satisfies WireDelete);
  const v = new Uint8Array(entry.vectors.buffer, entry.vectors.byteOffset, entry.vectors.byteLength);
  const wire: WireUpsert = { k: "u", i: entry.ids, p: entry.payloads, d: entry.dimension, v };
  if (entry.deleteIds !== undefined) wire.x = entry.deleteIds;
  return packr.pack(wire);
}

export function decodeEntry(bytes: Uint8Array): LogEntry {
  const wire = packr.unpack(bytes) as WireUpsert | WireDelete;
  if (wire.k === "d") return { kind: EntryKind.Delete, ids: wire.i };
  if (wire.k !== "u") throw new Error(`unknown log entry kind ${String((wire as { k: unknown }).k)}`);
  // The bytes may sit at an unaligned offset inside the message: copy into an aligned buffer.
  const aligned = new Uint8Array(wire.v.byteLength);
  aligned.set(wire.v);
  const vectors = new Float32Array(aligned.buffer);
  if (vectors.length !== wire.i.length * wire.d) throw new Error("log entry vector bytes do not match ids × dimension");
  const entry: UpsertEntry = { kind: EntryKind.Upsert, ids: wire.i, payloads: wire.p, dimension: wire.d, vectors };
  if (wire.x !== undefined) entry.deleteIds = wire.x;
  return entry;
}

/** usearch key of the point at `position` in the entry at stream sequence `seq`. */
export function keyOf(seq: number, position: number): bigint {
  if (position < 0 || position >= positionsPerEntry) throw new Error(`position ${position} out of range`);
  return BigInt(seq) * BigInt(positionsPerEntry) + BigInt(position);
}
