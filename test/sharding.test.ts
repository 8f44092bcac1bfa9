/**
 * Sharding strategies, pure: distribution (hash, range), k-means and vector
 * placement, the auto rule, create-request validation, and the log entry's
 * `deleteIds` as a shard applies it.
 */
import fc from "fast-check";
import { Packr } from "msgpackr";
import murmur from "murmurhash3js-revisited";
import { describe, expect, it } from "vitest";
import { ShardIndex } from "../src/actors/vector-index/shard-index.ts";
import { JadeError } from "../src/runtime/errors.ts";
import { decodeEntry, encodeEntry, EntryKind, type UpsertEntry } from "../src/runtime/log-entry.ts";
import { parse } from "../src/runtime/checks.ts";
import {
  CollectionConfig,
  CreateCollectionRequest,
  SearchRequest,
  type CreateCollectionRequest as CreateRequest,
  type Metric,
} from "../src/runtime/schemas.ts";
import { kmeans } from "../src/runtime/sharding/kmeans.ts";
import { rangeShardOf } from "../src/runtime/sharding/range.ts";
import { planSharding, resolveSharding, trainingSet } from "../src/runtime/sharding/index.ts";
import { seededRandom } from "./support/random.ts";
import { unversioned } from "./support/points.ts";

/** A stored config the way the catalog builds it: parse the request, plan the sharding. */
function configOf(request: Partial<CreateRequest>): CollectionConfig {
  const parsed = parse(CreateCollectionRequest, { name: "c", dimension: 4, metric: "l2", ...request });
  const { sharding, splitPoints, sample, centroids, ...rest } = parsed;
  const plan = planSharding({ ...rest, sharding, splitPoints, sample, centroids });
  return CollectionConfig.parse({ ...rest, ...plan, createdAt: new Date(0).toISOString(), uid: "u" });
}

function invalid(schema: typeof CreateCollectionRequest | typeof SearchRequest, raw: unknown): JadeError {
  try {
    parse(schema, raw);
  } catch (err) {
    if (err instanceof JadeError) return err;
    throw err;
  }
  throw new Error("expected invalid_argument");
}

function gaussian(random: () => number): number {
  const u = Math.max(random(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

/** `perCluster` points around each of `clusters` well separated centres (centre c is 10 × e_c, plus an offset). */
function clustered(seed: number, clusters: number, perCluster: number, dimension: number, noise = 0.5) {
  const random = seededRandom(seed);
  const centres = Array.from({ length: clusters }, (_, c) =>
    Array.from({ length: dimension }, (_, j) => (j === c % dimension ? 10 : 0) + (c >= dimension ? -10 : 0)),
  );
  const points: { cluster: number; vector: number[] }[] = [];
  for (let i = 0; i < perCluster; i++) {
    for (let c = 0; c < clusters; c++) {
      points.push({ cluster: c, vector: centres[c]!.map((x) => x + noise * gaussian(random)) });
    }
  }
  return { centres, points };
}

function nearestBruteForce(centroids: number[][], v: number[], metric: Metric): number {
  let best = 0;
  let bestScore = Infinity;
  centroids.forEach((c, i) => {
    let score = 0;
    if (metric === "l2") for (let j = 0; j < v.length; j++) score += (v[j]! - c[j]!) ** 2;
    else {
      const norm = Math.hypot(...c);
      for (let j = 0; j < v.length; j++) score -= (v[j]! * c[j]!) / norm;
    }
    if (score < bestScore) [best, bestScore] = [i, score];
  });
  return best;
}

describe("hash", () => {
  it("spreads 10k random ids over every shard within ±15% of the mean", () => {
    const random = seededRandom(1);
    for (const shards of [2, 4, 8, 16]) {
      const strategy = resolveSharding(configOf({ shards }));
      const counts = new Array<number>(shards).fill(0);
      for (let i = 0; i < 10_000; i++) {
        const id = `doc-${Math.floor(random() * 1e12).toString(36)}-${i}`;
        counts[strategy.shardOf(id, [], 0)]!++;
      }
      const mean = 10_000 / shards;
      for (const count of counts) expect(Math.abs(count - mean) / mean).toBeLessThanOrEqual(0.15);
    }
  });

  it("hashes an id's UTF-8 bytes (murmur3 x86 32-bit, seed 0): placements written before stay where they are", () => {
    const strategy = resolveSharding(configOf({ shards: 16 }));
    // murmur3 of each id's UTF-8 bytes, modulo 16; "é" × 200 is 400 bytes, over an id's 256.
    const pinned: [string, number][] = [["a", 2], ["doc-42", 15], ["żółw", 0], ["🦀-7", 4], ["x".repeat(256), 2], ["é".repeat(200), 14]];
    for (const [id, shard] of pinned) expect(strategy.shardOf(id, [], 0)).toBe(shard);
    const encoder = new TextEncoder();
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", maxLength: 300 }), (id) => {
        expect(strategy.shardOf(id, [], 0)).toBe(murmur.x86.hash32(encoder.encode(id), 0) % 16);
      }),
      { numRuns: 500 },
    );
  });

  it("is id-stable: one shard per id, every shard searched", () => {
    const strategy = resolveSharding(configOf({ shards: 4 }));
    expect(strategy.idStable).toBe(true);
    expect(strategy.shardsForId("x")).toEqual([strategy.shardOf("x", [9, 9, 9, 9], 0)]);
    expect(strategy.searchShards([0, 0, 0, 0], 1)).toEqual([0, 1, 2, 3]);
  });
});

