import { createReadStream } from "node:fs";
import { mkdtemp, rm, readFile, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LogRecord, ShardHit, ShardIndexConfig } from "../src/actors/vector-index/api.ts";
import { ShardIndex } from "../src/actors/vector-index/shard-index.ts";
import { exactScanMax } from "../src/actors/vector-index/search-rules.ts";
import { saveSettled, saveShard } from "../src/actors/vector-index/shard-snapshot.ts";
import { compactGraph } from "../src/actors/vector-index/compaction.ts";
import { compileFilter, parseFilter } from "../src/runtime/filter.ts";
import { encodeEntry, EntryKind } from "../src/runtime/log-entry.ts";
import type { Metric, Payload, Quantization } from "../src/runtime/schemas.ts";
import { randomVectors, seededRandom } from "./support/random.ts";
import { unversioned } from "./support/points.ts";
import { versionOf } from "../src/actors/vector-index/points.ts";
import { ShardReplay } from "../src/actors/backup/replay.ts";

const indexParams = { connectivity: 16, expansionAdd: 128, expansionSearch: 64 };

function config(dimension: number, metric: Metric = "l2", quantization: Quantization = "f32"): ShardIndexConfig {
  return { dimension, metric, index: { ...indexParams, quantization } };
}

interface TestPoint {
  id: string;
  vector: ArrayLike<number>;
  payload?: Payload;
}

function upsert(seq: number, dimension: number, points: TestPoint[]): LogRecord {
  const vectors = new Float32Array(points.length * dimension);
  points.forEach((p, i) => vectors.set(p.vector, i * dimension));
  const data = encodeEntry({
    kind: EntryKind.Upsert,
    ids: points.map((p) => p.id),
    payloads: points.map((p) => p.payload ?? null),
    dimension,
    vectors,
  });
  return { seq, data };
}

function remove(seq: number, ids: string[]): LogRecord {
  return { seq, data: encodeEntry({ kind: EntryKind.Delete, ids }) };
}

/** Entries of `batch` points from a flat vector array, with payloads from `payloadOf`. */
function records(vectors: Float32Array, dimension: number, batch: number, payloadOf: (i: number) => Payload, firstSeq = 1): LogRecord[] {
  const count = vectors.length / dimension;
  const out: LogRecord[] = [];
  for (let start = 0, seq = firstSeq; start < count; start += batch, seq++) {
    const points: TestPoint[] = [];
    for (let i = start; i < Math.min(count, start + batch); i++) {
      points.push({ id: `p${i}`, vector: vectors.subarray(i * dimension, (i + 1) * dimension), payload: payloadOf(i) });
    }
    out.push(upsert(seq, dimension, points));
  }
  return out;
}

function referenceDistance(metric: Metric, a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let aa = 0;
  let bb = 0;
  let l2 = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
    l2 += (a[i]! - b[i]!) ** 2;
  }
  if (metric === "l2") return l2;
  if (metric === "ip") return 1 - dot;
  return 1 - dot / Math.sqrt(aa * bb);
}

