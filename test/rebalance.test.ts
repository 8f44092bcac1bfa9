import { describe, expect, it } from "vitest";
import { planPlacement, type Placement } from "../src/runtime/placement.ts";
import { rebalanceMoves, type Move } from "../src/runtime/rebalance.ts";
import { seededRandom } from "../src/runtime/random.ts";

function apply(placements: Placement[], moves: Move[]): Placement[] {
  return placements.map((p) => ({
    ...p,
    shards: p.shards.map((s) => {
      let replicas = s.replicas;
      for (const m of moves) if (m.collection === p.collection && m.shard === s.shard) replicas = replicas.map((n) => (n === m.from ? m.to : n));
      return { ...s, replicas };
    }),
  }));
}

function counts(placements: Placement[], nodes: string[]): number[] {
  const c = new Map(nodes.map((n) => [n, 0]));
  for (const p of placements) for (const s of p.shards) for (const n of s.replicas) c.set(n, (c.get(n) ?? 0) + 1);
  return nodes.map((n) => c.get(n)!);
}

describe("rebalanceMoves", () => {
  it("moves replicas onto a node that joined until the spread is even", () => {
    const placements = [planPlacement({ collection: "a", shards: 6, replicas: 2, nodes: ["n1", "n2", "n3"] })];
    const nodes = ["n1", "n2", "n3", "n4"];
    const moves = rebalanceMoves({ placements, eligible: nodes });
    expect(moves.every((m) => m.to === "n4")).toBe(true);
    const after = apply(placements, moves);
    const c = counts(after, nodes);
    expect(Math.max(...c) - Math.min(...c)).toBeLessThanOrEqual(1);
    for (const s of after[0]!.shards) expect(new Set(s.replicas).size).toBe(s.replicas.length);
  });

  it("empties a cordoned node without ever putting two replicas of a shard on one node", () => {
    const placements = [planPlacement({ collection: "a", shards: 4, replicas: 2, nodes: ["n1", "n2", "n3"] })];
    const moves = rebalanceMoves({ placements, eligible: ["n1", "n2"], cordoned: ["n3"] });
    const after = apply(placements, moves);
    expect(counts(after, ["n3"])).toEqual([0]);
    for (const s of after[0]!.shards) expect(new Set(s.replicas).size).toBe(2);
  });

  it("does nothing when balanced, and leaves busy shards alone", () => {
    const placements = [planPlacement({ collection: "a", shards: 3, replicas: 1, nodes: ["n1", "n2", "n3"] })];
    expect(rebalanceMoves({ placements, eligible: ["n1", "n2", "n3"] })).toEqual([]);
    const busy = new Set(["a/0", "a/1", "a/2"]);
    expect(rebalanceMoves({ placements, eligible: ["n1", "n2", "n3", "n4"], busy })).toEqual([]);
  });

  it("always converges to an even spread (seeded random clusters)", () => {
    const random = seededRandom(42);
    for (let round = 0; round < 200; round++) {
      const nodeCount = 2 + Math.floor(random() * 5);
      const nodes = Array.from({ length: nodeCount }, (_, i) => `n${i}`);
      const initial = nodes.slice(0, 1 + Math.floor(random() * nodeCount));
      const placements = Array.from({ length: 1 + Math.floor(random() * 3) }, (_, c) =>
        planPlacement({ collection: `c${c}`, shards: 1 + Math.floor(random() * 8), replicas: 1 + Math.floor(random() * 3), nodes: initial }),
      );
      // One transfer per shard at a time: rebalance again as transfers complete, until nothing moves.
      let after = placements;
      for (let pass = 0; pass < 50; pass++) {
        const moves = rebalanceMoves({ placements: after, eligible: nodes, movesMax: 1_000 });
        if (moves.length === 0) break;
        expect(new Set(moves.map((m) => `${m.collection}/${m.shard}`)).size).toBe(moves.length);
        after = apply(after, moves);
      }
      const c = counts(after, nodes);
      expect(Math.max(...c) - Math.min(...c), `round ${round}`).toBeLessThanOrEqual(1);
      for (const p of after) for (const s of p.shards) expect(new Set(s.replicas).size).toBe(s.replicas.length);
    }
  });
});
