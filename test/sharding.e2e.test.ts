/**
 * Sharding strategies end to end on a real node: the same clustered data in a
 * hash, a range and a vector collection of 4 shards; exact search, count, get,
 * delete, an upsert that moves a point to another cluster, nprobe, and the
 * per-shard counts the cluster status reports.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JadeClient } from "../src/client/client.ts";
import type { CreateCollectionRequest } from "../src/runtime/schemas.ts";
import { Harness } from "./support/harness.ts";
import { seededRandom } from "./support/random.ts";
import { unversioned } from "./support/points.ts";

const harness = new Harness();
let client: JadeClient;

beforeAll(async () => {
  client = await harness.singleNode();
});
afterAll(() => harness.close());

const dimension = 8;
const clusters = 4;
const count = 400;
/** Cluster c is centred on 10 × e_c. Vectors are float32-exact so gets compare equal. */
const centres = Array.from({ length: clusters }, (_, c) => Array.from({ length: dimension }, (_, j) => (j === c ? 10 : 0)));
const random = seededRandom(42);
const clusterOf = (i: number) => i % clusters;
const idOf = (i: number) => `p${String(i).padStart(3, "0")}`;
const vectors = Array.from({ length: count }, (_, i) => centres[clusterOf(i)]!.map((x) => Math.fround(x + (random() - 0.5))));
const points = vectors.map((vector, i) => ({ id: idOf(i), vector, payload: { cluster: clusterOf(i) } }));

async function shardCounts(name: string): Promise<number[]> {
  const status = await client.clusterStatus();
  const collection = status.collections.find((c) => c.name === name);
  return collection!.shards.map((s) => s.replicas[0]!.count!);
}

const cases: { sharding: string; create: Partial<CreateCollectionRequest>; expectedCounts?: number[] }[] = [
  { sharding: "hash", create: { sharding: "hash" } },
  // p000–p049 | p050–p199 | p200–p349 | p350–p399
  { sharding: "range", create: { sharding: "range", splitPoints: ["p050", "p200", "p350"] }, expectedCounts: [50, 150, 150, 50] },
  { sharding: "vector", create: { sharding: "vector", sample: vectors.filter((_, i) => i % 5 === 0) }, expectedCounts: [100, 100, 100, 100] },
];

