/**
 * Transactions end to end (decision 013): `jade.v1.<collection>.transaction` on real nodes and
 * logs: refused until the cluster writes log format 2; all of a multi-shard transaction or none;
 * a failed condition refuses it whole; of two conflicting ones exactly one commits.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JadeClient } from "../src/client/client.ts";
import type { JadeNode } from "../src/node.ts";
import { names } from "../src/runtime/subjects.ts";
import { Harness } from "./support/harness.ts";

const harness = new Harness();
afterAll(() => harness.close());
const dim = 2;
let client: JadeClient;
let nodes: JadeNode[];

beforeAll(async () => {
  const nats = await harness.nats();
  nodes = [await harness.node([nats.url], { nodeId: "x1" }), await harness.node([nats.url], { nodeId: "x2" })];
  client = await harness.client(nats.url);
  await client.createCollection({ name: "tx", dimension: dim, metric: "l2", shards: 4, replicas: 2 });
  await client.upsert("tx", { points: Array.from({ length: 20 }, (_, i) => ({ id: `old${i}`, vector: [i, 1] })), consistency: "all" });
}, 60_000);

const point = (id: string, x: number) => ({ id, vector: [x, x], payload: { x } });

describe("transactions", () => {
  it("are refused until the cluster writes log format 2", async () => {
    await expect(client.transaction("tx", { ops: [{ op: "upsert", points: [point("a", 1)] }] })).rejects.toMatchObject({ code: "unavailable", message: /log format 2/ });
    // Every node of a newer build would move the cluster there (formats.ts); here the record is set by hand.
    await nodes[0]!.nats.config.put(names.formatsKey, JSON.stringify({ log: 2, message: 1 }));
  });

  it("apply every op on every shard, or none", async () => {
    const ids = Array.from({ length: 12 }, (_, i) => `new${i}`);
    const done = await client.transaction("tx", {
      ops: [{ op: "upsert", points: ids.map((id, i) => point(id, i)) }, { op: "delete", ids: ["old0", "old1", "old2"] }, { op: "upsert", points: [point("new0", 100)] }],
      consistency: "all",
    });
    expect(done).toMatchObject({ upserted: 12, deleted: 3 });
    expect(Object.keys(done.token).length).toBeGreaterThan(1);
    const got = await client.get("tx", { ids: [...ids, "old0", "old1", "old2", "old3"], consistency: "session", token: done.token });
    expect(got.points.map((p) => p.id).sort()).toEqual([...ids, "old3"].sort());
    expect(got.points.find((p) => p.id === "new0")?.payload).toEqual({ x: 100 });
    expect((await client.count("tx", { consistency: "strong" })).count).toBe(20 - 3 + 12);
    // The record says committed, and done.
    const record = await nodes[0]!.nats.txns.get(done.id);
    expect(record?.json()).toMatchObject({ state: "committed", done: true });
  });

  it("refuse it whole when one condition fails, and change nothing", async () => {
    const before = (await client.count("tx", { consistency: "strong" })).count;
    await expect(
      client.transaction("tx", { ops: [{ op: "upsert", points: [point("c1", 1), point("c2", 2), point("c3", 3)] }], conditions: [{ id: "old5", exists: false }] }),
    ).rejects.toMatchObject({ code: "conflict", message: /old5.* exists/ });
    expect((await client.get("tx", { ids: ["c1", "c2", "c3"], consistency: "strong" })).points).toEqual([]);
    expect((await client.count("tx", { consistency: "strong" })).count).toBe(before);
  });

  it("of two that insert the same points if absent, exactly one commits", async () => {
    const race = (x: number) =>
      client.transaction("tx", { ops: [{ op: "upsert", points: [point("r1", x), point("r2", x), point("r3", x)] }], conditions: ["r1", "r2", "r3"].map((id) => ({ id, exists: false })), timeoutMs: 10_000 }).then(
        () => "ok",
        (err: { code: string }) => err.code,
      );
    const outcomes = await Promise.all([race(1), race(2)]);
    expect(outcomes.sort()).toEqual(["conflict", "ok"]);
    const got = (await client.get("tx", { ids: ["r1", "r2", "r3"], consistency: "strong" })).points;
    expect(got).toHaveLength(3);
    expect(new Set(got.map((p) => JSON.stringify(p.payload))).size).toBe(1);
  });
});
