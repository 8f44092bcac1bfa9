/**
 * Fresh writes searchable at once: points applied but not yet absorbed by the HNSW graph
 * are found by the exact scan of the fresh buffer, merged with the graph's hits; the
 * absorber moves them into the graph in bounded slices; a full buffer holds applies back;
 * replacing or deleting a point works wherever its vector is; a snapshot taken mid-way
 * restores both halves.
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Absorber } from "../src/actors/vector-index/absorber.ts";
import type { LogRecord, ShardIndexConfig } from "../src/actors/vector-index/api.ts";
import { distanceFn } from "../src/actors/vector-index/distance.ts";
import { FreshBuffer } from "../src/actors/vector-index/fresh.ts";
import { ShardIndex } from "../src/actors/vector-index/shard-index.ts";
import { parseFilter } from "../src/runtime/filter.ts";
import { encodeEntry, EntryKind } from "../src/runtime/log-entry.ts";
import { randomVectors, seededRandom } from "./support/random.ts";

const dim = 16;
const config: ShardIndexConfig = { dimension: dim, metric: "l2", index: { connectivity: 16, expansionAdd: 64, expansionSearch: 64, quantization: "f32" } };

function entries(vectors: Float32Array, batch: number, firstSeq = 1, prefix = "p"): LogRecord[] {
  const count = vectors.length / dim;
  const out: LogRecord[] = [];
  for (let start = 0, seq = firstSeq; start < count; start += batch, seq++) {
    const end = Math.min(count, start + batch);
    const ids = Array.from({ length: end - start }, (_, i) => `${prefix}${start + i}`);
    const payloads = ids.map((_, i) => ({ n: start + i }));
    out.push({ seq, data: encodeEntry({ kind: EntryKind.Upsert, ids, payloads, dimension: dim, vectors: vectors.slice(start * dim, end * dim) }) });
  }
  return out;
}

function bruteForce(vectors: Float32Array, query: Float32Array, k: number, live: (i: number) => boolean): string[] {
  const scored: { id: string; d: number }[] = [];
  for (let i = 0; i < vectors.length / dim; i++) {
    if (!live(i)) continue;
    let d = 0;
    for (let j = 0; j < dim; j++) d += (vectors[i * dim + j]! - query[j]!) ** 2;
    scored.push({ id: `p${i}`, d });
  }
  return scored.sort((a, b) => a.d - b.d || (a.id < b.id ? -1 : 1)).slice(0, k).map((s) => s.id);
}

function ids(shard: ShardIndex, query: Float32Array, k: number): string[] {
  return shard.search({ vector: query, k, withPayload: false, withVectors: false }).map((h) => h.id);
}

/** Absorbs everything, one slice at a time; returns the number of slices. */
function absorbAll(shard: ShardIndex): number {
  let slices = 0;
  while (shard.absorb(performance.now() + 5)) slices++;
  return slices + 1;
}

describe("fresh buffer: full chunks shortlisted by their 8-bit codes, then ranked exactly", () => {
  // 64-d: 4,096 rows a chunk; three full chunks (coded) and one filling (scanned on float32).
  const dimension = 64;
  const count = 3 * 4096 + 1000;
  const random = seededRandom(11);
  const vectors = randomVectors(random, count, dimension);
  // Two clusters far apart, so l2's per-dimension offsets and ip's scale have work to do.
  for (let i = 0; i < vectors.length; i++) vectors[i] = vectors[i]! * (i % 3 === 0 ? 0.1 : 1) + (Math.floor(i / dimension) % 2 === 0 ? 4 : -1);
  const dead = (slot: number) => slot % 7 === 0;
  const queries = Array.from({ length: 40 }, (_, i) => {
    const q = randomVectors(random, 1, dimension);
    return q.map((v) => v + (i % 2 === 0 ? 4 : -1));
  });

  for (const metric of ["l2", "cosine", "ip"] as const) {
    it(`${metric}: the exact top 10 of the live rows, with their exact distances`, () => {
      const buffer = new FreshBuffer(dimension, metric);
      for (let slot = 0; slot < count; slot++) buffer.push(slot, 1, vectors, slot * dimension);
      const distance = distanceFn(metric);
      let agree = 0;
      for (const query of queries) {
        const truth = Array.from({ length: count }, (_, slot) => slot)
          .filter((slot) => !dead(slot))
          .map((slot) => ({ slot, distance: distance(query, vectors, slot * dimension) }))
          .sort((a, b) => a.distance - b.distance)
          .slice(0, 10)
          .map((s) => s.slot);
        const found = buffer
          .search(query, 10, (slot) => !dead(slot))
          .sort((a, b) => a.distance - b.distance)
          .slice(0, 10);
        for (const hit of found) {
          expect(dead(hit.slot)).toBe(false);
          expect(hit.distance).toBeCloseTo(distance(query, vectors, hit.slot * dimension), 3);
        }
        agree += found.filter((hit) => truth.includes(hit.slot)).length;
      }
      // Measured: every one of them (a shortlist of k per chunk already held the top 10).
      expect(agree / (queries.length * 10)).toBeGreaterThanOrEqual(0.99);
    });
  }
});