describe("range", () => {
  const config = configOf({ shards: 3, sharding: "range", splitPoints: ["g", "p"] });
  const strategy = resolveSharding(config);

  it("sends an id to the number of split points ≤ it; a split point itself starts the next range", () => {
    const cases: [string, number][] = [
      ["a", 0],
      ["fzzz", 0],
      ["G", 0], // uppercase sorts before lowercase (UTF-16 order)
      ["g", 1],
      ["g0", 1],
      ["ozz", 1],
      ["p", 2],
      ["zzz", 2],
      ["~", 2],
    ];
    for (const [id, shard] of cases) expect([id, strategy.shardOf(id, [], 0)]).toEqual([id, shard]);
    expect(strategy.shardsForId("h")).toEqual([1]);
    expect(strategy.idStable).toBe(true);
    expect(strategy.searchShards([0, 0, 0, 0], 1)).toEqual([0, 1, 2]);
  });

  it("matches a linear scan on many split points and ids", () => {
    const random = seededRandom(2);
    const splits = [...new Set(Array.from({ length: 40 }, () => Math.floor(random() * 1e6).toString(36)))].sort();
    for (let i = 0; i < 2_000; i++) {
      const id = i % 10 === 0 ? splits[i % splits.length]! : Math.floor(random() * 1e6).toString(36);
      expect(rangeShardOf(splits, id)).toBe(splits.filter((s) => s <= id).length);
    }
  });

  it("puts contiguous id ranges on their shards with exact counts", () => {
    const ids = Array.from({ length: 1_000 }, (_, i) => `id-${String(i).padStart(4, "0")}`);
    const strategy = resolveSharding(configOf({ shards: 4, sharding: "range", splitPoints: ["id-0250", "id-0500", "id-0900"] }));
    const counts = [0, 0, 0, 0];
    for (const id of ids) counts[strategy.shardOf(id, [], 0)]!++;
    expect(counts).toEqual([250, 250, 400, 100]);
  });

  it("stores the split points in the config", () => {
    expect(config).toMatchObject({ sharding: "range", splitPoints: ["g", "p"] });
    expect(config.shardingRequested).toBeUndefined();
  });
});

