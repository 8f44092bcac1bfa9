/**
 * Placement planning (docs/architecture.md: "Control plane", "Migrations") — pure functions.
 *
 * A placement says, per collection and shard, which nodes host a replica. The leader
 * computes the desired placement from the collection's shard count and replication
 * factor, the live nodes and the current placement, then writes it to KV `jade_placement`
 * with a CAS on the entry's KV revision (the fencing: a deposed leader's write fails).
 * `epoch` is the placement's own version counter (+1 per change), carried in the value
 * so replicas and routers can order placements they see.
 *
 * Rules of `planPlacement`:
 * - replicas per shard = min(replicas, live nodes); never two replicas of a shard on a node;
 * - minimal movement: replicas on live nodes stay (in their order); replicas on dead/absent
 *   nodes are dropped; missing replicas are added; extras above the RF are removed (from the
 *   most loaded nodes). A node joining moves nothing (rebalancing is a separate step);
 * - a new replica goes to a live learner of the shard if it has one (a migration's target,
 *   already catching up), else to the candidate node with the fewest replicas in total (`load`
 *   of the other collections + this collection's), then fewest of this collection, then the
 *   smallest node id — so it is deterministic and spreads evenly across collections;
 * - nothing changed → the very `current` object is returned (same epoch); otherwise
 *   epoch = (current?.epoch ?? 0) + 1.
 */
import { z } from "zod";

export const ShardPlacement = z.object({
  shard: z.number().int(),
  /** Serving replicas, no duplicates: routers read from these. */
  replicas: z.array(z.string()),
  /** Replicas being built by a migration: they follow the log but are not read (see transfer.ts). */
  learners: z.array(z.string()).optional(),
  /** Replicas a migration cut over from: still hosted so in-flight reads finish, no longer routed to. */
  draining: z.array(z.string()).optional(),
});
export type ShardPlacement = z.infer<typeof ShardPlacement>;

export const Placement = z.object({
  collection: z.string(),
  epoch: z.number().int(),
  /** one entry per shard, ordered by shard number 0..n-1 */
  shards: z.array(ShardPlacement),
});
export type Placement = z.infer<typeof Placement>;

/**
 * A placement as stored in KV `jade_placement`, one key per collection. Only the coordinator
 * writes them, always by CAS on the entry's revision.
 */
export const PlacementRecord = Placement.extend({
  /** The collection incarnation it places (a re-created collection has a new uid). */
  uid: z.string(),
  /** The coordinator term that wrote it (its lease revision at acquisition). */
  leaderEpoch: z.number().int(),
});
export type PlacementRecord = z.infer<typeof PlacementRecord>;

/** The serving part of a placement, as the planner sees it: replicas only. */
export function servingPlacement(placement: Placement): Placement {
  return { collection: placement.collection, epoch: placement.epoch, shards: placement.shards.map((s) => ({ shard: s.shard, replicas: s.replicas })) };
}

/** Every node that must host a replica of the shard: serving, learning or draining. */
export function hostsOf(shard: ShardPlacement): string[] {
  return [...new Set([...shard.replicas, ...(shard.learners ?? []), ...(shard.draining ?? [])])];
}

export interface PlanInput {
  collection: string;
  /** number of shards (≥ 1) */
  shards: number;
  /** replication factor wanted (≥ 1); capped at the number of live nodes */
  replicas: number;
  /** live nodes */
  nodes: readonly string[];
  /** the placement in force, if any */
  current?: Placement;
  /** replicas per node held by the OTHER collections (see `loadOf(placements, collection)`) */
  load?: Readonly<Record<string, number>>;
  /** per shard, the nodes a migration in flight is building a replica on (`learners` of the stored placement) */
  learners?: ReadonlyMap<number, readonly string[]>;
}

export interface ShardDiff {
  shard: number;
  /** nodes that gain a replica of this shard */
  add: string[];
  /** nodes that lose their replica of this shard */
  remove: string[];
}

const byId = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function assertPositiveInt(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`planPlacement: ${name} must be an integer >= 1, got ${v}`);
}