/** Brute-force top-k over the points passing `filter`, ordered like ShardIndex (distance, then id). */
function bruteForce(
  metric: Metric,
  vectors: Float32Array,
  dimension: number,
  payloadOf: (i: number) => Payload,
  query: Float32Array,
  k: number,
  filter: unknown,
): { id: string; distance: number }[] {
  const predicate = compileFilter(parseFilter(filter));
  const all: { id: string; distance: number }[] = [];
  for (let i = 0; i < vectors.length / dimension; i++) {
    if (!predicate(payloadOf(i))) continue;
    const distance = Math.fround(referenceDistance(metric, query, vectors.subarray(i * dimension, (i + 1) * dimension)));
    all.push({ id: `p${i}`, distance });
  }
  all.sort((a, b) => a.distance - b.distance || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return all.slice(0, k);
}

function ids(hits: { id: string }[]): string[] {
  return hits.map((h) => h.id);
}

describe("ShardIndex writes", () => {
  const dim = 4;
  const a = [1, 0, 0, 0];
  const b = [0, 1, 0, 0];
  const c = [0, 0, 1, 0];

  it("upserts, replaces and deletes", () => {
    const shard = new ShardIndex(config(dim));
    expect(shard.apply([upsert(1, dim, [{ id: "a", vector: a, payload: { n: 1 } }, { id: "b", vector: b }])])).toEqual({
      appliedSeq: 1,
      count: 2,
      pendingRows: 2,
      freshBytes: 2 * dim * 4,
    });
    // Each point's version is its entry's sequence × 2^16 + its place in the entry.
    expect(shard.get(["b", "zz", "a"], true)).toEqual([
      { id: "b", vector: b, version: versionOf(1, 1) },
      { id: "a", vector: a, payload: { n: 1 }, version: versionOf(1, 0) },
    ]);

    shard.apply([upsert(2, dim, [{ id: "a", vector: c, payload: { n: 2 } }])]);
    expect(shard.count()).toBe(2);
    expect(shard.get(["a"], true)).toEqual([{ id: "a", vector: c, payload: { n: 2 }, version: versionOf(2, 0) }]);
    const hits = shard.search({ vector: new Float32Array(a), k: 10, withPayload: true, withVectors: false });
    // The replaced vector is gone from the graph: only two points, "a" now at c.
    expect(hits).toEqual([
      { id: "a", distance: 2, payload: { n: 2 } },
      { id: "b", distance: 2 },
    ]);

    expect(shard.apply([remove(3, ["a", "unknown"])])).toEqual({ appliedSeq: 3, count: 1, pendingRows: 3, freshBytes: 3 * dim * 4 });
    expect(shard.get(["a"], false)).toEqual([]);
    expect(ids(shard.search({ vector: new Float32Array(a), k: 10, withPayload: false, withVectors: false }))).toEqual(["b"]);

    // The freed slot is reused and the point is searchable again.
    shard.apply([upsert(4, dim, [{ id: "d", vector: a }])]);
    expect(shard.search({ vector: new Float32Array(a), k: 1, withPayload: false, withVectors: true })).toEqual([
      { id: "d", distance: 0, vector: a },
    ]);
  });

  it("lets a later duplicate id in one entry win", () => {
    const shard = new ShardIndex(config(dim));
    shard.apply([upsert(1, dim, [{ id: "x", vector: a, payload: { v: 1 } }, { id: "y", vector: b }, { id: "x", vector: c, payload: { v: 2 } }])]);
    expect(shard.count()).toBe(2);
    expect(unversioned(shard.get(["x"], true))).toEqual([{ id: "x", vector: c, payload: { v: 2 } }]);
    expect(shard.search({ vector: new Float32Array(a), k: 5, withPayload: false, withVectors: false })).toHaveLength(2);
  });

  it("skips records at or below the applied sequence", () => {
    const shard = new ShardIndex(config(dim));
    const batch = [upsert(1, dim, [{ id: "a", vector: a }]), upsert(2, dim, [{ id: "b", vector: b }]), remove(3, ["a"])];
    shard.apply(batch);
    const digest = shard.contentDigest();
    expect(shard.apply(batch)).toEqual({ appliedSeq: 3, count: 1, pendingRows: 2, freshBytes: 2 * dim * 4 });
    expect(shard.apply([upsert(2, dim, [{ id: "z", vector: c }])])).toEqual({ appliedSeq: 3, count: 1, pendingRows: 2, freshBytes: 2 * dim * 4 });
    expect(shard.contentDigest()).toEqual(digest);
    // A batch straddling the applied sequence applies only the new part.
    expect(shard.apply([remove(3, ["b"]), upsert(4, dim, [{ id: "c", vector: c }])])).toEqual({ appliedSeq: 4, count: 2, pendingRows: 3, freshBytes: 3 * dim * 4 });
  });

  it("skips an entry of the wrong dimension, reporting it", () => {
    const shard = new ShardIndex(config(dim));
    expect(shard.apply([upsert(1, 3, [{ id: "a", vector: [1, 2, 3] }])])).toEqual({ appliedSeq: 1, count: 0, pendingRows: 0, freshBytes: 0, rejected: [{ seq: 1, reason: `dimension 3, the shard has ${dim}` }] });
    expect(shard.count()).toBe(0);
  });

  it("decodes records that are views into a larger buffer", () => {
    const record = upsert(1, dim, [{ id: "a", vector: a }]);
    const big = new Uint8Array(record.data.byteLength + 13);
    big.set(record.data, 13);
    const shard = new ShardIndex(config(dim));
    shard.apply([{ seq: 1, data: big.subarray(13) }]);
    expect(unversioned(shard.get(["a"], true))).toEqual([{ id: "a", vector: a }]);
  });

  it("digests content only, independent of payload key order and history", () => {
    const one = new ShardIndex(config(dim));
    const two = new ShardIndex(config(dim));
    one.apply([upsert(1, dim, [{ id: "a", vector: a, payload: { x: 1, y: 2 } }, { id: "b", vector: b }])]);
    two.apply([
      upsert(5, dim, [{ id: "b", vector: c }]),
      upsert(6, dim, [{ id: "b", vector: b }, { id: "a", vector: a, payload: { y: 2, x: 1 } }]),
    ]);
    expect(two.contentDigest()).toEqual(one.contentDigest());
    two.apply([remove(7, ["a"])]);
    expect(two.contentDigest()).not.toEqual(one.contentDigest());
  });
});

describe("ShardIndex search", () => {
  const metrics: [Metric, Quantization][] = [
    ["l2", "f32"],
    ["cosine", "f32"],
    ["ip", "f32"],
    ["l2", "f16"],
    ["cosine", "i8"],
  ];
  it.each(metrics)("finds a stored vector as top-1 under %s/%s", (metric, quantization) => {
    const dim = 32;
    const count = 500;
    const random = seededRandom(7);
    const vectors = randomVectors(random, count, dim);
    // ip ranks by dot product, so only on unit vectors is a point its own nearest neighbour.
    for (let i = 0; i < count; i++) {
      const v = vectors.subarray(i * dim, (i + 1) * dim);
      const norm = Math.hypot(...v);
      for (let j = 0; j < dim; j++) v[j]! /= norm;
    }
    const shard = new ShardIndex(config(dim, metric, quantization));
    shard.apply(records(vectors, dim, 100, () => ({})));
    for (const i of [0, 123, 499]) {
      const query = vectors.slice(i * dim, (i + 1) * dim);
      const [top] = shard.search({ vector: query, k: 3, withPayload: false, withVectors: false });
      expect(top?.id).toBe(`p${i}`);
      expect(top?.distance).toBeCloseTo(0, quantization === "f32" ? 5 : 2);
    }
  });

  it.each(["l2", "cosine", "ip"] as const)("reports usearch distances for %s equal to exact ones", (metric) => {
    const dim = 24;
    const random = seededRandom(11);
    const vectors = randomVectors(random, 300, dim);
    const shard = new ShardIndex(config(dim, metric));
    shard.apply(records(vectors, dim, 300, (i) => ({ i })));
    const query = randomVectors(random, 1, dim);
    const graph = shard.search({ vector: query, k: 10, withPayload: false, withVectors: false });
    // Filter matching every point but given explicitly: the exact scan path (300 <= exactScanMax).
    const exact = shard.search({ vector: query, k: 10, filter: parseFilter({ i: { $gte: 0 } }), withPayload: false, withVectors: false });
    expect(ids(exact)).toEqual(ids(graph));
    exact.forEach((hit, n) => expect(hit.distance).toBeCloseTo(graph[n]!.distance, 4));
  });

  describe("filtered search against brute force", () => {
    const dim = 16;
    const count = 6000;
    const random = seededRandom(42);
    const vectors = randomVectors(random, count, dim);
    const payloadOf = (i: number): Payload => ({
      group: i % 100,
      bucket: i % 3,
      tag: i % 2 === 0 ? "even" : "odd",
      side: vectors[i * dim]! > 0.3 ? "right" : "left",
    });
    const shard = new ShardIndex(config(dim, "l2"));
    shard.apply(records(vectors, dim, 1000, payloadOf));
    const defaultQueries = Array.from({ length: 20 }, () => randomVectors(random, 1, dim));

    function check(filter: unknown, k: number, recallMin: number, queries = defaultQueries): void {
      const parsed = parseFilter(filter);
      const predicate = compileFilter(parsed);
      let found = 0;
      let expectedTotal = 0;
      for (const query of queries) {
        const hits: ShardHit[] = shard.search({ vector: query, k, filter: parsed, withPayload: true, withVectors: false });
        const expected = bruteForce("l2", vectors, dim, payloadOf, query, k, filter);
        expect(hits).toHaveLength(expected.length);
        for (const hit of hits) expect(predicate(hit.payload)).toBe(true);
        const distances = hits.map((h) => h.distance);
        expect(distances).toEqual([...distances].sort((x, y) => x - y));
        const truth = new Map(expected.map((e) => [e.id, e.distance]));
        for (const hit of hits) {
          if (truth.has(hit.id)) {
            found++;
            expect(hit.distance).toBeCloseTo(truth.get(hit.id)!, 4);
          }
        }
        expectedTotal += expected.length;
      }
      expect(found / expectedTotal).toBeGreaterThanOrEqual(recallMin);
    }

    it("is exact when few points match", () => {
      check({ group: 7 }, 10, 1);
      check({ $or: [{ group: { $lt: 10 } }, { tag: "none" }] }, 25, 1);
    });

    it("returns every match when fewer than k match", () => {
      check({ group: 7 }, 100, 1);
    });

    it("oversamples the graph when many points match", () => {
      const matching = shard.count(parseFilter({ bucket: { $in: [0, 1] } }));
      expect(matching).toBeGreaterThan(exactScanMax);
      check({ bucket: { $in: [0, 1] } }, 10, 0.95);
      check({ tag: "even" }, 50, 0.95);
    });

    it("widens the oversampling when the matches lie far from the query", () => {
      expect(shard.count(parseFilter({ side: "right" }))).toBeGreaterThan(exactScanMax);
      const leftQueries = defaultQueries.map((q) => {
        const moved = q.slice();
        moved[0] = -1;
        return moved;
      });
      check({ side: "right" }, 10, 0.9, leftQueries);
    });

    it("counts with a filter", () => {
      expect(shard.count()).toBe(count);
      expect(shard.count(parseFilter({ group: 7 }))).toBe(60);
      expect(shard.count(parseFilter({ bucket: { $ne: 0 } }))).toBe(4000);
      expect(shard.count(parseFilter({ missing: 1 }))).toBe(0);
      expect(shard.search({ vector: defaultQueries[0]!, k: 5, filter: parseFilter({ missing: 1 }), withPayload: false, withVectors: false })).toEqual([]);
    });
  });
});

describe("ShardIndex snapshots", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "jade-shard-index-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("round-trips through save and load", async () => {
    const dim = 32;
    const random = seededRandom(3);
    const vectors = randomVectors(random, 3000, dim);
    const payloadOf = (i: number): Payload => ({ i, kind: i % 5 === 0 ? "five" : "other", nested: { deep: [i] } });
    const cfg = config(dim, "cosine", "f16");
    const original = new ShardIndex(cfg);
    const log = records(vectors, dim, 500, payloadOf);
    original.apply(log);
    original.apply([remove(log.length + 1, ["p1", "p2", "p3"])]);

    const file = path.join(dir, "shard.snap");
    const saved = await original.save(file);
    expect(saved.appliedSeq).toBe(log.length + 1);
    // Nothing was absorbed (no absorb call): every point is left for the load to index.
    expect(saved).toMatchObject({ points: 2997, unabsorbed: 2997 });
    expect(saved.bytes).toBe((await readFile(file)).byteLength);

    const loaded = await ShardIndex.load(cfg, file);
    expect(loaded.contentDigest()).toEqual(original.contentDigest());
    expect(loaded.stats().count).toBe(2997);
    expect(loaded.stats().appliedSeq).toBe(log.length + 1);
    const queries = Array.from({ length: 10 }, () => randomVectors(random, 1, dim));
    const filter = parseFilter({ kind: "five" });
    for (const query of queries) {
      for (const request of [
        { vector: query, k: 10, withPayload: true, withVectors: true },
        { vector: query, k: 10, filter, withPayload: false, withVectors: false },
      ]) {
        expect(loaded.search(request)).toEqual(original.search(request));
      }
    }

    // Later entries behave identically on both: replacing an id removes its old key.
    const more = [
      upsert(log.length + 2, dim, [{ id: "p10", vector: vectors.subarray(0, dim) }, { id: "new", vector: vectors.subarray(dim, 2 * dim) }]),
      remove(log.length + 3, ["p20"]),
    ];
    original.apply(more);
    loaded.apply(more);
    expect(loaded.count()).toBe(2997);
    expect(loaded.contentDigest()).toEqual(original.contentDigest());
    for (const query of queries) {
      const request = { vector: query, k: 20, withPayload: false, withVectors: false };
      expect(loaded.search(request)).toEqual(original.search(request));
    }
    expect(loaded.search({ vector: vectors.slice(0, dim), k: 2, withPayload: false, withVectors: false }).map((h) => h.id).sort()).toEqual([
      "p0",
      "p10",
    ]);
  });

  it("saves the state of the moment save was called, and holds applies back until its vectors are written", async () => {
    const cfg = config(8);
    const shard = new ShardIndex(cfg);
    shard.apply([upsert(1, 8, [{ id: "a", vector: [1, 2, 3, 4, 5, 6, 7, 8] }])]);
    const before = shard.contentDigest();
    const file = path.join(dir, "moving.snap");
    const saving = shard.save(file);
    // The vectors are streamed from the live arena: applies must wait (the worker does).
    expect(saveSettled(shard)).toBeDefined();
    await saveSettled(shard);
    expect(saveSettled(shard)).toBeUndefined();
    shard.apply([upsert(2, 8, [{ id: "a", vector: [8, 7, 6, 5, 4, 3, 2, 1] }, { id: "b", vector: [1, 1, 1, 1, 1, 1, 1, 1] }])]);
    expect((await saving).appliedSeq).toBe(1);
    const loaded = await ShardIndex.load(cfg, file);
    expect(loaded.contentDigest()).toEqual(before);
    expect(unversioned(loaded.get(["a"], true))).toEqual([{ id: "a", vector: [1, 2, 3, 4, 5, 6, 7, 8] }]);
  });

  it("lets a record that only adds points apply while a save runs: the snapshot is still the moment save was called", async () => {
    const cfg = config(8);
    const shard = new ShardIndex(cfg);
    const point = (id: string, v: number) => ({ id, vector: Array.from({ length: 8 }, (_, j) => v + j) });
    shard.apply([upsert(1, 8, Array.from({ length: 50 }, (_, i) => point(`p${i}`, i)))]);
    shard.apply([remove(2, ["p7"])]);
    const before = shard.contentDigest();
    const saving = shard.save(path.join(dir, "adding.snap"));
    expect(saveSettled(shard)).toBeDefined();
    // New ids, one of them in the slot p7 freed: they may go in now.
    const adding = upsert(3, 8, [point("n1", 100), point("n2", 101)]);
    expect(shard.addsOnly(adding)).toBe(true);
    expect(shard.addsOnly(upsert(3, 8, [point("n3", 102), point("p1", 103)]))).toBe(false);
    expect(shard.addsOnly(remove(3, ["n9"]))).toBe(false);
    expect(shard.addsOnly(upsert(2, 8, [point("p1", 104)]))).toBe(true); // applied already: skipped
    shard.apply([adding]);
    expect(saveSettled(shard)).toBeDefined();
    const saved = await saving;
    expect({ appliedSeq: saved.appliedSeq, points: saved.points }).toEqual({ appliedSeq: 2, points: 49 });
    const loaded = await ShardIndex.load(cfg, path.join(dir, "adding.snap"));
    expect(loaded.contentDigest()).toEqual(before);
    expect(loaded.get(["n1", "n2"], false)).toEqual([]);
    // The shard itself goes on with them, and a replay from the snapshot reaches the same state.
    loaded.apply([adding]);
    expect(loaded.contentDigest()).toEqual(shard.contentDigest());
  });

  it("stores only the live points' vectors; a version 2 file (every slot) still loads, and a backup's replay of either reads the same points", async () => {
    const dim = 16;
    const random = seededRandom(8);
    const vectors = randomVectors(random, 2000, dim);
    const cfg = config(dim);
    const full = new ShardIndex(cfg);
    const log = records(vectors, dim, 500, (i) => ({ i }));
    full.apply(log);
    const fullFile = path.join(dir, "full.snap");
    const fullBytes = (await full.save(fullFile)).bytes;

    // Half deleted, in scattered runs: the vector section shrinks by their rows.
    const sparse = new ShardIndex(cfg);
    sparse.apply(log);
    const gone = Array.from({ length: 1000 }, (_, i) => `p${2 * i + (i % 3 === 0 ? 1 : 0)}`);
    sparse.apply([remove(log.length + 1, gone)]);
    const sparseFile = path.join(dir, "sparse.snap");
    const sparseBytes = (await sparse.save(sparseFile)).bytes;
    expect(fullBytes - sparseBytes).toBeGreaterThanOrEqual(1000 * dim * 4);
    const loaded = await ShardIndex.load(cfg, sparseFile);
    expect(loaded.contentDigest()).toEqual(sparse.contentDigest());
    const ids = Array.from({ length: 2000 }, (_, i) => `p${i}`);
    expect(loaded.get(ids, true)).toEqual(sparse.get(ids, true));
    // The backup's digest pass streams the file rather than loading it (scanSnapshotPoints).
    const replayed = async (file: string) => {
      const replay = new ShardReplay(cfg);
      await replay.loadSnapshot(createReadStream(file, { highWaterMark: 4_099 }), file);
      return replay.digest();
    };
    expect(await replayed(sparseFile)).toEqual(sparse.contentDigest());

    // With every slot live, versions 2 and 3 write the same body: the header's version is all that differs.
    const v2 = await readFile(fullFile);
    v2.writeUInt32LE(2, 8);
    const v2File = path.join(dir, "v2.snap");
    await writeFile(v2File, v2);
    expect((await ShardIndex.load(cfg, v2File)).contentDigest()).toEqual(full.contentDigest());
    expect(await replayed(v2File)).toEqual(full.contentDigest());
    v2.writeUInt32LE(9, 8);
    await writeFile(v2File, v2);
    await expect(ShardIndex.load(cfg, v2File)).rejects.toThrow(/format version 9/);
  });

  it("saves and loads an empty shard", async () => {
    const file = path.join(dir, "empty.snap");
    await new ShardIndex(config(8)).save(file);
    const loaded = await ShardIndex.load(config(8), file);
    expect(loaded.stats()).toMatchObject({ count: 0, appliedSeq: 0 });
    loaded.apply([upsert(1, 8, [{ id: "a", vector: [1, 2, 3, 4, 5, 6, 7, 8] }])]);
    expect(unversioned(loaded.get(["a"], false))).toEqual([{ id: "a" }]);
  });

  it("refuses a snapshot of another shape or a corrupted file", async () => {
    const file = path.join(dir, "small.snap");
    const shard = new ShardIndex(config(4));
    shard.apply([upsert(1, 4, [{ id: "a", vector: [1, 0, 0, 0] }])]);
    await shard.save(file);
    await expect(ShardIndex.load(config(4, "ip"), file)).rejects.toThrow(/expected 4\/ip\/f32/);
    const bytes = await readFile(file);
    bytes[bytes.byteLength - 1]! ^= 0xff;
    await writeFile(file, bytes);
    await expect(ShardIndex.load(config(4), file)).rejects.toThrow(/checksum/);
    await writeFile(file, bytes.subarray(0, bytes.byteLength - 10));
    await expect(ShardIndex.load(config(4), file)).rejects.toThrow(/bytes/);
  });
});