describe("create request validation", () => {
  const base = { name: "c", dimension: 2, metric: "l2" };
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ["range without split points", { sharding: "range", shards: 3 }, /^splitPoints: is required with sharding range/],
    ["too few split points", { sharding: "range", shards: 3, splitPoints: ["m"] }, /^splitPoints: must hold shards − 1 = 2 ids, got 1/],
    ["decreasing split points", { sharding: "range", shards: 3, splitPoints: ["m", "c"] }, /^splitPoints\[1\]: must be strictly increasing/],
    ["equal split points", { sharding: "range", shards: 3, splitPoints: ["m", "m"] }, /^splitPoints\[1\]: must be strictly increasing/],
    ["empty split point", { sharding: "range", shards: 2, splitPoints: [""] }, /^splitPoints\[0\]: must be a non-empty string/],
    ["split points with hash", { shards: 2, splitPoints: ["m"] }, /^splitPoints: is only valid with sharding range/],
    ["sample with hash", { shards: 2, sample: [[1, 2], [3, 4]] }, /^sample: is only valid with sharding vector or auto/],
    ["centroids with range", { sharding: "range", shards: 2, splitPoints: ["m"], centroids: [[1, 2], [3, 4]] }, /^centroids: is only valid/],
    ["vector without sample or centroids", { sharding: "vector", shards: 2 }, /^sample: sharding vector needs a sample .* or centroids/],
    ["sample and centroids", { sharding: "vector", shards: 2, sample: [[1, 2], [3, 4]], centroids: [[1, 2], [3, 4]] }, /not both/],
    ["sample of the wrong dimension", { sharding: "vector", shards: 2, sample: [[1, 2], [3, 4, 5]] }, /^sample\[1\]: expected dimension 2, got 3/],
    ["sample smaller than shards", { sharding: "vector", shards: 3, sample: [[1, 2], [3, 4]] }, /^sample: must hold at least shards = 3 vectors, got 2/],
    ["non-finite sample values", { sharding: "vector", shards: 1, sample: [[1, null]] }, /^sample\[0\]\[1\]: must be a number, got null/],
    ["too few centroids", { sharding: "vector", shards: 3, centroids: [[1, 2], [3, 4]] }, /^centroids: must hold exactly shards = 3 vectors, got 2/],
    ["null sample vector", { sharding: "auto", shards: 2, sample: [[1, 2], null, [3, 4]] }, /^sample\[1\]: must be an array of numbers, got null/],
    ["centroid that is not a vector", { sharding: "vector", shards: 2, centroids: [[1, 2], "x"] }, /^centroids\[1\]: must be an array of numbers/],
    ["centroid of the wrong dimension", { sharding: "vector", shards: 2, centroids: [[1, 2], [3]] }, /^centroids\[1\]: expected dimension 2, got 1/],
    ["zero centroid with cosine", { metric: "cosine", sharding: "vector", shards: 2, centroids: [[1, 2], [0, 0]] }, /^centroids\[1\]: is a zero vector, which has no direction \(metric cosine\)/],
    ["unknown strategy", { sharding: "random" }, /^sharding: /],
  ];
  it.each(cases)("rejects %s", (_, fields, message) => {
    const err = invalid(CreateCollectionRequest, { ...base, ...fields });
    expect(err.code).toBe("invalid_argument");
    expect(err.message).toMatch(message);
  });

  it("bounds the sample by vectors × dimension", () => {
    const sample = Array.from({ length: 300 }, () => new Array<number>(4_000).fill(1));
    const err = invalid(CreateCollectionRequest, { name: "c", dimension: 4_000, metric: "l2", shards: 2, sharding: "vector", sample });
    expect(err.message).toMatch(/^sample: holds 1200000 numbers .* at most 1000000/);
  });

  it("accepts nprobe from 1 to shardsMax on searches", () => {
    expect(parse(SearchRequest, { vector: [1], k: 1, nprobe: 2 }).nprobe).toBe(2);
    expect(parse(SearchRequest, { vector: [1], k: 1 }).nprobe).toBeUndefined();
    expect(invalid(SearchRequest, { vector: [1], k: 1, nprobe: 0 }).message).toMatch(/^nprobe: must be at least 1/);
    expect(invalid(SearchRequest, { vector: [1], k: 1, nprobe: 1.5 }).message).toMatch(/^nprobe: /);
    expect(invalid(SearchRequest, { vector: [1], k: 1, nprobe: 65 }).message).toMatch(/^nprobe: must be at most 64/);
  });
});

