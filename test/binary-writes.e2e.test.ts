/**
 * The binary (msgpack) encoding of the API and the write path's back-pressure, end to end
 * against a real nats-server and node: columns and float32 bytes land exactly as sent,
 * JSON keeps working beside them, bad binary input gets the same structured errors (in the
 * request's encoding) and changes nothing; a writer faster than the index is paced
 * (rate_limited, retryable) and everything acknowledged ends up searchable.
 */
import { headers } from "@nats-io/nats-core";
import { Packr } from "msgpackr";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JadeClient } from "../src/client/client.ts";
import { decodeBody, Encoding, encodingHeader, float32Bytes } from "../src/runtime/encoding.ts";
import { JadeError, type Reply } from "../src/runtime/errors.ts";
import { writesInFlightMax } from "../src/actors/write/writer.ts";
import { Harness, randomPoints, waitFor } from "./support/harness.ts";
import { unversioned } from "./support/points.ts";

const harness = new Harness();
let client: JadeClient;
const packr = new Packr({ useRecords: false, moreTypes: false });
const dim = 8;

beforeAll(async () => {
  client = await harness.singleNode();
  await client.createCollection({ name: "bin", dimension: dim, metric: "l2", shards: 3 });
});
afterAll(() => harness.close());

/** A request in msgpack with the header, its reply decoded as msgpack. */
async function msgpackRequest(subject: string, body: unknown): Promise<Reply<unknown>> {
  const h = headers();
  h.set(encodingHeader, Encoding.Msgpack);
  const data = body instanceof Uint8Array ? body : packr.pack(body);
  const msg = await client.nc.request(subject, data, { timeout: 10_000, headers: h });
  return decodeBody(msg.data, Encoding.Msgpack) as Reply<unknown>;
}

function rows(count: number, seed: number): Float32Array {
  return Float32Array.from(randomPoints(count, dim, seed).flat());
}