describe("ShardIndex graph compaction", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "jade-compaction-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const dim = 16;
  const cfg = config(dim);

  function absorbAll(shard: ShardIndex): void {
    while (shard.absorb(performance.now() + 1_000)) {
      // until the fresh buffer is empty
    }
  }

  /** Slots whose current vector is in the graph. */
  function inGraphCount(shard: ShardIndex): number {
    let n = 0;
    for (let slot = 0; slot < shard.points.slotCount; slot++) n += shard.points.inGraph[slot]!;
    return n;
  }

  /** Share of the live points the graph alone finds as their own nearest neighbour. */
  function selfRecall(shard: ShardIndex): number {
    let found = 0;
    let total = 0;
    for (let slot = 0; slot < shard.points.slotCount; slot++) {
      if (shard.points.inGraph[slot] !== 1) continue;
      total++;
      const { keys } = shard.graph.search(shard.points.vector(slot).slice(), 1);
      if (Number(keys[0]) === slot) found++;
    }
    return found / total;
  }

  function churned(count: number, seed: number): { shard: ShardIndex; vectors: Float32Array; log: LogRecord[] } {
    const vectors = randomVectors(seededRandom(seed), count, dim);
    const shard = new ShardIndex(cfg);
    const log = records(vectors, dim, 500, (i) => ({ i }));
    shard.apply(log);
    absorbAll(shard);
    return { shard, vectors, log };
  }

  it("a save after deleting half rebuilds the graph from the live points: its file holds no removed node, answers are unchanged", async () => {
    const { shard, vectors, log } = churned(4_000, 11);
    const full = await shard.save(path.join(dir, "full.snap"));
    expect(full).toMatchObject({ points: 4_000, unabsorbed: 0, compactionMs: 0 });
    const fullBytes = full.bytes;
    const gone = Array.from({ length: 2_000 }, (_, i) => `p${2 * i}`);
    shard.apply([remove(log.length + 1, gone)]);
    expect(shard.graph.removed).toBe(2_000);
    const queries = Array.from({ length: 20 }, (_, q) => vectors.slice(q * dim, (q + 1) * dim));
    const before = queries.map((vector) => shard.search({ vector, k: 10, withPayload: true, withVectors: false }));

    const saved = await shard.save(path.join(dir, "compacted.snap"));
    // The rebuild's time is reported apart: the replica's next save does not wait for it (saving.ts).
    expect(saved.compactionMs).toBeGreaterThan(0);
    expect(shard.graph.removed).toBe(0);
    expect(shard.graph.size).toBe(2_000);
    // Our vectors of the 2,000 deleted points and usearch's nodes of them are gone: about half the file.
    expect(saved.bytes).toBeLessThan(0.55 * fullBytes);
    expect(selfRecall(shard)).toBeGreaterThan(0.99);
    const after = queries.map((vector) => shard.search({ vector, k: 10, withPayload: true, withVectors: false }));
    expect(after.flat().length).toBe(before.flat().length);
    let same = 0;
    after.forEach((hits, q) => (same += hits.filter((h) => before[q]!.some((b) => b.id === h.id && b.distance === h.distance)).length));
    expect(same / after.flat().length).toBeGreaterThan(0.95);

    const loaded = await ShardIndex.load(cfg, path.join(dir, "compacted.snap"));
    expect(loaded.graph.removed).toBe(0);
    expect(loaded.contentDigest()).toEqual(shard.contentDigest());
  });

  it("a few removed nodes are not worth a rebuild; a loaded graph knows how many it holds", async () => {
    const { shard, log } = churned(4_000, 12);
    shard.apply([remove(log.length + 1, Array.from({ length: 500 }, (_, i) => `p${3 * i}`))]);
    const graph = shard.graph;
    await shard.save(path.join(dir, "few.snap"));
    expect(shard.graph).toBe(graph);
    expect(shard.graph.removed).toBe(500);
    expect((await ShardIndex.load(cfg, path.join(dir, "few.snap"))).graph.removed).toBe(500);
    // An overwrite removes the old vector and its absorption reuses the node: no growth.
    shard.apply([upsert(log.length + 2, dim, Array.from({ length: 300 }, (_, i) => ({ id: `p${3 * i + 1}`, vector: new Float32Array(dim).fill(i) })))]);
    expect(shard.graph.removed).toBe(800);
    absorbAll(shard);
    expect(shard.graph.removed).toBe(500);
  });

  it("writes applied between its slices end up in the new graph: upserts, overwrites, deletes, absorptions", async () => {
    const { shard, vectors, log } = churned(4_000, 13);
    let seq = log.length;
    shard.apply([remove(++seq, Array.from({ length: 2_000 }, (_, i) => `p${2 * i}`))]);
    const random = seededRandom(14);
    // The absorber's share of each second round (steps of 4 rows) comes from a seed, not the clock:
    // the run is the same on any machine, with or without load (see the orphan below).
    const absorbSteps = seededRandom(1004);
    const compaction = compactGraph(shard, { sliceMs: 0 });
    expect(compaction).toBeDefined();
    let done = false;
    void compaction!.finally(() => (done = true));
    let rounds = 0;
    const latest = new Map<string, Float32Array>();
    while (!done) {
      rounds++;
      const fresh = randomVectors(random, 20, dim);
      const points = Array.from({ length: 20 }, (_, i) => ({ id: i % 2 === 0 ? `p${(rounds * 40 + i * 2 + 1) % 4_000}` : `new-${rounds}-${i}`, vector: fresh.subarray(i * dim, (i + 1) * dim) }));
      shard.apply([upsert(++seq, dim, points), remove(++seq, [`p${(rounds * 40 + 3) % 4_000}`, `new-${rounds - 1}-1`])]);
      for (const p of points) latest.set(p.id, p.vector.slice());
      latest.delete(`p${(rounds * 40 + 3) % 4_000}`);
      latest.delete(`new-${rounds - 1}-1`);
      if (rounds % 2 === 0) for (let steps = 1 + Math.floor(absorbSteps() * 14); steps > 0; steps--) shard.absorb(0);
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(await compaction).toBe(true);
    expect(rounds).toBeGreaterThan(3);
    // The new graph holds exactly the slots the points table says are in it, each under its current vector.
    expect(shard.graph.size).toBe(inGraphCount(shard));
    expect(selfRecall(shard)).toBeGreaterThan(0.99);
    absorbAll(shard);
    expect(shard.graph.size).toBe(shard.size);
    expect(selfRecall(shard)).toBeGreaterThan(0.99);
    // Every point written meanwhile is in the graph (exact: usearch's own membership), under its latest
    // vector: a search of that vector finds it at distance 0. HNSW is approximate, and a node usearch
    // re-used for an add (it puts a new row in a removed node, keeping the node's level and the old
    // neighbours' links) can end up with no neighbour linking back: this run leaves new-223-3 so (the
    // new graph's only one in 5,609; a graph built from the same points had none). ef=64 searches at
    // any k up to 50 miss it; a search as wide as the graph finds it first, at distance 0. So a point
    // the narrow search misses is looked for that wide: a stale vector still fails (found at its old
    // distance, or not at all).
    for (const [id, vector] of latest) {
      const slot = shard.points.slotOf(id);
      if (slot === undefined) continue;
      expect(shard.graph.contains(slot), `${id} in the graph`).toBe(true);
      const narrow = shard.search({ vector, k: 10, withPayload: false, withVectors: false }).find((h) => h.id === id);
      if (narrow !== undefined) {
        expect(narrow.distance, id).toBe(0);
        continue;
      }
      const wide = shard.graph.search(vector.slice(), shard.graph.size); 
      const at = Array.from(wide.keys, Number).indexOf(slot);
      expect(at, `${id} found by a search as wide as the graph`).toBeGreaterThanOrEqual(0);
      expect(wide.distances[at], id).toBe(0);
    }
    expect(vectors.length).toBe(4_000 * dim);
  });

  it("a snapshot whose graph holds more removed nodes than live ones loads whole: nothing left to absorb", async () => {
    const { shard, log } = churned(300, 16);
    shard.apply([remove(log.length + 1, Array.from({ length: 200 }, (_, i) => `p${i}`))]);
    expect(shard.graph.removed).toBe(200);
    // Written without the save's compaction (too few removed nodes for one): the graph keeps them.
    const file = path.join(dir, "churned.snap");
    await saveShard(shard, file);
    const loaded = await ShardIndex.load(cfg, file);
    expect({ size: loaded.graph.size, removed: loaded.graph.removed, pending: loaded.pendingRows }).toEqual({ size: 100, removed: 200, pending: 0 });
    expect(loaded.contentDigest()).toEqual(shard.contentDigest());
    expect(selfRecall(loaded)).toBe(1);
  });

  it("stops when its shard is closed", async () => {
    const { shard, log } = churned(4_000, 15);
    shard.apply([remove(log.length + 1, Array.from({ length: 2_000 }, (_, i) => `p${2 * i}`))]);
    const graph = shard.graph;
    const compaction = compactGraph(shard, { sliceMs: 0 });
    shard.close();
    expect(await compaction).toBe(false);
    expect(shard.graph).toBe(graph);
  });
});