describe("k-means", () => {
  it("recovers well separated clusters: each true cluster maps to one centroid of its own", () => {
    const { centres, points } = clustered(3, 6, 200, 8);
    const result = kmeans(
      points.map((p) => p.vector),
      { k: 6, metric: "l2" },
    );
    const clusterToCentroid = new Map<number, Set<number>>();
    points.forEach((p, i) => {
      const set = clusterToCentroid.get(p.cluster) ?? new Set<number>();
      set.add(result.assignments[i]!);
      clusterToCentroid.set(p.cluster, set);
    });
    const mapped = [...clusterToCentroid.values()].map((set) => {
      expect(set.size).toBe(1);
      return [...set][0]!;
    });
    expect(new Set(mapped).size).toBe(6);
    // Each centroid sits near its cluster's centre.
    centres.forEach((centre, c) => {
      const centroid = result.centroids[mapped[c]!]!;
      expect(Math.hypot(...centre.map((x, j) => x - centroid[j]!))).toBeLessThan(0.5);
    });
  });

  it("is deterministic for a given sample (and the seed matters)", () => {
    const sample = clustered(4, 5, 50, 6, 3).points.map((p) => p.vector);
    const a = kmeans(sample, { k: 5, metric: "l2" });
    const b = kmeans(sample, { k: 5, metric: "l2" });
    expect(b.centroids).toEqual(a.centroids);
    expect(Array.from(b.assignments)).toEqual(Array.from(a.assignments));
    // Uniform noise has no true clusters, so different seeds settle differently.
    const random = seededRandom(9);
    const noise = Array.from({ length: 400 }, () => Array.from({ length: 4 }, () => random()));
    expect(kmeans(noise, { k: 8, metric: "l2", seed: 1 }).centroids).not.toEqual(kmeans(noise, { k: 8, metric: "l2", seed: 2 }).centroids);
  });

  it("clusters by direction for cosine and ip, with unit centroids", () => {
    // Two directions, at very different lengths: l2 would split by length, cosine must split by direction.
    const random = seededRandom(5);
    const sample: number[][] = [];
    const truth: number[] = [];
    for (let i = 0; i < 200; i++) {
      const scale = i % 2 === 0 ? 1 : 100;
      const dir = i % 4 < 2 ? 0 : 1;
      const angle = (dir === 0 ? 0 : Math.PI / 2) + 0.1 * gaussian(random);
      sample.push([scale * Math.cos(angle), scale * Math.sin(angle)]);
      truth.push(dir);
    }
    for (const metric of ["cosine", "ip"] as const) {
      const { centroids, assignments } = kmeans(sample, { k: 2, metric });
      for (const c of centroids) expect(Math.hypot(...c)).toBeCloseTo(1, 9);
      const of = (dir: number) => new Set(truth.flatMap((t, i) => (t === dir ? [assignments[i]!] : [])));
      expect(of(0).size).toBe(1);
      expect(of(1).size).toBe(1);
      expect([...of(0)][0]).not.toBe([...of(1)][0]);
    }
  });

  it("re-seeds empty clusters and copes with duplicate points", () => {
    const sample = [...new Array<number[]>(10).fill([1, 1]), [5, 5], [9, 9]];
    const { centroids, assignments } = kmeans(sample, { k: 3, metric: "l2" });
    expect(new Set(assignments).size).toBe(3);
    expect(centroids.map((c) => c[0]).sort((a, b) => a! - b!)).toEqual([1, 5, 9]);
    // Fewer distinct points than k: still k centroids, nothing thrown.
    expect(kmeans(new Array<number[]>(5).fill([2, 2]), { k: 3, metric: "l2" }).centroids).toHaveLength(3);
  });

  it("trains on an evenly strided subset when the sample exceeds the work bound", () => {
    const sample = Array.from({ length: 10_000 }, (_, i) => i);
    expect(trainingSet(sample, 4, 128)).toHaveLength(10_000); // 8M / (4 × 128) = 15,625 ≥ 10,000
    const strided = trainingSet(sample, 8, 768); // 8M / (8 × 768) = 1,302
    expect(strided).toHaveLength(1_302);
    expect(strided[0]).toBe(0);
    expect(strided.at(-1)).toBeGreaterThan(9_990);
    expect(trainingSet(sample, 64, 4_096)).toHaveLength(64); // never fewer than k
  });

  it("refuses fewer sample vectors than k", () => {
    expect(() => kmeans([[1, 2]], { k: 2, metric: "l2" })).toThrow(/at least k = 2/);
  });
});

