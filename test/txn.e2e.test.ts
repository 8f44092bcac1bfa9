/**
 * Transactions end to end (decision 013): `jade.v1.<collection>.transaction` on real nodes and
 * logs: refused until the cluster writes log format 2; all of a multi-shard transaction or none;
 * a failed condition refuses it whole; of two conflicting ones exactly one commits.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JadeClient } from "../src/client/client.ts";
import type { JadeNode } from "../src/node.ts";
import { jetstream } from "@nats-io/jetstream";
import { TxnRecords } from "../src/actors/txn/records.ts";
import { encodeEntry, EntryKind } from "../src/runtime/log-entry.ts";
import { resolveSharding } from "../src/runtime/sharding/index.ts";
import { names, subjects } from "../src/runtime/subjects.ts";
import { Harness, waitFor } from "./support/harness.ts";
import { unversioned } from "./support/points.ts";

const harness = new Harness();
afterAll(() => harness.close());
const dim = 2;
let client: JadeClient;
let nodes: JadeNode[];

beforeAll(async () => {
  const nats = await harness.nats();
  // Recovery takes over a transaction 200 ms past its deadline (10 s by default).
  const coordinator = { txnRecoveryGraceMs: 200 };
  nodes = [await harness.node([nats.url], { nodeId: "x1", coordinator }), await harness.node([nats.url], { nodeId: "x2", coordinator })];
  client = await harness.client(nats.url);
  await client.createCollection({ name: "tx", dimension: dim, metric: "l2", shards: 4, replicas: 2 });
  await client.upsert("tx", { points: Array.from({ length: 20 }, (_, i) => ({ id: `old${i}`, vector: [i, 1] })), consistency: "all" });
}, 60_000);

const point = (id: string, x: number) => ({ id, vector: [x, x], payload: { x } });

describe("transactions", () => {
  it("are refused while the cluster writes log format 1 (an upgrade from a build without them under way), and taken once it writes 2", async () => {
    const formats = nodes[0]!.nats.config;
    expect((await formats.get(names.formatsKey))!.json()).toEqual({ log: 2, message: 1 });
    await formats.put(names.formatsKey, JSON.stringify({ log: 1, message: 1 }));
    await expect(client.transaction("tx", { ops: [{ op: "upsert", points: [point("a", 1)] }] })).rejects.toMatchObject({ code: "unavailable", message: /log format 2/ });
    // As the coordinator writes it once every node reads 2 (rolling.e2e.test.ts).
    await formats.put(names.formatsKey, JSON.stringify({ log: 2, message: 1 }));
    expect(await client.transaction("tx", { ops: [{ op: "delete", ids: ["absent"] }] })).toMatchObject({ deleted: 1 });
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
    // The record says committed, and done once its locks are let go (after the answer).
    const records = new TxnRecords(nodes[0]!.nats.txns);
    expect(await records.get(done.id)).toMatchObject({ state: "committed" });
    await waitFor(async () => (await records.get(done.id))?.done === true, { what: "the record done" });
    // Its open key leaves no delete marker for recovery's listing to walk (nats/kv-keys.ts).
    await waitFor(async () => !(await nodes[0]!.nats.txns.listKeys("open.>")).includes(`open.${done.id}`), { what: "the open key gone" });
  });

  it("refuse it whole when one condition fails, and change nothing", async () => {
    const before = (await client.count("tx", { consistency: "strong" })).count;
    await expect(
      client.transaction("tx", { ops: [{ op: "upsert", points: [point("c1", 1), point("c2", 2), point("c3", 3)] }], conditions: [{ id: "old5", exists: false }] }),
    ).rejects.toMatchObject({ code: "conflict", message: /old5.* exists/ });
    expect((await client.get("tx", { ids: ["c1", "c2", "c3"], consistency: "strong" })).points).toEqual([]);
    expect((await client.count("tx", { consistency: "strong" })).count).toBe(before);
  });

  it("compare-and-set on a point's version, as `get` returns it", async () => {
    const [old4] = (await client.get("tx", { ids: ["old4"], consistency: "strong" })).points;
    expect(old4!.version).toBeGreaterThan(0);
    const cas = (version: number, x: number) => client.transaction("tx", { ops: [{ op: "upsert", points: [point("old4", x)] }], conditions: [{ id: "old4", version }] });
    const done = await cas(old4!.version!, 41);
    const [after] = (await client.get("tx", { ids: ["old4"], consistency: "session", token: done.token })).points;
    expect(after).toMatchObject({ payload: { x: 41 } });
    expect(after!.version).not.toBe(old4!.version);
    // The version read before is stale now: refused, nothing changed.
    await expect(cas(old4!.version!, 42)).rejects.toMatchObject({ code: "conflict", message: /old4/ });
    expect((await client.get("tx", { ids: ["old4"], consistency: "strong" })).points).toEqual([after]);
  });

  it("an upsert with atomic: true runs as a transaction: every shard or none", async () => {
    const done = await client.upsert("tx", { points: [point("at1", 1), point("at2", 2), point("at3", 3)], atomic: true });
    expect(done.upserted).toBe(3);
    expect((await client.get("tx", { ids: ["at1", "at2", "at3"], consistency: "session", token: done.token })).points).toHaveLength(3);
    // One of its points is staged by another transaction (left in doubt, by hand): refused whole.
    const config = await client.getCollection("tx");
    const shard = resolveSharding(config).shardOf("at4", [], 0);
    const deadlineAtMs = Date.now() + 60_000;
    const records = new TxnRecords(nodes[0]!.nats.txns);
    await records.create({ id: "holds-at4", collection: "tx", uid: config.uid, node: "gone", state: "preparing", done: false, shards: [shard], prepareSeqs: {}, createdAtMs: Date.now(), deadlineAtMs });
    const prepare = encodeEntry({ kind: EntryKind.TxnPrepare, txn: "holds-at4", upsert: { ids: ["at4"], dimension: dim, vectors: Float32Array.from([0, 0]), payloads: [null] }, deleteIds: [], conditions: [], deadlineAtMs });
    await jetstream(client.nc).publish(subjects.log("tx", shard), prepare);
    await expect(client.upsert("tx", { points: [point("at4", 4), point("at5", 5), point("at6", 6)], atomic: true })).rejects.toMatchObject({ code: "conflict", message: /at4/ });
    expect((await client.get("tx", { ids: ["at4", "at5", "at6"], consistency: "strong" })).points).toEqual([]);
    // An operator aborts the one left in doubt (recovery's finish, at once); the same points then go in.
    expect(await client.abortTransaction("holds-at4")).toMatchObject({ state: "aborted", done: true });
    expect((await client.upsert("tx", { points: [point("at4", 4), point("at5", 5), point("at6", 6)], atomic: true })).upserted).toBe(3);
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

  it("recovery finishes a transaction its gateway left in doubt: preparing is aborted, committed gets its markers", async () => {
    const config = await client.getCollection("tx");
    const records = new TxnRecords(nodes[0]!.nats.txns);
    const js = jetstream(client.nc);
    const shardOf = (id: string) => resolveSharding(config).shardOf(id, [], 0);
    /** A gateway that died after its prepares (and, for `state` committed, after its commit point). */
    async function leftInDoubt(txn: string, id: string, state: "preparing" | "committed"): Promise<number> {
      const shard = shardOf(id);
      const deadlineAtMs = Date.now() + 500;
      await records.create({ id: txn, collection: "tx", uid: config.uid, node: "gone", state: "preparing", done: false, shards: [shard], prepareSeqs: {}, createdAtMs: Date.now(), deadlineAtMs });
      const prepare = encodeEntry({ kind: EntryKind.TxnPrepare, txn, upsert: { ids: [id], dimension: dim, vectors: Float32Array.from([5, 5]), payloads: [{ by: txn }] }, deleteIds: [], conditions: [], deadlineAtMs });
      const seq = (await js.publish(subjects.log("tx", shard), prepare)).seq;
      if (state === "committed") await records.decide(txn, "committed", { prepareSeqs: { [String(shard)]: seq } });
      return shard;
    }
    await leftInDoubt("doubt-p", "dp", "preparing");
    await leftInDoubt("doubt-c", "dc", "committed");
    // A plain write to the aborted one's point waits for it, then lands.
    const plain = client.upsert("tx", { points: [point("dp", 9)], consistency: "all", timeoutMs: 30_000 });
    // Awaited below; should a step before fail, its rejection is not reported a second time, unhandled.
    plain.catch(() => undefined);
    await waitFor(async () => (await records.get("doubt-p"))?.done === true && (await records.get("doubt-c"))?.done === true, { what: "recovery to finish both", timeoutMs: 30_000 });
    expect(await records.get("doubt-p")).toMatchObject({ state: "aborted", reason: /gateway did not decide/ });
    expect(await records.get("doubt-c")).toMatchObject({ state: "committed" });
    await plain;
    const got = (await client.get("tx", { ids: ["dp", "dc"], consistency: "strong" })).points;
    expect(unversioned(got)).toEqual([
      { id: "dp", payload: { x: 9 } },
      { id: "dc", payload: { by: "doubt-c" } },
    ]);
  });
});
