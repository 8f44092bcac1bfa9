/**
 * When a shard search scans exactly and when it asks the graph, and the small pieces the search
 * paths share (shard-search.ts).
 */
import type { BatchMatches } from "./usearch-native.ts";
import type { ShardSearchRequest } from "./api.ts";
import type { Scored } from "./distance.ts";

/** A filtered search scans the matching vectors exactly when there are at most this many… */
export const exactScanMax = 2048;
/**
 * …or when they are at most this share of the shard; otherwise it oversamples the graph. An
 * unfiltered search scans exactly when k is at least this share of the shard: an HNSW search
 * for most of a graph visits that many vectors anyway, and it can miss points a removal left
 * poorly linked (k = every point of a 100-point shard came back 2 short).
 */
export const exactScanShare = 0.05;
/** A search every point may answer: no filter, or one that matches everything. */
export function isUnfiltered(request: ShardSearchRequest): boolean {
  const { filter } = request;
  return filter === undefined || (filter.op === "and" && filter.clauses.length === 0);
}

/** The first `count` hits of query `row` in a batched usearch result. */
export function batchRow(matches: BatchMatches, row: number, count: number): Scored[] {
  const found = Math.min(count, Number(matches.counts[row]!));
  const base = row * matches.k;
  const scored = new Array<Scored>(found);
  for (let i = 0; i < found; i++) scored[i] = { slot: Number(matches.keys[base + i]!), distance: matches.distances[base + i]! };
  return scored;
}

export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