describe("vector", () => {
  const dimension = 8;
  const { centres, points } = clustered(6, 4, 100, dimension);
  const sample = points.filter((_, i) => i % 3 === 0).map((p) => p.vector);

  for (const metric of ["l2", "cosine", "ip"] as const) {
    it(`sends every point to its nearest centroid (${metric})`, () => {
      const config = configOf({ dimension, metric, shards: 4, sharding: "vector", sample });
      const strategy = resolveSharding(config);
      expect(config.centroids).toHaveLength(4);
      expect(strategy.idStable).toBe(false);
      expect(strategy.shardsForId("any")).toEqual([0, 1, 2, 3]);
      const random = seededRandom(7);
      for (let i = 0; i < 500; i++) {
        const v = Array.from({ length: dimension }, () => random() * 20 - 10);
        expect(strategy.shardOf(`q${i}`, v, 0)).toBe(nearestBruteForce(config.centroids!, v, metric));
      }
      // Clustered data: each true cluster lands in one shard, a different one per cluster.
      const shardOfCluster = centres.map((_, c) => new Set(points.filter((p) => p.cluster === c).map((p) => strategy.shardOf("x", p.vector, 0))));
      for (const set of shardOfCluster) expect(set.size).toBe(1);
      expect(new Set(shardOfCluster.map((s) => [...s][0])).size).toBe(4);
    });
  }

  it("probes the nprobe nearest shards, nearest first, or all of them", () => {
    const config = configOf({ dimension, shards: 4, sharding: "vector", sample });
    const strategy = resolveSharding(config);
    const random = seededRandom(8);
    for (let i = 0; i < 200; i++) {
      const v = Array.from({ length: dimension }, () => random() * 20 - 10);
      const byDistance = config.centroids!
        .map((c, s) => ({ s, d: c.reduce((sum, x, j) => sum + (x - v[j]!) ** 2, 0) }))
        .sort((a, b) => a.d - b.d)
        .map((x) => x.s);
      expect(strategy.searchShards(v, 1)).toEqual(byDistance.slice(0, 1));
      expect(strategy.searchShards(v, 2)).toEqual(byDistance.slice(0, 2));
      expect(strategy.searchShards(v, 3)).toEqual(byDistance.slice(0, 3));
      expect(strategy.searchShards(v, 1)[0]).toBe(strategy.shardOf("x", v, 0));
    }
    expect(strategy.searchShards(centres[0]!, undefined)).toEqual([0, 1, 2, 3]);
    expect(strategy.searchShards(centres[0]!, 4)).toEqual([0, 1, 2, 3]);
    expect(strategy.searchShards(centres[0]!, 64)).toEqual([0, 1, 2, 3]);
  });

  it("trains the same centroids for the same sample, and does not store the sample", () => {
    const a = configOf({ dimension, shards: 4, sharding: "vector", sample });
    const b = configOf({ dimension, shards: 4, sharding: "vector", sample });
    expect(b.centroids).toEqual(a.centroids);
    expect(a).not.toHaveProperty("sample");
  });

  it("uses given centroids as they are", () => {
    const centroids = [
      [1, 0],
      [0, 1],
      [-1, 0],
    ];
    const config = configOf({ dimension: 2, shards: 3, sharding: "vector", centroids });
    expect(config.centroids).toEqual(centroids);
    const strategy = resolveSharding(config);
    expect(strategy.shardOf("a", [0.9, 0.2], 0)).toBe(0);
    expect(strategy.shardOf("a", [0.1, 3], 0)).toBe(1);
    expect(strategy.shardOf("a", [-5, 0], 0)).toBe(2);
    // A tie goes to the lower shard.
    expect(strategy.shardOf("a", [0.5, 0.5], 0)).toBe(0);
  });
});

describe("auto", () => {
  const sample = clustered(10, 3, 20, 4).points.map((p) => p.vector);

  it("is vector when a sample is given and shards > 1", () => {
    const config = configOf({ shards: 3, sharding: "auto", sample });
    expect(config).toMatchObject({ sharding: "vector", shardingRequested: "auto" });
    expect(config.centroids).toEqual(configOf({ shards: 3, sharding: "vector", sample }).centroids);
    expect(resolveSharding(config).name).toBe("vector");
  });

  it("is vector when centroids are given and shards > 1", () => {
    const centroids = sample.slice(0, 2);
    expect(configOf({ shards: 2, sharding: "auto", centroids })).toMatchObject({ sharding: "vector", centroids });
  });

  it("is hash otherwise (no sample, or one shard)", () => {
    const none = configOf({ shards: 3, sharding: "auto" });
    expect(none).toMatchObject({ sharding: "hash", shardingRequested: "auto" });
    expect(none.centroids).toBeUndefined();
    const single = configOf({ shards: 1, sharding: "auto", sample });
    expect(single).toMatchObject({ sharding: "hash", shardingRequested: "auto" });
    expect(single.centroids).toBeUndefined();
  });

  it("leaves explicit strategies unmarked", () => {
    expect(configOf({ shards: 2 })).toMatchObject({ sharding: "hash" });
    expect(configOf({ shards: 2 }).shardingRequested).toBeUndefined();
  });
});

