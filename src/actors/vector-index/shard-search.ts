/**
 * Searching one shard (ShardIndex.search and searchMany): the graph's candidates merged with
 * the fresh buffer's exact ones, an exact scan when k is a large share of the shard, and
 * filtered searches exact with respect to the filter. The graph is read from the shard at
 * every search: compaction replaces it.
 *
 * Distances are usearch's: l2 → squared euclidean, cosine → 1 − cos, ip → 1 − dot.
 * Lower is closer; ties are broken by id so every replica orders hits the same way.
 */
import { compileFilter, type Filter } from "../../runtime/filter.ts";
import type { ShardHit, ShardSearchRequest } from "./api.ts";
import { distanceFn, exactTopK, type DistanceFn, type Scored } from "./distance.ts";
import { whole } from "./graph.ts";
import type { ShardIndex } from "./shard-index.ts";
import { TxnOverlay } from "./txn-overlay.ts";
import { batchRow, compareIds, exactScanMax, exactScanShare, isUnfiltered } from "./search-rules.ts";

export class ShardSearch {
  readonly #shard: ShardIndex;
  readonly #distance: DistanceFn;
  readonly #order = (a: Scored, b: Scored): number =>
    a.distance - b.distance || compareIds(this.#shard.points.idOf(a.slot)!, this.#shard.points.idOf(b.slot)!);
  readonly #isLive = (slot: number, version: number): boolean => this.#shard.points.isLive(slot, version);

  constructor(shard: ShardIndex) {
    this.#shard = shard;
    this.#distance = distanceFn(shard.config.metric);
  }

  /** The k nearest points; `request.assume`: staged transactions to read as committed (txn-overlay.ts). */
  search(request: ShardSearchRequest): ShardHit[] {
    const overlay = request.assume?.length ? TxnOverlay.of(this.#shard.txns, request.assume) : undefined;
    if (!overlay) return this.#searchOwn(request);
    // Asked for as many more as the overlay hides, so k remain once they are taken out.
    const hidden = [...overlay.masked].filter((id) => this.#shard.points.slotOf(id) !== undefined).length;
    return overlay.search(request, this.#searchOwn({ ...request, k: request.k + hidden }), this.#distance);
  }

  #searchOwn(request: ShardSearchRequest): ShardHit[] {
    const { k, filter } = request;
    if (request.vector.length !== this.#shard.config.dimension) {
      throw new Error(`query has dimension ${request.vector.length}, the shard has ${this.#shard.config.dimension}`);
    }
    if (this.#shard.size === 0 || k <= 0) return [];
    const query = whole(request.vector);
    if (filter !== undefined && !isUnfiltered(request)) return this.#hits(this.#filteredSearch(query, k, filter), request);
    if (this.#scansExactly(k)) return this.#hits(this.#exactTopK(query, this.#shard.points.liveSlots(), Math.min(k, this.#shard.size)), request);
    return this.#hits(this.#nearest(query, Math.min(k, this.#shard.size)), request);
  }

  #scansExactly(k: number): boolean {
    return k >= this.#shard.size * exactScanShare;
  }

  #exactTopK(query: Float32Array, slots: number[], k: number): Scored[] {
    return exactTopK(query, this.#shard.points.vectors.gather(slots), slots, k, this.#distance, this.#order);
  }

  #hits(scored: readonly Scored[], request: ShardSearchRequest): ShardHit[] {
    return scored.map(({ slot, distance }) => {
      const hit: ShardHit = { id: this.#shard.points.idOf(slot)!, distance };
      const payload = this.#shard.points.payloads[slot];
      if (request.withPayload && payload !== undefined) hit.payload = payload;
      if (request.withVectors) hit.vector = Array.from(this.#shard.points.vector(slot));
      return hit;
    });
  }

  /**
   * Several searches of this shard at once (the worker batches concurrent requests): the
   * unfiltered ones go to the graph as one batched search on up to `threads` threads.
   */
  searchMany(requests: readonly ShardSearchRequest[], threads: number): ShardHit[][] {
    const dim = this.#shard.config.dimension;
    const batched = requests.flatMap((r, i) => (isUnfiltered(r) && !r.assume?.length && r.vector.length === dim && r.k > 0 && !this.#scansExactly(r.k) ? [i] : []));
    const out = new Array<ShardHit[]>(requests.length);
    if (batched.length >= 2 && this.#shard.size > 0) {
      const k = Math.min(this.#shard.size, Math.max(...batched.map((i) => requests[i]!.k)));
      const queries = new Float32Array(batched.length * dim);
      batched.forEach((i, row) => queries.set(requests[i]!.vector, row * dim));
      const matches = this.#shard.graph.searchBatch(queries, batched.length, k, threads);
      batched.forEach((i, row) => {
        const request = requests[i]!;
        const wanted = Math.min(request.k, this.#shard.size);
        const query = queries.slice(row * dim, (row + 1) * dim);
        const fromGraph = matches ? batchRow(matches, row, wanted) : [];
        out[i] = this.#hits(this.#merge(fromGraph, this.#shard.fresh.search(query, wanted, this.#isLive), wanted), request);
      });
    }
    requests.forEach((request, i) => {
      out[i] ??= this.search(request);
    });
    return out;
  }

  /** The k nearest points: the graph's and the fresh buffer's candidates, merged. */
  #nearest(query: Float32Array, k: number): Scored[] {
    return this.#merge(this.#graphCandidates(query, k), this.#shard.fresh.search(query, k, this.#isLive), k);
  }

  #graphCandidates(query: Float32Array, k: number): Scored[] {
    const { keys, distances } = this.#shard.graph.search(query, k);
    const scored: Scored[] = new Array(keys.length);
    for (let i = 0; i < keys.length; i++) scored[i] = { slot: Number(keys[i]!), distance: distances[i]! };
    return scored;
  }

  /** The best `k` of two candidate lists, each slot once (a freshly absorbed point can be in both). */
  #merge(a: Scored[], b: Scored[], k: number): Scored[] {
    if (b.length === 0) return a.length <= k ? a.sort(this.#order) : a.sort(this.#order).slice(0, k);
    const seen = new Set<number>();
    const all = a.concat(b).sort(this.#order);
    const out: Scored[] = [];
    for (const s of all) {
      if (seen.has(s.slot)) continue;
      seen.add(s.slot);
      out.push(s);
      if (out.length === k) break;
    }
    return out;
  }

  /** Exact with respect to the filter: every hit matches, and min(k, matching) hits come back. */
  #filteredSearch(query: Float32Array, k: number, filter: Filter): Scored[] {
    const matching = this.matchingSlots(filter);
    if (matching.length === 0) return [];
    const wanted = Math.min(k, matching.length);
    const { inGraph } = this.#shard.points;
    const exact = (slots: number[]): Scored[] => this.#exactTopK(query, slots, wanted);
    if (matching.length <= exactScanMax || matching.length <= this.#shard.size * exactScanShare) return exact(matching);

    const isMatch = new Uint8Array(this.#shard.points.slotCount);
    for (const slot of matching) isMatch[slot] = 1;
    // Matches the graph has not absorbed are few (the fresh buffer is bounded): scanned exactly.
    const freshMatching = matching.filter((slot) => inGraph[slot] === 0);
    const freshHits = exact(freshMatching);
    const graphSize = this.#shard.graph.size;
    const inGraphMatching = matching.length - freshMatching.length;
    if (inGraphMatching === 0 || graphSize === 0) return freshHits;
    // Oversample so that, if matches are spread evenly, about 2k of the candidates match.
    let candidates = Math.min(graphSize, k * Math.ceil(graphSize / inGraphMatching) * 2);
    for (;;) {
      const hits = this.#graphCandidates(query, candidates).filter((s) => isMatch[s.slot] === 1);
      if (hits.length >= Math.min(wanted, inGraphMatching)) return this.#merge(hits, freshHits, wanted);
      if (candidates >= graphSize) return exact(matching);
      candidates = Math.min(graphSize, candidates * 2);
    }
  }

  /** The live slots whose payload matches `filter` (a scan of the slot table). */
  matchingSlots(filter: Filter): number[] {
    const predicate = compileFilter(filter);
    const { versions, payloads, slotCount } = this.#shard.points;
    const slots: number[] = [];
    for (let slot = 0; slot < slotCount; slot++) {
      // (a free slot's version is 0)
      if (versions[slot] !== 0 && predicate(payloads[slot])) slots.push(slot);
    }
    return slots;
  }
}
