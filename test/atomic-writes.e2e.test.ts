/**
 * One write request is all or nothing with respect to validation (issue 14, item 1): a
 * multi-shard upsert with a single bad point is refused whole, before any shard's log is
 * touched, in every encoding a client may send it in.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JadeClient } from "../src/client/client.ts";
import { names } from "../src/runtime/subjects.ts";
import { Harness } from "./support/harness.ts";

const harness = new Harness();
const shards = 4;
const dim = 3;
let client: JadeClient;
afterAll(() => harness.close());
beforeAll(async () => {
  client = await harness.singleNode();
  await client.createCollection({ name: "whole", dimension: dim, metric: "l2", shards, replicas: 1 });
  await client.upsert("whole", { points: Array.from({ length: 40 }, (_, i) => ({ id: `p${i}`, vector: [i, 1, 2] })), consistency: "all" });
}, 60_000);

/** Every shard log's last sequence: a refused write leaves them all where they were. */
async function logHeads(): Promise<number[]> {
  const jsm = await jetstreamManager(client.nc);
  return Promise.all(Array.from({ length: shards }, async (_, s) => (await jsm.streams.info(names.logStream("whole", s))).state.last_seq));
}

/** 100 points over the 4 shards (ids that hash everywhere), the last one spoiled by `spoil`. */
function batch(spoil: (point: { id: string; vector: unknown; payload?: unknown }) => void): unknown {
  const points: { id: string; vector: unknown; payload?: unknown }[] = Array.from({ length: 100 }, (_, i) => ({ id: `n${i}`, vector: [i, i, i], payload: { i } }));
  spoil(points[99]!);
  return { points, consistency: "all" };
}

describe("a write request with one bad point", () => {
  it.each([
    ["a vector of the wrong dimension", "dimension_mismatch", (p: { vector: unknown }) => void (p.vector = [1, 2])],
    ["a vector with a null", "invalid_argument", (p: { vector: unknown }) => void (p.vector = [1, null, 2])],
    ["an empty id", "invalid_argument", (p: { id: string }) => void (p.id = "")],
    ["a payload over the limit", "invalid_argument", (p: { payload?: unknown }) => void (p.payload = { big: "x".repeat(70_000) })],
  ])("is refused whole over JSON: %s", async (_, code, spoil) => {
    const before = await logHeads();
    const reply = JSON.parse((await client.nc.request("jade.v1.whole.upsert", JSON.stringify(batch(spoil)), { timeout: 10_000 })).string()) as { ok: boolean; error?: { code: string } };
    expect(reply).toMatchObject({ ok: false, error: { code } });
    expect(await logHeads()).toEqual(before);
    expect((await client.count("whole", { consistency: "strong" })).count).toBe(40);
    expect((await client.get("whole", { ids: ["n0", "n50"], consistency: "strong" })).points).toEqual([]);
  });

  it("is refused whole in the binary column encoding: a NaN in the last vector", async () => {
    const before = await logHeads();
    const vectors = Float32Array.from({ length: 100 * dim }, (_, k) => k);
    vectors[99 * dim + 1] = Number.NaN;
    await expect(client.upsertColumns("whole", { ids: Array.from({ length: 100 }, (_, i) => `c${i}`), vectors, consistency: "all" })).rejects.toMatchObject({ code: "invalid_argument" });
    expect(await logHeads()).toEqual(before);
    expect((await client.count("whole", { consistency: "strong" })).count).toBe(40);
  });
});
