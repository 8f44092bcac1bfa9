/**
 * A read that takes some staged transactions as committed (decision 013): a router that found a
 * transaction committed in its record, but still staged on this shard, asks again with it
 * "assumed", so the reader sees all of the transaction or none. The staged ops are laid over the
 * shard: their ids hide what the shard holds for them, their upserts are searched exactly (a
 * transaction is small), their deletes hide points.
 */
import { compileFilter, type Filter } from "../../runtime/filter.ts";
import type { Payload, StoredPoint } from "../../runtime/schemas.ts";
import type { TxnSequencer } from "../../runtime/txn-sequencer.ts";
import type { ShardHit, ShardSearchRequest } from "./api.ts";
import type { DistanceFn } from "./distance.ts";
import { versionOf } from "./points.ts";

interface Upserted {
  vector: Float32Array;
  payload: Payload | undefined;
  /** As the commit will write it: from the prepare's sequence. */
  version: number;
}

export class TxnOverlay {
  /** Every id the assumed transactions write: the shard's own point for it is not read. */
  readonly masked = new Set<string>();
  readonly upserts = new Map<string, Upserted>();

  /** The overlay of those of `assume` staged here; undefined when none is. */
  static of(txns: TxnSequencer, assume: readonly string[]): TxnOverlay | undefined {
    const wanted = new Set(assume);
    const staged = txns.staged().filter((t) => wanted.has(t.txn));
    if (staged.length === 0) return undefined;
    const overlay = new TxnOverlay();
    for (const { entry, prepareSeq } of staged) {
      for (const id of entry.deleteIds) overlay.masked.add(id);
      const upsert = entry.upsert;
      if (!upsert) continue;
      upsert.ids.forEach((id, p) => {
        overlay.masked.add(id);
        const vector = upsert.vectors.subarray(p * upsert.dimension, (p + 1) * upsert.dimension);
        overlay.upserts.set(id, { vector, payload: upsert.payloads?.[p] ?? undefined, version: versionOf(prepareSeq, p) });
      });
    }
    return overlay;
  }

  /** The point the transactions write for `id` (undefined: they delete it). */
  get(id: string, withVectors: boolean): StoredPoint | undefined {
    const point = this.upserts.get(id);
    if (!point) return undefined;
    return { id, ...(point.payload !== undefined ? { payload: point.payload } : {}), ...(withVectors ? { vector: Array.from(point.vector) } : {}), version: point.version };
  }

  /** How the count changes: minus the shard's points it hides that match, plus its upserts that match. */
  countDelta(filter: Filter | undefined, payloadOf: (id: string) => Payload | undefined | null): number {
    const matches = filter === undefined ? () => true : compileFilter(filter);
    let delta = 0;
    for (const id of this.masked) {
      const held = payloadOf(id);
      if (held !== null && matches(held)) delta--;
    }
    for (const point of this.upserts.values()) if (matches(point.payload)) delta++;
    return delta;
  }

  /** The shard's hits (asked for k + masked) without the masked ids, merged with the upserts' exact hits: the best k. */
  search(request: ShardSearchRequest, shardHits: readonly ShardHit[], distance: DistanceFn): ShardHit[] {
    const matches = request.filter === undefined ? () => true : compileFilter(request.filter);
    const own: ShardHit[] = [];
    for (const [id, point] of this.upserts) {
      if (!matches(point.payload)) continue;
      const hit: ShardHit = { id, distance: distance(request.vector, point.vector, 0) };
      if (request.withPayload && point.payload !== undefined) hit.payload = point.payload;
      if (request.withVectors) hit.vector = Array.from(point.vector);
      own.push(hit);
    }
    return [...shardHits.filter((h) => !this.masked.has(h.id)), ...own].sort((a, b) => a.distance - b.distance || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).slice(0, request.k);
  }
}