describe("msgpack requests", () => {
  it("stores columns exactly: float32 values, ids and payloads", async () => {
    const vectors = rows(50, 1);
    const ids = Array.from({ length: 50 }, (_, i) => `c${i}`);
    const payloads = ids.map((_, i) => (i % 2 === 0 ? { i } : null));
    const reply = await msgpackRequest("jade.v1.bin.upsert", { ids, vectors: float32Bytes(vectors), payloads, consistency: "all" });
    expect(reply).toMatchObject({ ok: true, result: { upserted: 50 } });
    const { points } = await client.get("bin", { ids: ["c0", "c1", "c49"], withVectors: true, consistency: "strong" });
    expect(unversioned(points)).toEqual([
      { id: "c0", vector: Array.from(vectors.subarray(0, dim)), payload: { i: 0 } },
      { id: "c1", vector: Array.from(vectors.subarray(dim, 2 * dim)) },
      { id: "c49", vector: Array.from(vectors.subarray(49 * dim)) },
    ]);
  });

  it("takes points with vectors as float32 bytes, and searches with a float32 query", async () => {
    const vector = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
    const reply = await msgpackRequest("jade.v1.bin.upsert", { points: [{ id: "bytes", vector: float32Bytes(vector), payload: { b: true } }], consistency: "all" });
    expect(reply.ok).toBe(true);
    const found = await msgpackRequest("jade.v1.bin.search", { vector: float32Bytes(vector), k: 1, withPayload: true, consistency: "strong" });
    expect(found).toMatchObject({ ok: true, result: { hits: [{ id: "bytes", distance: 0, payload: { b: true } }] } });
    // The same search in JSON gives the same answer.
    const json = await client.requestRaw("jade.v1.bin.search", JSON.stringify({ vector: Array.from(vector), k: 1, withPayload: true, consistency: "strong" }));
    expect(json).toEqual(found);
  });

  it("the SDK sends columns and float32 queries", async () => {
    const vectors = randomPoints(20, dim, 2);
    await client.upsert("bin", { points: vectors.map((vector, i) => ({ id: `sdk${i}`, vector })), consistency: "all" });
    const { hits } = await client.search("bin", { vector: vectors[7]!, k: 1, consistency: "strong" });
    expect(hits[0]?.id).toBe("sdk7");
  });

  const nan = new Float32Array(dim).fill(1);
  nan[3] = Number.NaN;
  const notUtf8 = Buffer.from(packr.pack({ ids: ["xAy"], vectors: float32Bytes(new Float32Array(dim).fill(1)) }));
  notUtf8[notUtf8.indexOf("xAy") + 1] = 0xff;
  const cases: { name: string; body: unknown; code: string }[] = [
    { name: "an id that is not UTF-8", body: new Uint8Array(notUtf8), code: "invalid_argument" },
    { name: "not msgpack", body: new Uint8Array([0xc1, 0xc1]), code: "invalid_argument" },
    { name: "vector bytes of the wrong length", body: { ids: ["a", "b"], vectors: float32Bytes(new Float32Array(dim + 1)) }, code: "dimension_mismatch" },
    { name: "bytes that are not float32s", body: { ids: ["a"], vectors: new Uint8Array(7) }, code: "invalid_argument" },
    { name: "NaN in the bytes", body: { ids: ["a"], vectors: float32Bytes(nan) }, code: "invalid_argument" },
    { name: "payloads not one per id", body: { ids: ["a", "b"], vectors: float32Bytes(new Float32Array(2 * dim).fill(1)), payloads: [null] }, code: "invalid_argument" },
    { name: "a __proto__ key in a payload", body: { ids: ["a"], vectors: float32Bytes(new Float32Array(dim).fill(1)), payloads: [JSON.parse('{"__proto__":{"x":1}}')] }, code: "invalid_argument" },
    { name: "vectors as numbers in columns", body: { ids: ["a"], vectors: Array.from(new Float32Array(dim).fill(1)) }, code: "invalid_argument" },
    { name: "a search vector of the wrong length", body: { vector: float32Bytes(new Float32Array(dim - 1).fill(1)), k: 1 }, code: "dimension_mismatch" },
  ];

  it.each(cases)("$name → $code, in msgpack", async ({ body, code }) => {
    const subject = typeof body === "object" && body !== null && "k" in body ? "jade.v1.bin.search" : "jade.v1.bin.upsert";
    const reply = await msgpackRequest(subject, body);
    expect(reply).toMatchObject({ ok: false, error: { code } });
  });

  it("keeps serving with nothing changed after all of it", async () => {
    expect((await client.count("bin", { consistency: "strong" })).count).toBe(71);
    expect((await client.get("bin", { ids: ["a", "b"], consistency: "strong" })).points).toEqual([]);
  });
});

