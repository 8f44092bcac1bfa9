import { describe, expect, it } from "vitest";
import {
  isBalanced,
  learnersByShard,
  loadOf,
  placementDiff,
  placementProblems,
  planPlacement,
  replicasOf,
  withInFlight,
  type Placement,
} from "../src/runtime/placement.ts";
import { transferPhase } from "../src/runtime/transfer.ts";
import { seededRng } from "../src/runtime/random.ts";

const nodesN = (n: number) => Array.from({ length: n }, (_, i) => `n${i + 1}`);

function perNode(placements: Placement[], nodes: string[]): number[] {
  const load = loadOf(placements, undefined, nodes);
  return nodes.map((n) => load[n] ?? 0);
}
const spread = (counts: number[]) => Math.max(...counts) - Math.min(...counts);

describe("planPlacement: fresh placement", () => {
  it("4 shards × RF 2 on 3 nodes: every shard on 2 distinct nodes, per-node load 3/3/2", () => {
    const nodes = nodesN(3);
    const p = planPlacement({ collection: "docs", shards: 4, replicas: 2, nodes });
    expect(p.collection).toBe("docs");
    expect(p.epoch).toBe(1);
    expect(placementProblems(p, { shards: 4, replicas: 2, nodes })).toEqual([]);
    expect(perNode([p], nodes).sort()).toEqual([2, 3, 3]);
    expect(isBalanced([p], nodes)).toBe(true);
  });

  it.each([
    [1, 1, 1],
    [1, 3, 3],
    [3, 1, 5],
    [4, 2, 3],
    [5, 3, 4],
    [7, 2, 5],
    [8, 3, 6],
    [16, 2, 7],
    [10, 5, 5],
  ])("%i shards × RF %i on %i nodes: even spread (max-min <= 1), no duplicates", (shards, replicas, n) => {
    const nodes = nodesN(n);
    const p = planPlacement({ collection: "c", shards, replicas, nodes });
    expect(placementProblems(p, { shards, replicas, nodes })).toEqual([]);
    expect(spread(perNode([p], nodes))).toBeLessThanOrEqual(1);
  });

  it("RF larger than the live nodes is capped at the node count", () => {
    const nodes = nodesN(2);
    const p = planPlacement({ collection: "c", shards: 3, replicas: 5, nodes });
    for (const s of p.shards) expect([...s.replicas].sort()).toEqual(["n1", "n2"]);
    expect(placementProblems(p, { shards: 3, replicas: 5, nodes })).toEqual([]);
  });

  it("no live nodes: every shard has no replica", () => {
    const p = planPlacement({ collection: "c", shards: 2, replicas: 2, nodes: [] });
    expect(p.shards).toEqual([
      { shard: 0, replicas: [] },
      { shard: 1, replicas: [] },
    ]);
  });

  it("is deterministic: node order and duplicates in the input don't matter", () => {
    const a = planPlacement({ collection: "c", shards: 6, replicas: 2, nodes: ["b", "a", "d", "c"] });
    const b = planPlacement({ collection: "c", shards: 6, replicas: 2, nodes: ["d", "c", "c", "a", "b", "a"] });
    expect(b).toEqual(a);
    expect(a.shards[0]!.replicas).toEqual(["a", "b"]); // ties broken by node id
  });

  it("spreads across collections when given the load of the others", () => {
    const nodes = nodesN(3);
    const placements: Placement[] = [];
    for (const name of ["a", "b", "c", "d", "e"]) {
      placements.push(
        planPlacement({ collection: name, shards: 1, replicas: 1, nodes, load: loadOf(placements, name) }),
      );
    }
    expect(perNode(placements, nodes)).toEqual([2, 2, 1]);
    // without the load every single-replica collection would land on n1
    const naive = ["a", "b", "c"].map((name) => planPlacement({ collection: name, shards: 1, replicas: 1, nodes }));
    expect(perNode(naive, nodes)).toEqual([3, 0, 0]);
  });

  it("rejects nonsense input", () => {
    expect(() => planPlacement({ collection: "c", shards: 0, replicas: 1, nodes: ["a"] })).toThrow(/shards/);
    expect(() => planPlacement({ collection: "c", shards: 1, replicas: 0, nodes: ["a"] })).toThrow(/replicas/);
    expect(() => planPlacement({ collection: "c", shards: 1.5, replicas: 1, nodes: ["a"] })).toThrow(/shards/);
    const other = planPlacement({ collection: "x", shards: 1, replicas: 1, nodes: ["a"] });
    expect(() => planPlacement({ collection: "c", shards: 1, replicas: 1, nodes: ["a"], current: other })).toThrow(/'x'/);
  });
});