describe("fresh buffer", () => {
  const random = seededRandom(5);
  const vectors = randomVectors(random, 3000, dim);
  const queries = Array.from({ length: 20 }, () => randomVectors(random, 1, dim));

  it("finds applied points before the graph absorbed them, exactly", () => {
    const shard = new ShardIndex(config);
    shard.apply(entries(vectors, 500));
    expect(shard.pendingRows).toBe(3000);
    expect(shard.stats().pendingRows).toBe(3000);
    for (const q of queries) expect(ids(shard, q, 10)).toEqual(bruteForce(vectors, q, 10, () => true));
  });

  it("absorbs in slices bounded by the deadline, then serves from the graph with the same answers", () => {
    const shard = new ShardIndex(config);
    shard.apply(entries(vectors, 500));
    const started = performance.now();
    expect(shard.absorb(performance.now())).toBe(true);
    // A slice whose deadline has passed still makes progress, but stops after one step.
    expect(shard.pendingRows).toBeLessThan(3000);
    expect(shard.pendingRows).toBeGreaterThan(2900);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(absorbAll(shard)).toBeGreaterThan(1);
    expect(shard.pendingRows).toBe(0);
    expect(shard.graph.size).toBe(3000);
    let agree = 0;
    for (const q of queries) {
      const truth = bruteForce(vectors, q, 10, () => true);
      agree += ids(shard, q, 10).filter((id) => truth.includes(id)).length;
    }
    expect(agree / (queries.length * 10)).toBeGreaterThanOrEqual(0.95);
  });

  it("merges graph and fresh candidates, each point once, when half is absorbed", () => {
    const shard = new ShardIndex(config);
    const log = entries(vectors, 500);
    shard.apply(log.slice(0, 3));
    absorbAll(shard);
    shard.apply(log.slice(3));
    expect(shard.pendingRows).toBe(1500);
    for (const q of queries) {
      const hits = ids(shard, q, 50);
      expect(new Set(hits).size).toBe(hits.length);
      const truth = bruteForce(vectors, q, 50, () => true);
      expect(hits.filter((id) => truth.includes(id)).length).toBeGreaterThanOrEqual(45);
    }
  });

  it("replaces and deletes points wherever their vector is: graph, fresh, or absorbed but not yet dropped", () => {
    const shard = new ShardIndex(config);
    const log = entries(vectors.slice(0, 1000 * dim), 250);
    shard.apply(log.slice(0, 2));
    absorbAll(shard);
    shard.apply(log.slice(2));
    const far = new Float32Array(dim).fill(50);
    // p10 is in the graph, p900 in the fresh buffer: both move far away; p11 and p901 are deleted.
    const moves = encodeEntry({ kind: EntryKind.Upsert, ids: ["p10", "p900"], dimension: dim, vectors: new Float32Array([...far, ...far]) });
    shard.apply([{ seq: 5, data: moves }, { seq: 6, data: encodeEntry({ kind: EntryKind.Delete, ids: ["p11", "p901"] }) }]);
    expect(shard.count()).toBe(998);
    const nearFar = ids(shard, far, 2).sort();
    expect(nearFar).toEqual(["p10", "p900"]);
    for (const id of ["p10", "p900", "p11", "p901"]) {
      const i = Number(id.slice(1));
      const own = vectors.slice(i * dim, (i + 1) * dim);
      expect(ids(shard, own, 5)).not.toContain(id);
    }
    absorbAll(shard);
    expect(shard.graph.size).toBe(998);
    expect(ids(shard, far, 2).sort()).toEqual(["p10", "p900"]);
    // Stale rows of the fresh buffer never come back, even with k larger than the live rows.
    expect(ids(shard, far, 1000)).toHaveLength(998);
  });

  it("answers a k of a large share of the shard exactly, every live point, after removals", () => {
    // A sparse graph that lost most of its points: HNSW alone misses some of the rest.
    const sparse: ShardIndexConfig = { ...config, index: { ...config.index, connectivity: 2, expansionAdd: 4, expansionSearch: 4 } };
    const shard = new ShardIndex(sparse);
    const few = vectors.slice(0, 400 * dim);
    shard.apply(entries(few, 400));
    absorbAll(shard);
    const deleted = Array.from({ length: 300 }, (_, i) => `p${Math.floor(i / 3) * 4 + (i % 3)}`); // 3 of every 4
    const gone = new Set(deleted);
    shard.apply([{ seq: 2, data: encodeEntry({ kind: EntryKind.Delete, ids: deleted }) }]);
    const live = (i: number): boolean => !gone.has(`p${i}`);
    for (const q of queries.slice(0, 5)) {
      expect(ids(shard, q, shard.count())).toEqual(bruteForce(few, q, shard.count(), live));
      expect(ids(shard, q, 400)).toEqual(bruteForce(few, q, 400, live));
    }
  });

  it("filters over graph and fresh points alike", () => {
    const shard = new ShardIndex(config);
    const log = entries(vectors, 500);
    shard.apply(log.slice(0, 3));
    absorbAll(shard);
    shard.apply(log.slice(3));
    const filter = parseFilter({ n: { $gte: 1000 } });
    expect(shard.count(filter)).toBe(2000);
    for (const q of queries.slice(0, 5)) {
      const hits = shard.search({ vector: q, k: 10, filter, withPayload: true, withVectors: false });
      expect(hits).toHaveLength(10);
      for (const hit of hits) expect((hit.payload as { n: number }).n).toBeGreaterThanOrEqual(1000);
      const truth = bruteForce(vectors, q, 10, (i) => i >= 1000);
      expect(hits.filter((h) => truth.includes(h.id)).length).toBeGreaterThanOrEqual(9);
    }
  });

  it("absorbs with concurrent inserts when given threads, holding every point", () => {
    const shard = new ShardIndex(config);
    shard.apply(entries(vectors, 500));
    while (shard.absorb(performance.now() + 5, 2));
    expect(shard.graph.size).toBe(3000);
    let agree = 0;
    for (const q of queries) {
      const truth = bruteForce(vectors, q, 10, () => true);
      agree += ids(shard, q, 10).filter((id) => truth.includes(id)).length;
    }
    expect(agree / (queries.length * 10)).toBeGreaterThanOrEqual(0.95);
  });

  it("builds a small graph one row at a time even when given threads: every point found by its own vector", () => {
    // Concurrent inserts into a graph of a few hundred rows left ~1 in 500 points unreachable.
    const small = 8;
    let misses = 0;
    for (let seed = 1; seed <= 20; seed++) {
      const shard = new ShardIndex({ ...config, dimension: small });
      const points = randomVectors(seededRandom(seed), 400, small);
      const pointIds = Array.from({ length: 400 }, (_, i) => `m${i}`);
      shard.apply([{ seq: 1, data: encodeEntry({ kind: EntryKind.Upsert, ids: pointIds, dimension: small, vectors: points }) }]);
      while (shard.absorb(performance.now() + 5, 2));
      expect(shard.graph.size).toBe(400);
      for (let i = 0; i < 400; i++) {
        const [top] = shard.search({ vector: points.subarray(i * small, (i + 1) * small), k: 1, withPayload: false, withVectors: false });
        if (top?.id !== `m${i}`) misses++;
      }
    }
    expect(misses).toBe(0);
  });

  it("answers a batch of searches like one search each, the unfiltered ones as one graph call", () => {
    const shard = new ShardIndex(config);
    const log = entries(vectors, 500);
    shard.apply(log.slice(0, 4));
    absorbAll(shard);
    shard.apply(log.slice(4));
    const filter = parseFilter({ n: { $lt: 500 } });
    const requests = queries.slice(0, 8).map((vector, i) => ({ vector, k: 5 + i, withPayload: i % 2 === 0, withVectors: false, ...(i === 3 ? { filter } : {}) }));
    expect(shard.searchMany(requests, 2)).toEqual(requests.map((r) => shard.search(r)));
  });

  describe("snapshots taken mid-absorption", () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(path.join(os.tmpdir(), "jade-fresh-"));
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it("restore the graph's part into the graph and the rest into the fresh buffer", async () => {
      const shard = new ShardIndex(config);
      const log = entries(vectors, 500);
      shard.apply(log.slice(0, 4));
      absorbAll(shard);
      shard.apply(log.slice(4));
      shard.apply([{ seq: 7, data: encodeEntry({ kind: EntryKind.Delete, ids: ["p1", "p2999"] }) }]);
      const file = path.join(dir, "mid.snap");
      await shard.save(file);
      const loaded = await ShardIndex.load(config, file);
      expect(loaded.contentDigest()).toEqual(shard.contentDigest());
      expect(loaded.graph.size).toBe(1999);
      expect(loaded.pendingRows).toBe(999);
      for (const q of queries) expect(ids(loaded, q, 10)).toEqual(ids(shard, q, 10));
      absorbAll(loaded);
      expect(loaded.graph.size).toBe(2998);
    });
  });
});

