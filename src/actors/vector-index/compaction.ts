/**
 * Graph compaction. usearch only marks a removed node: it keeps the node's vector and links, in
 * memory and in every saved file, until a later add reuses it. Overwrites reuse what they
 * remove, but deletes leave their nodes for good: half of 20,000 ids deleted left a snapshot
 * 3.6 × the live vectors (decision 007), and searches still walk the removed nodes.
 *
 * So a shard whose graph holds too many removed nodes gets a new graph, built from its live
 * points in time slices while the old one goes on serving, absorbing and removing. The new
 * graph then catches up with what changed meanwhile (it records the version of every slot it
 * took, and passes over the slots until few differ), and takes over in one synchronous step.
 * Saves compact first (ShardIndex.save), so the snapshot written after a large delete is
 * compact too.
 */
import { TimeSlicer } from "../../runtime/async.ts";
import { absorbSliceMsDefault } from "./absorber.ts";
import { Graph } from "./graph.ts";
import type { ShardIndex } from "./shard-index.ts";

/** Removed nodes worth a rebuild: at least this many… */
export const compactRemovedMin = 1_024;
/** …and at least this share of the graph's nodes (removed ones included). */
export const compactRemovedShare = 0.2;
/** A catch-up pass that found at most this many changed slots is followed by the final, synchronous one. */
const catchUpSlotsMax = 512;
/** Sliced catch-up passes before the final one, whatever they found: writes cannot hold a rebuild off for ever. */
const catchUpPassesMax = 8;
/** Rows added between two looks at the clock: fewer than a Graph stages (so each step's add can use `threads`). */
const rowsPerStep = 16;

/**
 * True when the graph holds enough removed nodes to be worth rebuilding. Rows the graph has
 * still to absorb will reuse removed nodes (an overwrite removes the old vector before its new
 * one is absorbed), so they do not count.
 */
export function wantsCompaction(shard: ShardIndex): boolean {
  const { graph } = shard;
  const idle = graph.removed - shard.pendingRows;
  return idle >= compactRemovedMin && idle >= compactRemovedShare * (graph.size + graph.removed);
}

const compacting = new WeakMap<ShardIndex, Promise<boolean>>();

/**
 * Rebuilds the shard's graph if it wants it (or joins a rebuild under way): undefined when
 * there is nothing to do, else resolves true once a new graph took over (false if the shard
 * was closed meanwhile).
 */
export function compactGraph(shard: ShardIndex, options: { threads?: number; sliceMs?: number } = {}): Promise<boolean> | undefined {
  const running = compacting.get(shard);
  if (running) return running;
  if (!wantsCompaction(shard)) return undefined;
  const run = rebuild(shard, options.threads ?? 1, new TimeSlicer(options.sliceMs ?? absorbSliceMsDefault)).finally(() => compacting.delete(shard));
  compacting.set(shard, run);
  return run;
}

async function rebuild(shard: ShardIndex, threads: number, slicer: TimeSlicer): Promise<boolean> {
  const next = new Graph(shard.config);
  /** The version of each slot `next` holds (0: none), to compare with what the shard's graph holds. */
  let built: Float64Array = new Float64Array(0);
  /** Makes `next` hold what the shard's graph holds now at `slot`; true if that changed it. */
  const sync = (slot: number): boolean => {
    const { points } = shard;
    if (slot >= built.length) built = grown(built, points.slotCount);
    const want = points.inGraph[slot] === 1 ? points.versions[slot]! : 0;
    const have = built[slot]!;
    if (want === have) return false;
    if (have !== 0) next.remove(slot);
    if (want !== 0) next.stage(slot, points.vector(slot), 0);
    built[slot] = want;
    return true;
  };
  /** One pass over every slot in time slices (the shard changes in between); returns how many slots changed. */
  const pass = async (): Promise<number> => {
    let changed = 0;
    for (let slot = 0; slot < shard.points.slotCount && !shard.closed; slot++) {
      if (!sync(slot) || ++changed % rowsPerStep !== 0) continue;
      next.flush(threads);
      await slicer.pause();
    }
    next.flush(threads);
    return changed;
  };
  await pass();
  for (let passes = 1; passes < catchUpPassesMax && !shard.closed; passes++) {
    if ((await pass()) <= catchUpSlotsMax) break;
  }
  if (shard.closed) return false;
  // The last pass runs in one piece, so nothing changes between it and the switch.
  for (let slot = 0; slot < shard.points.slotCount; slot++) sync(slot);
  next.flush(threads);
  shard.graph = next;
  return true;
}

function grown(built: Float64Array, slots: number): Float64Array {
  const out = new Float64Array(Math.max(slots, built.length * 2));
  out.set(built);
  return out;
}