describe("planPlacement: changes with minimal movement", () => {
  const nodes = nodesN(3);
  const base = () => planPlacement({ collection: "docs", shards: 4, replicas: 2, nodes });

  it("is stable: the same input returns the current placement object and epoch", () => {
    const p = base();
    const again = planPlacement({ collection: "docs", shards: 4, replicas: 2, nodes: [...nodes].reverse(), current: p });
    expect(again).toBe(p);
    expect(again.epoch).toBe(1);
  });

  it("node death: only the dead node's replicas move, to distinct live nodes; epoch + 1", () => {
    const p = base();
    const live = ["n1", "n3", "n4"];
    const q = planPlacement({ collection: "docs", shards: 4, replicas: 2, nodes: live, current: p });
    expect(q.epoch).toBe(2);
    expect(placementProblems(q, { shards: 4, replicas: 2, nodes: live })).toEqual([]);
    const diff = placementDiff(p, q);
    const lost = replicasOf(p, "n2");
    expect(lost.length).toBeGreaterThan(0);
    expect(diff.map((d) => d.shard)).toEqual(lost);
    for (const d of diff) {
      expect(d.remove).toEqual(["n2"]);
      expect(d.add).toHaveLength(1);
    }
    for (const s of p.shards) {
      const survivors = s.replicas.filter((n) => n !== "n2");
      expect(q.shards[s.shard]!.replicas.slice(0, survivors.length)).toEqual(survivors); // kept, in order
    }
    // the replacements went to the least loaded node first: n4 (empty)
    expect(replicasOf(q, "n4").length).toBeGreaterThan(0);
    expect(spread(perNode([q], live))).toBeLessThanOrEqual(1);
  });

  it("node join: nothing moves (rebalancing is a separate step)", () => {
    const p = base();
    const q = planPlacement({ collection: "docs", shards: 4, replicas: 2, nodes: [...nodes, "n9"], current: p });
    expect(q).toBe(p);
    expect(placementDiff(p, q)).toEqual([]);
  });

  it("a join fills replicas that were missing because RF was capped", () => {
    const p = planPlacement({ collection: "c", shards: 2, replicas: 3, nodes: ["a", "b"] });
    const q = planPlacement({ collection: "c", shards: 2, replicas: 3, nodes: ["a", "b", "c"], current: p });
    expect(q.epoch).toBe(2);
    expect(placementDiff(p, q)).toEqual([
      { shard: 0, add: ["c"], remove: [] },
      { shard: 1, add: ["c"], remove: [] },
    ]);
  });

  it("RF lowered: extras removed from the most loaded nodes, nothing else moves", () => {
    const p = planPlacement({ collection: "c", shards: 3, replicas: 3, nodes });
    const q = planPlacement({ collection: "c", shards: 3, replicas: 2, nodes, current: p });
    expect(placementProblems(q, { shards: 3, replicas: 2, nodes })).toEqual([]);
    for (const d of placementDiff(p, q)) {
      expect(d.add).toEqual([]);
      expect(d.remove).toHaveLength(1);
    }
    expect(spread(perNode([q], nodes))).toBeLessThanOrEqual(1);
  });

  it("repairs a corrupt current placement (duplicate node in a shard, extra shard)", () => {
    const current: Placement = {
      collection: "c",
      epoch: 7,
      shards: [
        { shard: 0, replicas: ["n1", "n1"] },
        { shard: 1, replicas: ["n2", "n3"] },
        { shard: 2, replicas: ["n3"] },
      ],
    };
    const q = planPlacement({ collection: "c", shards: 2, replicas: 2, nodes, current });
    expect(q.epoch).toBe(8);
    expect(placementProblems(q, { shards: 2, replicas: 2, nodes })).toEqual([]);
    expect(q.shards[0]!.replicas[0]).toBe("n1");
    expect(q.shards[1]!.replicas).toEqual(["n2", "n3"]);
  });
});

describe("planPlacement: migrations in flight", () => {
  // A move n2 → n1 of an RF 1 shard is catching up when n2 dies; n3 holds nothing, n1 the most.
  const stored: Placement = {
    collection: "c",
    epoch: 7,
    shards: [
      { shard: 0, replicas: ["n2"], learners: ["n1"] },
      { shard: 1, replicas: ["n1"], draining: ["n3"] },
    ],
  };
  const serving: Placement = { ...stored, shards: stored.shards.map((s) => ({ shard: s.shard, replicas: s.replicas })) };

  it("fills a dead replica's place with the shard's live learner, however loaded", () => {
    const p = planPlacement({ collection: "c", shards: 2, replicas: 1, nodes: ["n1", "n3"], current: serving, load: { n1: 10 }, learners: learnersByShard(stored) });
    expect(p.shards.map((s) => s.replicas)).toEqual([["n1"], ["n1"]]);
    // Without the learner, the least loaded node.
    const blind = planPlacement({ collection: "c", shards: 2, replicas: 1, nodes: ["n1", "n3"], current: serving, load: { n1: 10 } });
    expect(blind.shards[0]!.replicas).toEqual(["n3"]);
  });

  it("a dead learner is not a candidate", () => {
    const p = planPlacement({ collection: "c", shards: 2, replicas: 1, nodes: ["n3"], current: serving, learners: learnersByShard(stored) });
    expect(p.shards[0]!.replicas).toEqual(["n3"]);
  });

  it("keeps learners and draining replicas, except where the plan made them replicas; the move then reads as cut over", () => {
    const p = planPlacement({ collection: "c", shards: 2, replicas: 1, nodes: ["n1", "n3"], current: serving, learners: learnersByShard(stored) });
    const shards = withInFlight(p.shards, stored.shards);
    expect(shards).toEqual([
      { shard: 0, replicas: ["n1"] },
      { shard: 1, replicas: ["n1"], draining: ["n3"] },
    ]);
    const move = { collection: "c", uid: "u", shard: 0, from: "n2", to: "n1" };
    expect(transferPhase({ ...p, shards }, move)).toBe("cutOver");
    // Kept as a learner beside its own replica, the move could neither cut over nor roll back.
    expect(transferPhase({ ...p, shards: [{ shard: 0, replicas: ["n1"], learners: ["n1"] }] }, move)).toBe("invalid");
    // A draining node the plan made a replica again is a replica only.
    expect(withInFlight([{ shard: 1, replicas: ["n3"] }], stored.shards)).toEqual([{ shard: 1, replicas: ["n3"] }]);
  });
});

