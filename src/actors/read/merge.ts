/**
 * The k best hits of several shards' lists, each already sorted (distance, then id: every
 * replica orders hits so): a k-way merge through a heap of list heads, O(k log S) for S
 * shards, instead of concatenating S × k hits and sorting them all.
 */
import type { Hit } from "../../runtime/schemas.ts";

export function compareHits(a: Hit, b: Hit): number {
  return a.distance - b.distance || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** The first `k` hits of the sorted `lists`, in order. */
export function mergeTopK(lists: readonly (readonly Hit[])[], k: number): Hit[] {
  const nonEmpty = lists.filter((l) => l.length > 0);
  if (nonEmpty.length === 1) return nonEmpty[0]!.slice(0, k);
  // Heap of [list, position] by the hit at that position.
  const heap: [number, number][] = nonEmpty.map((_, i) => [i, 0]);
  const hitAt = ([list, at]: [number, number]): Hit => nonEmpty[list]![at]!;
  const less = (i: number, j: number): boolean => compareHits(hitAt(heap[i]!), hitAt(heap[j]!)) < 0;
  const down = (from: number): void => {
    for (let i = from; ; ) {
      const left = 2 * i + 1;
      let least = i;
      if (left < heap.length && less(left, least)) least = left;
      if (left + 1 < heap.length && less(left + 1, least)) least = left + 1;
      if (least === i) return;
      [heap[i], heap[least]] = [heap[least]!, heap[i]!];
      i = least;
    }
  };
  for (let i = (heap.length >> 1) - 1; i >= 0; i--) down(i);
  const out: Hit[] = [];
  while (out.length < k && heap.length > 0) {
    const head = heap[0]!;
    out.push(hitAt(head));
    if (head[1] + 1 < nonEmpty[head[0]]!.length) {
      head[1]++;
    } else {
      // That list is spent: its place goes to the last entry.
      const last = heap.pop()!;
      if (heap.length === 0) break;
      heap[0] = last;
    }
    down(0);
  }
  return out;
}
