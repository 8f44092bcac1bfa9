/**
 * Single node, end to end, against a real nats-server: the user story of the
 * core issue — create, write, search, filter, delete — and bad input answered
 * with structured errors while the node keeps serving.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JadeClient } from "../src/client/client.ts";
import { JadeError } from "../src/runtime/errors.ts";
import { limits } from "../src/runtime/limits.ts";
import { Harness, randomPoints } from "./support/harness.ts";

const harness = new Harness();
let client: JadeClient;

beforeAll(async () => {
  client = await harness.singleNode();
});
afterAll(() => harness.close());

async function errorOf(promise: Promise<unknown>): Promise<JadeError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof JadeError) return err;
    throw err;
  }
  throw new Error("expected the request to fail");
}

describe("collections", () => {
  it("creates, lists, gets and drops a collection with its parameters", async () => {
    const created = await client.createCollection({
      name: "params",
      dimension: 8,
      metric: "cosine",
      shards: 3,
      index: { connectivity: 8, expansionAdd: 64, expansionSearch: 32, quantization: "f16" },
    });
    expect(created).toMatchObject({ name: "params", dimension: 8, metric: "cosine", shards: 3, sharding: "hash" });
    expect(created.index).toEqual({ connectivity: 8, expansionAdd: 64, expansionSearch: 32, quantization: "f16" });
    expect((await client.listCollections()).map((c) => c.name)).toContain("params");
    expect(await client.getCollection("params")).toEqual(created);
    await client.dropCollection("params");
    expect((await errorOf(client.getCollection("params"))).code).toBe("not_found");
  });

  it("a re-created collection starts empty", async () => {
    await client.createCollection({ name: "again", dimension: 2, metric: "l2", shards: 1 });
    await client.upsert("again", { points: [{ id: "x", vector: [1, 1] }], consistency: "all" });
    await client.dropCollection("again");
    await client.createCollection({ name: "again", dimension: 2, metric: "l2", shards: 1 });
    const { token } = await client.upsert("again", { points: [{ id: "y", vector: [2, 2] }], consistency: "all" });
    expect((await client.count("again", { consistency: "session", token })).count).toBe(1);
  });
});

describe("write, search, filter, delete", () => {
  const dimension = 16;
  const vectors = randomPoints(300, dimension, 7);
  const colors = ["red", "green", "blue"];

  beforeAll(async () => {
    await client.createCollection({ name: "items", dimension, metric: "l2", shards: 4 });
    const points = vectors.map((vector, i) => ({ id: `p${i}`, vector, payload: { color: colors[i % 3], rank: i } }));
    const reply = await client.upsert("items", { points, consistency: "all" });
    expect(reply.upserted).toBe(300);
    expect(Object.keys(reply.token).length).toBeGreaterThan(1);
  });

  it("finds a stored vector as the exact top-1", async () => {
    for (const i of [0, 17, 123, 299]) {
      const result = await client.search("items", { vector: vectors[i]!, k: 5, withPayload: true });
      expect(result.partial).toBe(false);
      expect(result.shards).toEqual({ total: 4, answered: 4 });
      expect(result.hits[0]).toMatchObject({ id: `p${i}`, distance: 0, payload: { color: colors[i % 3], rank: i } });
      const distances = result.hits.map((h) => h.distance);
      expect(distances).toEqual([...distances].sort((a, b) => a - b));
    }
  });

  it("applies metadata filters exactly", async () => {
    const result = await client.search("items", {
      vector: vectors[0]!,
      k: 20,
      filter: { $and: [{ color: "blue" }, { rank: { $gte: 100, $lt: 200 } }] },
      withPayload: true,
    });
    const expected = vectors
      .map((v, i) => ({ i, d: v.reduce((s, x, j) => s + (x - vectors[0]![j]!) ** 2, 0) }))
      .filter(({ i }) => i % 3 === 2 && i >= 100 && i < 200)
      .sort((a, b) => a.d - b.d)
      .slice(0, 20)
      .map(({ i }) => `p${i}`);
    expect(result.hits.map((h) => h.id)).toEqual(expected);
    expect((await client.count("items", { filter: { color: { $in: ["red", "green"] } } })).count).toBe(200);
  });

  it("gets points with payload and vectors", async () => {
    const { points } = await client.get("items", { ids: ["p5", "missing", "p6"], withVectors: true });
    expect(points.map((p) => p.id)).toEqual(["p5", "p6"]);
    expect(points[0]!.vector).toEqual(vectors[5]);
    expect(points[0]!.payload).toEqual({ color: "blue", rank: 5 });
  });

  it("replaces a point on upsert of an existing id, and deletes", async () => {
    const moved = vectors[10]!.map((x) => x + 5);
    const { token } = await client.upsert("items", { points: [{ id: "p3", vector: moved, payload: { color: "moved" } }] });
    const hit = await client.search("items", { vector: moved, k: 1, withPayload: true, consistency: "session", token });
    expect(hit.hits[0]).toMatchObject({ id: "p3", distance: 0, payload: { color: "moved" } });
    expect((await client.count("items", { consistency: "session", token })).count).toBe(300);

    const deleted = await client.delete("items", { ids: ["p3", "p4"] });
    expect(deleted.deleted).toBe(2);
    const after = await client.search("items", { vector: moved, k: 3, consistency: "session", token: deleted.token });
    expect(after.hits.map((h) => h.id)).not.toContain("p3");
    expect((await client.count("items", { consistency: "session", token: deleted.token })).count).toBe(298);
    expect((await client.get("items", { ids: ["p3", "p4"], consistency: "session", token: deleted.token })).points).toEqual([]);
  });

  it("strong reads see every write acknowledged before them", async () => {
    await client.upsert("items", { points: [{ id: "strong", vector: vectors[1]!.map((x) => -x) }] });
    const { points } = await client.get("items", { ids: ["strong"], consistency: "strong" });
    expect(points.map((p) => p.id)).toEqual(["strong"]);
  });

  it("reports every shard's replica in the cluster status", async () => {
    const status = await client.clusterStatus();
    const items = status.collections.find((c) => c.name === "items")!;
    expect(items.shards).toHaveLength(4);
    for (const shard of items.shards) expect(shard.replicas[0]!.state).toMatch(/serving|lagging/);
  });
});

describe("bad input", () => {
  beforeAll(async () => {
    await client.createCollection({ name: "strict", dimension: 3, metric: "cosine", shards: 2 });
    await client.upsert("strict", { points: [{ id: "keep", vector: [1, 2, 3] }], consistency: "all" });
  });

  const big = "x".repeat(limits.payloadBytesMax + 1);
  const cases: { name: string; subject: string; body: string; code: string }[] = [
    { name: "wrong dimension", subject: "jade.v1.strict.upsert", body: JSON.stringify({ points: [{ id: "a", vector: [1, 2] }] }), code: "dimension_mismatch" },
    { name: "NaN (not JSON)", subject: "jade.v1.strict.upsert", body: '{"points":[{"id":"a","vector":[1,NaN,2]}]}', code: "invalid_argument" },
    { name: "Infinity via 1e999", subject: "jade.v1.strict.upsert", body: '{"points":[{"id":"a","vector":[1,1e999,2]}]}', code: "invalid_argument" },
    { name: "null in vector", subject: "jade.v1.strict.upsert", body: JSON.stringify({ points: [{ id: "a", vector: [1, null, 2] }] }), code: "invalid_argument" },
    { name: "empty vector", subject: "jade.v1.strict.upsert", body: JSON.stringify({ points: [{ id: "a", vector: [] }] }), code: "invalid_argument" },
    { name: "non-numeric vector", subject: "jade.v1.strict.upsert", body: JSON.stringify({ points: [{ id: "a", vector: ["1", "2", "3"] }] }), code: "invalid_argument" },
    { name: "empty id", subject: "jade.v1.strict.upsert", body: JSON.stringify({ points: [{ id: "", vector: [1, 2, 3] }] }), code: "invalid_argument" },
    { name: "numeric id", subject: "jade.v1.strict.upsert", body: JSON.stringify({ points: [{ id: 7, vector: [1, 2, 3] }] }), code: "invalid_argument" },
    { name: "payload too large", subject: "jade.v1.strict.upsert", body: JSON.stringify({ points: [{ id: "a", vector: [1, 2, 3], payload: { big } }] }), code: "invalid_argument" },
    { name: "no points", subject: "jade.v1.strict.upsert", body: JSON.stringify({ points: [] }), code: "invalid_argument" },
    { name: "unknown field", subject: "jade.v1.strict.upsert", body: JSON.stringify({ points: [{ id: "a", vector: [1, 2, 3] }], extra: 1 }), code: "invalid_argument" },
    { name: "unknown collection", subject: "jade.v1.nosuch.search", body: JSON.stringify({ vector: [1, 2, 3], k: 1 }), code: "not_found" },
    { name: "invalid collection name in create", subject: "jade.v1.collections.create", body: JSON.stringify({ name: "bad name!", dimension: 3, metric: "l2" }), code: "invalid_argument" },
    { name: "reserved collection name", subject: "jade.v1.collections.create", body: JSON.stringify({ name: "collections", dimension: 3, metric: "l2" }), code: "invalid_argument" },
    { name: "invalid collection name in subject", subject: "jade.v1.bad$name.search", body: JSON.stringify({ vector: [1, 2, 3], k: 1 }), code: "invalid_argument" },
    { name: "duplicate collection", subject: "jade.v1.collections.create", body: JSON.stringify({ name: "strict", dimension: 3, metric: "cosine" }), code: "already_exists" },
    { name: "bad metric", subject: "jade.v1.collections.create", body: JSON.stringify({ name: "m", dimension: 3, metric: "hamming" }), code: "invalid_argument" },
    { name: "i8 with l2", subject: "jade.v1.collections.create", body: JSON.stringify({ name: "q", dimension: 3, metric: "l2", index: { quantization: "i8" } }), code: "invalid_argument" },
    { name: "malformed JSON", subject: "jade.v1.strict.search", body: '{"vector": [1,2,3], "k":', code: "invalid_argument" },
    { name: "JSON that is not an object", subject: "jade.v1.strict.search", body: "[1,2,3]", code: "invalid_argument" },
    { name: "k = 0", subject: "jade.v1.strict.search", body: JSON.stringify({ vector: [1, 2, 3], k: 0 }), code: "invalid_argument" },
    { name: "k negative", subject: "jade.v1.strict.search", body: JSON.stringify({ vector: [1, 2, 3], k: -3 }), code: "invalid_argument" },
    { name: "k above the limit", subject: "jade.v1.strict.search", body: JSON.stringify({ vector: [1, 2, 3], k: limits.kMax + 1 }), code: "invalid_argument" },
    { name: "search wrong dimension", subject: "jade.v1.strict.search", body: JSON.stringify({ vector: [1, 2], k: 1 }), code: "dimension_mismatch" },
    { name: "unknown filter operator", subject: "jade.v1.strict.search", body: JSON.stringify({ vector: [1, 2, 3], k: 1, filter: { a: { $regex: "x" } } }), code: "invalid_argument" },
    { name: "unknown operation", subject: "jade.v1.strict.explode", body: "{}", code: "invalid_argument" },
    { name: "bad consistency", subject: "jade.v1.strict.upsert", body: JSON.stringify({ points: [{ id: "a", vector: [1, 2, 3] }], consistency: "maybe" }), code: "invalid_argument" },
  ];

  it.each(cases)("$name → $code", async ({ subject, body, code }) => {
    const reply = await client.requestRaw(subject, body);
    expect(reply.ok).toBe(false);
    if (reply.ok) return;
    expect(reply.error.code).toBe(code);
    expect(typeof reply.error.message).toBe("string");
    expect(reply.error.message.length).toBeGreaterThan(0);
  });

  it("a request over the NATS max payload → payload_too_large", async () => {
    const body = JSON.stringify({ points: [{ id: "a", vector: [1, 2, 3], payload: { big: "y".repeat(limits.natsPayloadBytesMax) } }] });
    const reply = await client.requestRaw("jade.v1.strict.upsert", body);
    expect(reply).toMatchObject({ ok: false, error: { code: "payload_too_large" } });
  });

  it("keeps serving with nothing lost after all of it", async () => {
    const count = await client.count("strict", { consistency: "strong" });
    expect(count.count).toBe(1);
    const result = await client.search("strict", { vector: [1, 2, 3], k: 1 });
    expect(result.hits[0]!.id).toBe("keep");
  });
});

describe("replication log following", () => {
  it("applies every acknowledged entry of a concurrent burst without waiting for a later write", async () => {
    await client.createCollection({ name: "burst", dimension: 16, metric: "l2", shards: 4 });
    const vectors = randomPoints(6_000, 16, 11);
    const token: Record<string, number> = {};
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < vectors.length) {
          const start = next;
          next += 50;
          const points = vectors.slice(start, start + 50).map((vector, i) => ({ id: `b${start + i}`, vector }));
          const reply = await client.upsert("burst", { points });
          for (const [shard, seq] of Object.entries(reply.token)) token[shard] = Math.max(token[shard] ?? 0, seq);
        }
      }),
    );
    const { count, partial } = await client.count("burst", { consistency: "session", token, timeoutMs: 30_000 });
    expect(partial).toBe(false);
    expect(count).toBe(6_000);
  });
});