describe("back-pressure", () => {
  it("paces a writer faster than the index, and everything acknowledged becomes searchable", async () => {
    // A node whose fresh buffer holds 256 vectors of 64-d and whose writers may be 16 KiB ahead.
    const paced = new Harness();
    try {
      const pacedClient = await paced.singleNode({ freshBytesMax: 64 * 1024, pace: { sustainedBytesMax: 16 * 1024, burstBytesMax: 16 * 1024 } });
      await pacedClient.createCollection({ name: "slow", dimension: 64, metric: "l2", shards: 1, index: { expansionAdd: 256 } });
      const vectors = randomPoints(6_000, 64, 3);
      let refused = 0;
      let acked = 0;
      const send = async (from: number): Promise<void> => {
        const points = vectors.slice(from, from + 500).map((vector, i) => ({ id: `s${from + i}`, vector }));
        for (;;) {
          try {
            await pacedClient.upsert("slow", { points, requestId: `slow-${from}`, timeoutMs: 200 });
            acked += points.length;
            return;
          } catch (err) {
            if (!(err instanceof JadeError) || err.code !== "rate_limited" || !err.retryable) throw err;
            refused++;
          }
        }
      };
      await Promise.all(Array.from({ length: 12 }, (_, i) => send(i * 500)));
      expect(acked).toBe(6_000);
      // The index could not absorb 6,000 × 64-d in the 200 ms each write waits at most.
      expect(refused).toBeGreaterThan(0);
      await waitFor(async () => (await pacedClient.count("slow", { consistency: "eventual" })).count === 6_000, { what: "every point applied", timeoutMs: 60_000 });
      const { hits } = await pacedClient.search("slow", { vector: vectors[4321]!, k: 1 });
      expect(hits[0]?.id).toBe("s4321");
    } finally {
      await paced.close();
    }
  });

  it("holds the writers to what the graph absorbed, so the fresh buffer never fills and applies never wait", async () => {
    // The fresh buffer holds 1,024 vectors of 64-d, and the writers may be 32 KiB ahead of the
    // graph: less than one write (500 × 64-d, 125 KiB), which therefore waits until the graph
    // absorbed the one before. Paced on the log alone, they would fill the buffer to its bound.
    const paced = new Harness();
    try {
      const pacedClient = await paced.singleNode({ freshBytesMax: 256 * 1024, pace: { sustainedBytesMax: 32 * 1024, burstBytesMax: 32 * 1024 } });
      await pacedClient.createCollection({ name: "steady", dimension: 64, metric: "l2", shards: 1, index: { expansionAdd: 256 } });
      const vectors = randomPoints(12_000, 64, 5);
      let pendingMax = 0;
      let writing = true;
      const watching = (async () => {
        while (writing) {
          const replicas = (await pacedClient.clusterStatus()).collections.find((c) => c.name === "steady")?.shards[0]?.replicas ?? [];
          for (const r of replicas) pendingMax = Math.max(pendingMax, r.pending ?? 0);
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      })();
      const send = async (from: number): Promise<void> => {
        const points = vectors.slice(from, from + 500).map((vector, i) => ({ id: `p${from + i}`, vector }));
        for (;;) {
          try {
            return void (await pacedClient.upsert("steady", { points, requestId: `steady-${from}`, timeoutMs: 2_000 }));
          } catch (err) {
            if (!(err instanceof JadeError) || err.code !== "rate_limited") throw err;
          }
        }
      };
      await Promise.all(Array.from({ length: 24 }, (_, i) => send(i * 500))).finally(() => (writing = false));
      await watching;
      expect(pendingMax).toBeGreaterThan(0);
      expect(pendingMax).toBeLessThanOrEqual(500);
      expect((await pacedClient.count("steady", { consistency: "strong" })).count).toBe(12_000);
    } finally {
      await paced.close();
    }
  });

  it("refuses writes past the node's in-flight bound at once, and keeps serving reads", async () => {
    // Each write waits for the index (16 KiB of backlog is less than one write): more than
    // writesInFlightMax of them waiting must not take the gateway's request slots.
    const paced = new Harness();
    try {
      const pacedClient = await paced.singleNode({ freshBytesMax: 64 * 1024, pace: { sustainedBytesMax: 16 * 1024, burstBytesMax: 16 * 1024 } });
      await pacedClient.createCollection({ name: "crowd", dimension: 64, metric: "l2", shards: 1, index: { expansionAdd: 256 } });
      const vectors = randomPoints(writesInFlightMax * 2 * 40, 64, 4);
      const writes = Promise.all(
        Array.from({ length: writesInFlightMax * 2 }, async (_, w) => {
          const points = vectors.slice(w * 40, (w + 1) * 40).map((vector, i) => ({ id: `c${w * 40 + i}`, vector }));
          try {
            await pacedClient.upsert("crowd", { points, requestId: `crowd-${w}`, timeoutMs: 60_000 });
            return { acked: points.length };
          } catch (err) {
            if (!(err instanceof JadeError) || err.code !== "rate_limited" || !/writes in progress/.test(err.message)) throw err;
            return { acked: 0 };
          }
        }),
      );
      // Reads are answered while the writes wait.
      const { hits } = await pacedClient.search("crowd", { vector: vectors[0]!, k: 1 });
      expect(hits.length).toBeLessThanOrEqual(1);
      const outcomes = await writes;
      const refused = outcomes.filter((o) => o.acked === 0).length;
      expect(refused).toBeGreaterThan(0);
      expect(refused).toBeLessThan(writesInFlightMax * 2);
      const acked = outcomes.reduce((sum, o) => sum + o.acked, 0);
      // A refused write changed nothing.
      await waitFor(async () => (await pacedClient.count("crowd", { consistency: "eventual" })).count === acked, { what: "the acknowledged points applied", timeoutMs: 60_000 });
      expect((await pacedClient.count("crowd", { consistency: "strong" })).count).toBe(acked);
    } finally {
      await paced.close();
    }
  });
});
