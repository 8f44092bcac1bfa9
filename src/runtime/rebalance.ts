/**
 * Rebalancing moves (pure): which replicas to move so every eligible node holds
 * a fair share (max − min ≤ 1) and cordoned (draining) nodes hold none. Each
 * move is later run as a zero-downtime transfer by a migration.
 */
import type { Placement } from "./placement.ts";
import { shardKey } from "./subjects.ts";

export interface Move {
  collection: string;
  shard: number;
  from: string;
  to: string;
}

export interface RebalanceInput {
  placements: readonly Placement[];
  /** Live nodes that may receive replicas. */
  eligible: readonly string[];
  /** Nodes to empty (drained). */
  cordoned?: readonly string[];
  /** Shards with a transfer already in flight: left alone. */
  busy?: ReadonlySet<string>;
  movesMax?: number;
}

export function rebalanceMoves(input: RebalanceInput): Move[] {
  const eligible = [...input.eligible].sort();
  if (eligible.length === 0) return [];
  const cordoned = new Set(input.cordoned ?? []);
  const busy = new Set(input.busy ?? []);
  // Working copy: shard → holders; node → its replicas.
  const holders = new Map<string, Set<string>>();
  const held = new Map<string, string[]>();
  for (const n of [...eligible, ...cordoned]) held.set(n, []);
  for (const p of input.placements) {
    for (const s of p.shards) {
      const key = shardKey(p.collection, s.shard);
      holders.set(key, new Set(s.replicas));
      for (const n of s.replicas) held.get(n)?.push(key);
    }
  }
  const moves: Move[] = [];
  const count = (n: string) => held.get(n)?.length ?? 0;
  const movesMax = input.movesMax ?? 64;
  while (moves.length < movesMax) {
    const targets = [...eligible].sort((a, b) => count(a) - count(b) || (a < b ? -1 : 1));
    const drained = [...cordoned].filter((n) => count(n) > 0);
    const sources = drained.length > 0 ? drained : [...eligible].sort((a, b) => count(b) - count(a) || (a < b ? -1 : 1));
    let moved = false;
    for (const from of sources) {
      for (const key of held.get(from) ?? []) {
        if (busy.has(key)) continue;
        const to = targets.find((n) => n !== from && !holders.get(key)!.has(n) && (cordoned.has(from) || count(from) - count(n) > 1));
        if (!to) continue;
        const [collection, shard] = [key.slice(0, key.lastIndexOf("/")), Number(key.slice(key.lastIndexOf("/") + 1))];
        moves.push({ collection, shard, from, to });
        busy.add(key);
        holders.get(key)!.delete(from);
        holders.get(key)!.add(to);
        held.set(from, held.get(from)!.filter((k) => k !== key));
        held.get(to)!.push(key);
        moved = true;
        break;
      }
      if (moved) break;
    }
    if (!moved) break;
  }
  return moves;
}
