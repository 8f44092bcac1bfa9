/**
 * A shard's content digest: how many points it holds and an order-independent hash of them
 * (id, payload, vector). Each point hashes to 64 bits (sha256 of its fields, length-prefixed,
 * payload as key-sorted JSON); the shard's hash is their sum modulo 2^64. A sum, not a hash of
 * the sorted points, so it is built in one pass in any order and kept up to date as points are
 * upserted and deleted: a backup computes it by replaying snapshot and log (backup/replay.ts),
 * a replica over its live points (ShardIndex.contentDigest), and the two must agree.
 */
import { hash } from "node:crypto";
import type { Payload } from "./schemas.ts";

export interface ContentDigest {
  count: number;
  /** 16 hex digits: the sum of the points' hashes modulo 2^64. */
  hash: string;
}

const mask = (1n << 64n) - 1n;

/** Key-sorted JSON, so digests do not depend on the order payload keys were written in. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const entries = Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/**
 * One point's 64-bit hash; `vector` is its float32 values' bytes. The fields are laid out in
 * one reused buffer and hashed in one call, its digest returned as a "binary" (latin1) string (one
 * character per byte) rather than a Buffer: node allocates a Buffer for every `hash` that
 * returns one, 1.5 µs a call against 0.6 µs for the string (540 bytes, this machine). A 128-d
 * point without a payload hashes in ~1.2 µs (2.9 µs with a hash object fed field by field). A
 * backup's digest pass and a restore's check hash every point.
 */
export function pointHash(id: string, payload: Payload | null | undefined, vector: Uint8Array): bigint {
  const json = payload == null ? "null" : canonicalJson(payload);
  // UTF-8 takes at most 3 bytes per UTF-16 code unit.
  const most = 12 + 3 * (id.length + json.length) + vector.byteLength;
  if (scratch.byteLength < most) scratch = Buffer.allocUnsafe(Math.max(most, 2 * scratch.byteLength));
  let at = field(id, 0);
  at = field(json, at);
  scratch.writeUInt32LE(vector.byteLength, at);
  scratch.set(vector, at + 4);
  const digest = hash("sha256", scratch.subarray(0, at + 4 + vector.byteLength), "binary");
  return (BigInt(uint32At(digest, 4)) << 32n) | BigInt(uint32At(digest, 0));
}

/** The little-endian uint32 at byte `at` of a "binary" (latin1) string: one character per byte. */
function uint32At(bytes: string, at: number): number {
  return (bytes.charCodeAt(at) | (bytes.charCodeAt(at + 1) << 8) | (bytes.charCodeAt(at + 2) << 16) | (bytes.charCodeAt(at + 3) << 24)) >>> 0;
}

/** Where pointHash lays out a point's fields: grown to the largest point seen. */
let scratch = Buffer.allocUnsafe(4096);

/** Writes `text` as a length-prefixed UTF-8 field at `at`; returns where the next field starts. */
function field(text: string, at: number): number {
  const bytes = scratch.write(text, at + 4, "utf8");
  scratch.writeUInt32LE(bytes, at);
  return at + 4 + bytes;
}

/** The digest of a set of point hashes. */
export function digestOf(hashes: Iterable<bigint>): ContentDigest {
  let count = 0;
  let sum = 0n;
  for (const h of hashes) {
    count++;
    sum = (sum + h) & mask;
  }
  return { count, hash: sum.toString(16).padStart(16, "0") };
}

export function sameDigest(a: ContentDigest, b: ContentDigest): boolean {
  return a.count === b.count && a.hash === b.hash;
}