describe("absorber", () => {
  it("holds an apply back while the fresh buffer is full, and lets it go once a slice made room", async () => {
    const random = seededRandom(9);
    const vectors = randomVectors(random, 4000, dim);
    // One chunk of fresh rows at 16-d is 16,384 rows (1 MiB); a bound of one chunk fills at once.
    const shard = new ShardIndex(config, { freshBytesMax: 64 * 1024 });
    const absorber = new Absorber({ sliceMs: 2 });
    shard.apply(entries(vectors, 4000));
    expect(shard.hasRoom).toBe(false);
    let released = false;
    const room = absorber.room(shard).then(() => (released = true));
    expect(released).toBe(false);
    await room;
    expect(shard.hasRoom).toBe(true);
    expect(shard.pendingRows).toBe(0);
  });

  it("lets reads run between the steps of a slice, where every point is in the graph or the fresh buffer", async () => {
    const random = seededRandom(11);
    const count = 3000;
    const vectors = randomVectors(random, count, dim);
    const shard = new ShardIndex(config);
    shard.apply(entries(vectors, 500));
    let reads = 0;
    const seenPending = new Set<number>();
    // One slice long enough for every row: without `between`, nothing could read until it ended.
    const absorber = new Absorber({ sliceMs: 60_000, between: () => {
      reads++;
      seenPending.add(shard.pendingRows);
      // The rows moved last are in the graph already, not only marked so.
      const moved = count - shard.pendingRows;
      for (let p = Math.max(0, moved - 8); p < moved; p++) expect(shard.graph.contains(shard.points.slotOf(`p${p}`)!)).toBe(true);
      for (let n = 0; n < 5; n++) {
        const p = Math.floor(random() * count);
        expect(ids(shard, vectors.subarray(p * dim, (p + 1) * dim), 1)).toEqual([`p${p}`]);
      }
    } });
    absorber.wake(shard);
    await vi.waitFor(() => expect(shard.pendingRows).toBe(0), { timeout: 60_000, interval: 5 });
    expect(reads).toBeGreaterThan(100);
    // Reads saw the graph part-way: some rows still fresh, some absorbed.
    expect([...seenPending].some((pending) => pending > 0 && pending < count)).toBe(true);
  });

  it("lets one shard absorb for a turn of many slices before the next, and rotates every slice without turns", async () => {
    const random = seededRandom(12);
    const rows = 2000;
    /** Absorbs two loaded shards; returns both shards' pending rows, seen between the steps of every slice. */
    const absorbBoth = async (turnMs: number): Promise<[number, number][]> => {
      const shards = [0, 1].map(() => {
        const shard = new ShardIndex(config);
        shard.apply(entries(randomVectors(random, rows, dim), 500));
        return shard;
      });
      const seen: [number, number][] = [];
      // Slices of several steps (a step is a few rows): the look between them is taken even on a loaded machine.
      const absorber = new Absorber({ sliceMs: 5, turnMs, between: () => seen.push([shards[0]!.pendingRows, shards[1]!.pendingRows]) });
      for (const shard of shards) absorber.wake(shard);
      await vi.waitFor(() => expect(shards.every((s) => s.pendingRows === 0)).toBe(true), { timeout: 60_000, interval: 5 });
      return seen;
    };
    // Turns longer than the test: the first shard woken is drained before the second starts.
    const long = await absorbBoth(600_000);
    expect(long.some(([first, second]) => first === 0 && second > 0 && second < rows)).toBe(true);
    expect(long.filter(([first, second]) => first > 0 && second < rows)).toEqual([]);
    // No turns: the shards alternate slice by slice, both part-way at once.
    const none = await absorbBoth(0);
    expect(none.some(([first, second]) => first > 0 && first < rows && second > 0 && second < rows)).toBe(true);
  });

  it("yields to other work between slices", async () => {
    const random = seededRandom(10);
    const shard = new ShardIndex(config);
    shard.apply(entries(randomVectors(random, 3000, dim), 3000));
    const absorber = new Absorber({ sliceMs: 1 });
    absorber.wake(shard);
    // Timers run between slices: the worker's message queue does too.
    let ticks = 0;
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        ticks++;
        if (shard.pendingRows === 0) {
          clearInterval(timer);
          resolve();
        }
      }, 0);
    });
    expect(ticks).toBeGreaterThan(1);
  });
});