/** Compute the desired placement of one collection (see the module comment for the rules). */
export function planPlacement(input: PlanInput): Placement {
  const { collection, current } = input;
  assertPositiveInt("shards", input.shards);
  assertPositiveInt("replicas", input.replicas);
  if (current && current.collection !== collection) {
    throw new Error(`planPlacement: current placement is for '${current.collection}', not '${collection}'`);
  }
  const live = [...new Set(input.nodes.filter((n) => typeof n === "string" && n.length > 0))].sort(byId);
  const liveSet = new Set(live);
  const rf = Math.min(input.replicas, live.length);

  // Total load (other collections + this one as planned so far) and this collection's own.
  const total = new Map<string, number>();
  const own = new Map<string, number>();
  for (const n of live) {
    const l = input.load?.[n];
    total.set(n, typeof l === "number" && Number.isFinite(l) && l > 0 ? l : 0);
    own.set(n, 0);
  }
  const bump = (n: string, d: number) => {
    total.set(n, (total.get(n) ?? 0) + d);
    own.set(n, (own.get(n) ?? 0) + d);
  };

  // 1. keep replicas on live nodes (first occurrence only)
  const currentByShard = new Map<number, ShardPlacement>();
  for (const s of current?.shards ?? []) if (!currentByShard.has(s.shard)) currentByShard.set(s.shard, s);
  const planned: string[][] = [];
  for (let shard = 0; shard < input.shards; shard++) {
    const kept: string[] = [];
    for (const n of currentByShard.get(shard)?.replicas ?? []) {
      if (liveSet.has(n) && !kept.includes(n)) kept.push(n);
    }
    for (const n of kept) bump(n, 1);
    planned.push(kept);
  }

  // 2. trim extras above the RF: drop from the most loaded node (ties: the later one in the list)
  for (const replicas of planned) {
    while (replicas.length > rf) {
      let worst = replicas.length - 1;
      for (let i = replicas.length - 2; i >= 0; i--) {
        if ((total.get(replicas[i]!) ?? 0) > (total.get(replicas[worst]!) ?? 0)) worst = i;
      }
      const [gone] = replicas.splice(worst, 1);
      bump(gone!, -1);
    }
  }

  // 3. fill missing replicas, shard by shard: a live learner of the shard first (it is catching
  //    up already; placed anywhere else, it would end a replica beside the new one, its migration
  //    unable to finish), else the least loaded candidate node
  for (const [shard, replicas] of planned.entries()) {
    const learners = (input.learners?.get(shard) ?? []).filter((n) => liveSet.has(n));
    while (replicas.length < rf) {
      const best = leastLoaded(learners, replicas) ?? leastLoaded(live, replicas);
      if (best === undefined) break; // unreachable: rf <= live.length
      replicas.push(best);
      bump(best, 1);
    }
  }

  function leastLoaded(candidates: readonly string[], taken: readonly string[]): string | undefined {
    let best: string | undefined;
    for (const n of candidates) {
      if (taken.includes(n)) continue;
      if (best === undefined || lessLoaded(n, best)) best = n;
    }
    return best;
  }

  function lessLoaded(a: string, b: string): boolean {
    const ta = total.get(a) ?? 0;
    const tb = total.get(b) ?? 0;
    if (ta !== tb) return ta < tb;
    const oa = own.get(a) ?? 0;
    const ob = own.get(b) ?? 0;
    if (oa !== ob) return oa < ob;
    return byId(a, b) < 0;
  }

  const shards: ShardPlacement[] = planned.map((replicas, shard) => ({ shard, replicas }));
  if (current && sameShards(current.shards, shards)) return current;
  return { collection, epoch: (current?.epoch ?? 0) + 1, shards };
}

/**
 * The planned shards with the stored placement's migrations in flight kept (their learners and
 * draining replicas), less a node the plan made a replica: it then is one and nothing else, and
 * its migration finds itself cut over and ends. Kept both, a learner and a replica, it stopped a
 * migration for good (seen in chaos runs).
 */
export function withInFlight(planned: readonly ShardPlacement[], stored: readonly ShardPlacement[]): ShardPlacement[] {
  return planned.map((s) => {
    const inFlight = stored.find((x) => x.shard === s.shard);
    const learners = (inFlight?.learners ?? []).filter((n) => !s.replicas.includes(n));
    const draining = (inFlight?.draining ?? []).filter((n) => !s.replicas.includes(n));
    return { shard: s.shard, replicas: s.replicas, ...(learners.length ? { learners } : {}), ...(draining.length ? { draining } : {}) };
  });
}