describe("placementDiff / replicasOf", () => {
  it("diff from nothing adds everything; to nothing removes everything", () => {
    const p = planPlacement({ collection: "c", shards: 2, replicas: 1, nodes: ["a", "b"] });
    expect(placementDiff(undefined, p)).toEqual([
      { shard: 0, add: ["a"], remove: [] },
      { shard: 1, add: ["b"], remove: [] },
    ]);
    expect(placementDiff(p, undefined)).toEqual([
      { shard: 0, add: [], remove: ["a"] },
      { shard: 1, add: [], remove: ["b"] },
    ]);
    expect(placementDiff(p, p)).toEqual([]);
  });

  it("replicasOf lists a node's shards ascending", () => {
    const p: Placement = {
      collection: "c",
      epoch: 1,
      shards: [
        { shard: 0, replicas: ["a", "b"] },
        { shard: 1, replicas: ["b"] },
        { shard: 2, replicas: ["a"] },
      ],
    };
    expect(replicasOf(p, "a")).toEqual([0, 2]);
    expect(replicasOf(p, "b")).toEqual([0, 1]);
    expect(replicasOf(p, "z")).toEqual([]);
  });
});

describe("planPlacement: randomized invariants (seeded)", () => {
  it("over random cluster histories: valid, minimal movement, stable, even from scratch", () => {
    for (const seed of [1, 2, 3, 42, 1234, 99_999]) {
      const r = seededRng(seed);
      const universe = nodesN(9);
      let live = r.shuffle(universe).slice(0, r.int(1, 6));
      const specs = Array.from({ length: r.int(1, 5) }, (_, i) => ({
        collection: `col${i}`,
        shards: r.int(1, 9),
        replicas: r.int(1, 4),
      }));
      const placements = new Map<string, Placement>();

      for (let step = 0; step < 40; step++) {
        // mutate the cluster: a node dies, joins, or nothing happens
        const roll = r.next();
        if (roll < 0.35 && live.length > 1) live = live.filter((n) => n !== r.pick(live));
        else if (roll < 0.7) {
          const absent = universe.filter((n) => !live.includes(n));
          if (absent.length > 0) live = [...live, r.pick(absent)];
        }
        const order = r.shuffle(live);

        for (const spec of r.shuffle(specs)) {
          const current = placements.get(spec.collection);
          const load = loadOf(placements.values(), spec.collection);
          const next = planPlacement({ ...spec, nodes: order, current, load });
          const ctx = `seed ${seed} step ${step} ${spec.collection}`;

          expect(placementProblems(next, { ...spec, nodes: live }), ctx).toEqual([]);
          // minimal movement: every replica of `current` still on a live node is kept, unless
          // the shard is above its replication factor
          const rf = Math.min(spec.replicas, live.length);
          for (const d of placementDiff(current, next)) {
            const before = current?.shards[d.shard]?.replicas ?? [];
            const keptLive = before.filter((n) => live.includes(n));
            if (keptLive.length <= rf) {
              for (const n of d.remove) expect(live.includes(n), `${ctx}: removed live ${n}`).toBe(false);
            } else {
              expect(d.add, ctx).toEqual([]);
            }
          }
          // epoch: unchanged iff nothing changed
          if (current && placementDiff(current, next).length === 0) expect(next, ctx).toBe(current);
          else expect(next.epoch, ctx).toBe((current?.epoch ?? 0) + 1);
          // stable: planning again changes nothing
          expect(planPlacement({ ...spec, nodes: r.shuffle(live), current: next, load }), ctx).toBe(next);
          // deterministic: the same inputs give the same plan
          expect(planPlacement({ ...spec, nodes: [...order].reverse(), current, load }), ctx).toEqual(next);
          placements.set(spec.collection, next);
        }
      }

      // from scratch, collections planned one after the other spread evenly
      const fresh: Placement[] = [];
      for (const spec of specs) {
        fresh.push(planPlacement({ ...spec, nodes: live, load: loadOf(fresh, spec.collection) }));
      }
      expect(spread(perNode(fresh, live)), `seed ${seed} fresh`).toBeLessThanOrEqual(1);
    }
  });
});
