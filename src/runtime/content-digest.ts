/**
 * A shard's content digest: how many points it holds and an order-independent hash of them
 * (id, payload, vector). Each point hashes to 64 bits (sha256 of its fields, length-prefixed,
 * payload as key-sorted JSON); the shard's hash is their sum modulo 2^64. A sum, not a hash of
 * the sorted points, so it is built in one pass in any order and kept up to date as points are
 * upserted and deleted: a backup computes it by replaying snapshot and log (backup/replay.ts),
 * a replica over its live points (ShardIndex.contentDigest), and the two must agree.
 */
import { createHash } from "node:crypto";
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

/** One point's 64-bit hash; `vector` is its float32 values' bytes. */
export function pointHash(id: string, payload: Payload | null | undefined, vector: Uint8Array): bigint {
  const hash = createHash("sha256");
  const header = Buffer.alloc(4);
  for (const field of [Buffer.from(id), Buffer.from(canonicalJson(payload ?? null)), vector]) {
    header.writeUInt32LE(field.byteLength, 0);
    hash.update(header);
    hash.update(field);
  }
  return hash.digest().readBigUInt64LE(0);
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