/** Per shard, the nodes learning it (what `PlanInput.learners` takes). */
export function learnersByShard(placement: Placement): Map<number, readonly string[]> {
  return new Map(placement.shards.filter((s) => s.learners?.length).map((s) => [s.shard, s.learners!]));
}

function sameShards(a: readonly ShardPlacement[], b: readonly ShardPlacement[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.shard !== y.shard || x.replicas.length !== y.replicas.length) return false;
    for (let j = 0; j < x.replicas.length; j++) if (x.replicas[j] !== y.replicas[j]) return false;
  }
  return true;
}

/** Per shard, which nodes gain and lose a replica going from `from` to `to` (changed shards only, by shard). */
export function placementDiff(from: Placement | undefined, to: Placement | undefined): ShardDiff[] {
  const a = new Map<number, string[]>();
  const b = new Map<number, string[]>();
  for (const s of from?.shards ?? []) a.set(s.shard, s.replicas);
  for (const s of to?.shards ?? []) b.set(s.shard, s.replicas);
  const shards = [...new Set([...a.keys(), ...b.keys()])].sort((x, y) => x - y);
  const out: ShardDiff[] = [];
  for (const shard of shards) {
    const before = new Set(a.get(shard) ?? []);
    const after = new Set(b.get(shard) ?? []);
    const add = [...after].filter((n) => !before.has(n)).sort(byId);
    const remove = [...before].filter((n) => !after.has(n)).sort(byId);
    if (add.length > 0 || remove.length > 0) out.push({ shard, add, remove });
  }
  return out;
}

/** Shards of `placement` that `nodeId` hosts a replica of, ascending. */
export function replicasOf(placement: Placement, nodeId: string): number[] {
  return placement.shards
    .filter((s) => s.replicas.includes(nodeId))
    .map((s) => s.shard)
    .sort((x, y) => x - y);
}

/**
 * Replicas per node over `placements`, skipping collection `exclude` (pass the collection
 * being planned to get `PlanInput.load`). Nodes listed in `nodes` are present with 0.
 */
export function loadOf(
  placements: Iterable<Placement>,
  exclude?: string,
  nodes: readonly string[] = [],
): Record<string, number> {
  const load: Record<string, number> = {};
  for (const n of nodes) load[n] = 0;
  for (const p of placements) {
    if (p.collection === exclude) continue;
    for (const s of p.shards) for (const n of s.replicas) load[n] = (load[n] ?? 0) + 1;
  }
  return load;
}

/** Do the live `nodes` hold replicas of `placements` evenly (max - min <= 1)? */
export function isBalanced(placements: Iterable<Placement>, nodes: readonly string[]): boolean {
  if (nodes.length === 0) return true;
  const load = loadOf(placements, undefined, nodes);
  const counts = nodes.map((n) => load[n] ?? 0);
  return Math.max(...counts) - Math.min(...counts) <= 1;
}

/**
 * What is wrong with a placement against its spec (empty = valid): shard numbering, duplicate
 * nodes within a shard, replicas on nodes not in `nodes`, replica count != min(replicas, nodes).
 */
export function placementProblems(
  placement: Placement,
  spec: { shards: number; replicas: number; nodes: readonly string[] },
): string[] {
  const problems: string[] = [];
  const live = new Set(spec.nodes);
  const rf = Math.min(spec.replicas, live.size);
  if (placement.shards.length !== spec.shards) problems.push(`has ${placement.shards.length} shards, want ${spec.shards}`);
  placement.shards.forEach((s, i) => {
    if (s.shard !== i) problems.push(`shard at index ${i} is numbered ${s.shard}`);
    if (new Set(s.replicas).size !== s.replicas.length) problems.push(`shard ${s.shard} has two replicas on one node`);
    for (const n of s.replicas) if (!live.has(n)) problems.push(`shard ${s.shard} has a replica on absent node ${n}`);
    if (s.replicas.length !== rf) problems.push(`shard ${s.shard} has ${s.replicas.length} replicas, want ${rf}`);
  });
  return problems;
}