describe.each(cases)("$sharding sharding", ({ sharding, create, expectedCounts }) => {
  const name = `shard-${sharding}`;

  beforeAll(async () => {
    const config = await client.createCollection({ name, dimension, metric: "l2", shards: 4, ...create });
    expect(config.sharding).toBe(sharding);
    expect(config).not.toHaveProperty("sample");
    if (sharding === "vector") expect(config.centroids).toHaveLength(4);
    const reply = await client.upsert(name, { points, consistency: "all" });
    expect(reply.upserted).toBe(count);
  });

  it("counts every point once and spreads them over the shards as the strategy says", async () => {
    expect((await client.count(name)).count).toBe(count);
    const counts = await shardCounts(name);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(count);
    if (expectedCounts) expect([...counts].sort((a, b) => a - b)).toEqual([...expectedCounts].sort((a, b) => a - b));
    if (sharding === "range") expect(counts).toEqual(expectedCounts);
    if (sharding === "hash") for (const c of counts) expect(c).toBeGreaterThan(count / 4 / 2);
  });

  it("finds a stored vector as the exact top-1, probing every shard by default", async () => {
    for (const i of [0, 1, 2, 3, 57, 123, 250, 399]) {
      const result = await client.search(name, { vector: vectors[i]!, k: 5 });
      expect(result.partial).toBe(false);
      expect(result.shards).toEqual({ total: 4, answered: 4 });
      expect(result.hits[0]).toMatchObject({ id: idOf(i), distance: 0 });
    }
  });

  it("gets points by id", async () => {
    const { points: got } = await client.get(name, { ids: [idOf(5), idOf(300), "missing"], withVectors: true });
    expect(unversioned(got)).toEqual([
      { id: idOf(5), vector: vectors[5], payload: { cluster: 1 } },
      { id: idOf(300), vector: vectors[300], payload: { cluster: 0 } },
    ]);
  });

  it("with nprobe=1 a query at a cluster centre gets hits from that cluster", async () => {
    for (let c = 0; c < clusters; c++) {
      const result = await client.search(name, { vector: centres[c]!, k: 20, nprobe: 1, withPayload: true });
      expect(result.hits).toHaveLength(20);
      for (const hit of result.hits) expect(hit.payload).toEqual({ cluster: c });
      // Only vector sharding can prune; the others ignore nprobe.
      expect(result.shards.total).toBe(sharding === "vector" ? 1 : 4);
    }
  });

  describe("after moving a point to another cluster and deleting one", () => {
    const moved = idOf(1); // cluster 1
    const movedVector = centres[3]!.map((x, j) => Math.fround(x + 0.01 * j));
    const deleted = idOf(2); // cluster 2

    beforeAll(async () => {
      await client.upsert(name, { points: [{ id: moved, vector: movedVector, payload: { cluster: 3 } }], consistency: "all" });
      await client.delete(name, { ids: [deleted], consistency: "all" });
    });

    it("holds the moved point once, with its new vector", async () => {
      expect((await client.count(name)).count).toBe(count - 1);
      const { points: got } = await client.get(name, { ids: [moved], withVectors: true });
      expect(unversioned(got)).toEqual([{ id: moved, vector: movedVector, payload: { cluster: 3 } }]);
      const all = await client.search(name, { vector: movedVector, k: count });
      expect(all.hits[0]).toMatchObject({ id: moved, distance: 0 });
      expect(all.hits.filter((h) => h.id === moved)).toHaveLength(1);
      // Where it was, it is gone.
      const old = await client.search(name, { vector: vectors[1]!, k: 5 });
      expect(old.hits.map((h) => h.id)).not.toContain(moved);
      // The nearest shard for its new vector has it.
      const probed = await client.search(name, { vector: movedVector, k: 1, nprobe: 1 });
      expect(probed.hits[0]).toMatchObject({ id: moved, distance: 0 });
    });

    it("has deleted the point from every shard", async () => {
      expect((await client.get(name, { ids: [deleted] })).points).toEqual([]);
      const result = await client.search(name, { vector: vectors[2]!, k: count });
      expect(result.hits.map((h) => h.id)).not.toContain(deleted);
      expect(result.hits).toHaveLength(count - 1);
    });

    it("shows the move in the per-shard counts", async () => {
      const counts = await shardCounts(name);
      expect(counts.reduce((a, b) => a + b, 0)).toBe(count - 1);
      if (sharding === "range") expect(counts).toEqual([49, 150, 150, 50]); // p001 stays put: its id did not change
      if (sharding === "vector") {
        // Each cluster is one shard: cluster 1 lost p001 to cluster 3, cluster 2 lost p002 (deleted).
        expect([...counts].sort((a, b) => a - b)).toEqual([99, 99, 100, 101]);
      }
    });
  });
});

describe("auto sharding", () => {
  it("resolves to vector with a sample and to hash without one, at create time", async () => {
    const withSample = await client.createCollection({
      name: "auto-sample",
      dimension,
      metric: "cosine",
      shards: 4,
      sharding: "auto",
      sample: vectors.slice(0, 100),
    });
    expect(withSample).toMatchObject({ sharding: "vector", shardingRequested: "auto" });
    expect(withSample.centroids).toHaveLength(4);
    expect(await client.getCollection("auto-sample")).toEqual(withSample);
    await client.upsert("auto-sample", { points, consistency: "all" });
    expect((await client.count("auto-sample")).count).toBe(count);
    for (const i of [0, 1, 2, 3]) {
      const result = await client.search("auto-sample", { vector: vectors[i]!, k: 1, nprobe: 1 });
      expect(result.hits[0]!.id).toBe(idOf(i));
      expect(result.shards.total).toBe(1);
    }
    const without = await client.createCollection({ name: "auto-plain", dimension, metric: "l2", shards: 2, sharding: "auto" });
    expect(without).toMatchObject({ sharding: "hash", shardingRequested: "auto" });
  });

  it("answers a bad sharding request with invalid_argument", async () => {
    await expect(
      client.createCollection({ name: "bad-range", dimension, metric: "l2", shards: 3, sharding: "range", splitPoints: ["b", "a"] }),
    ).rejects.toMatchObject({ code: "invalid_argument", message: expect.stringMatching(/^splitPoints\[1\]: must be strictly increasing/) });
  });
});