describe("upsert entries with deleteIds", () => {
  const dimension = 2;
  function entry(seq: number, ids: string[], deleteIds?: string[]) {
    const e: UpsertEntry = {
      kind: EntryKind.Upsert,
      ids,
      payloads: ids.map(() => null),
      dimension,
      vectors: Float32Array.from(ids.flatMap((_, i) => [seq, i])),
    };
    if (deleteIds) e.deleteIds = deleteIds;
    return { seq, data: encodeEntry(e) };
  }

  it("round-trips; entries of the old format (payloads always listed) decode alike", () => {
    const plain = entry(1, ["a"]);
    const old = new Packr({ useRecords: false, moreTypes: false }).pack({
      k: "u",
      i: ["a"],
      p: [null],
      d: dimension,
      v: new Uint8Array(Float32Array.from([1, 0]).buffer),
    });
    // No payload in the entry: no per-point null on the wire any more.
    expect(plain.data.byteLength).toBeLessThan(old.byteLength);
    const { payloads: oldPayloads, ...fromOld } = decodeEntry(old) as UpsertEntry;
    expect(oldPayloads).toEqual([null]);
    expect(decodeEntry(plain.data)).toEqual(fromOld);
    const withPayload = encodeEntry({ kind: EntryKind.Upsert, ids: ["a", "b"], payloads: [null, { x: 1 }], dimension, vectors: new Float32Array(4) });
    expect(decodeEntry(withPayload)).toMatchObject({ payloads: [null, { x: 1 }] });
    expect(decodeEntry(plain.data)).not.toHaveProperty("deleteIds");
    expect(decodeEntry(entry(2, ["a"], ["b", "c"]).data)).toMatchObject({ ids: ["a"], deleteIds: ["b", "c"] });
    expect(decodeEntry(entry(3, [], ["b"]).data)).toMatchObject({ ids: [], deleteIds: ["b"] });
    // Formats 1 and 2 may say so (2 adds transaction entries); a format this code does not know is refused, not misread.
    const packr = new Packr({ useRecords: false, moreTypes: false });
    const wire = { k: "u", i: ["a"], d: dimension, v: new Uint8Array(Float32Array.from([1, 0]).buffer) };
    expect(decodeEntry(packr.pack({ ...wire, f: 1 }))).toEqual(decodeEntry(plain.data));
    expect(decodeEntry(packr.pack({ ...wire, f: 2 }))).toEqual(decodeEntry(plain.data));
    expect(() => decodeEntry(packr.pack({ ...wire, f: 3 }))).toThrow(/entry format 3/);
  });

  it("a shard deletes the ids first, then applies the points; an entry may be a pure delete", () => {
    const shard = new ShardIndex({ dimension, metric: "l2", index: { connectivity: 8, expansionAdd: 32, expansionSearch: 32, quantization: "f32" } });
    shard.apply([entry(1, ["a", "b", "c"])]);
    expect(shard.apply([entry(2, ["d"], ["a", "zz"])])).toMatchObject({ appliedSeq: 2, count: 3 });
    expect(shard.get(["a", "b", "c", "d"], false).map((p) => p.id)).toEqual(["b", "c", "d"]);
    // An id both deleted and written by one entry ends up written.
    shard.apply([entry(3, ["b"], ["b"])]);
    expect(unversioned(shard.get(["b"], true))).toEqual([{ id: "b", vector: [3, 0] }]);
    expect(shard.apply([entry(4, [], ["c", "d"])])).toMatchObject({ appliedSeq: 4, count: 1 });
    expect(shard.search({ vector: Float32Array.from([0, 0]), k: 10, withPayload: false, withVectors: false }).map((h) => h.id)).toEqual(["b"]);
  });
});
