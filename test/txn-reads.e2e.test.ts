/**
 * Reads see all of a transaction or none (decision 013, "Reads") on a 3-node cluster, a
 * transaction across 4 shards: while its commit markers have reached some shards only (a
 * gateway between two appends), while it is committed in its record but marked nowhere (a
 * gateway that died at its commit point), and under transactions committed by the gateway
 * while readers read through every node.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jetstream, type JetStreamClient } from "@nats-io/jetstream";
import type { JadeClient } from "../src/client/client.ts";
import type { JadeNode } from "../src/node.ts";
import { TxnRecords } from "../src/actors/txn/records.ts";
import { encodeEntry, EntryKind } from "../src/runtime/log-entry.ts";
import { limits } from "../src/runtime/limits.ts";
import type { CollectionConfig } from "../src/runtime/schemas.ts";
import { resolveSharding } from "../src/runtime/sharding/index.ts";
import { subjects } from "../src/runtime/subjects.ts";
import { Harness, waitFor } from "./support/harness.ts";

const harness = new Harness();
afterAll(() => harness.close());
const dim = 2;
const shardCount = 4;
let client: JadeClient;
let nodes: JadeNode[];
let config: CollectionConfig;
let js: JetStreamClient;
let records: TxnRecords;

beforeAll(async () => {
  const nats = await harness.nats();
  nodes = [];
  for (const nodeId of ["r1", "r2", "r3"]) nodes.push(await harness.node([nats.url], { nodeId }));
  client = await harness.client(nats.url);
  await client.createCollection({ name: "tr", dimension: dim, metric: "l2", shards: shardCount, replicas: 2 });
  await client.upsert("tr", { points: Array.from({ length: 40 }, (_, i) => ({ id: `base${i}`, vector: [i, -i], payload: { g: "base" } })), consistency: "all" });
  config = await client.getCollection("tr");
  js = jetstream(client.nc);
  records = new TxnRecords(nodes[0]!.nats.txns);
}, 90_000);

/** One id on each shard, named after `prefix`. */
function onePerShard(prefix: string): string[] {
  const sharding = resolveSharding(config);
  const ids = new Array<string | undefined>(shardCount).fill(undefined);
  for (let i = 0; ids.includes(undefined); i++) ids[sharding.shardOf(`${prefix}-${i}`, [], 0)] ??= `${prefix}-${i}`;
  return ids as string[];
}

/** How much of group `g` each read shows: get, count and search must each show all of its points or none. */
async function seen(g: string, ids: string[], consistency: "eventual" | "strong") {
  const [got, counted, found] = await Promise.all([
    client.get("tr", { ids, consistency }),
    client.count("tr", { filter: { g }, consistency }),
    client.search("tr", { vector: [0, 0], k: 100, filter: { g }, consistency }),
  ]);
  for (const r of [got, counted, found]) expect(r.partial).toBe(false);
  return { get: got.points.length, count: counted.count, search: found.hits.length };
}

const all = (n: number) => ({ get: n, count: n, search: n });
const none = { get: 0, count: 0, search: 0 };

/** A transaction written by hand, as a gateway writes it: record, prepares on every shard, the commit point. */
async function committedByHand(txn: string, ids: string[]): Promise<Record<string, number>> {
  const shards = ids.map((_, s) => s);
  const deadlineAtMs = Date.now() + 120_000; // recovery stays away for the test
  await records.create({ id: txn, collection: "tr", uid: config.uid, node: "gone", state: "preparing", done: false, shards, prepareSeqs: {}, createdAtMs: Date.now(), deadlineAtMs });
  const prepareSeqs: Record<string, number> = {};
  for (const [shard, id] of ids.entries()) {
    const prepare = encodeEntry({ kind: EntryKind.TxnPrepare, txn, upsert: { ids: [id], dimension: dim, vectors: Float32Array.from([1, 1]), payloads: [{ g: txn }] }, deleteIds: [], conditions: [], deadlineAtMs });
    prepareSeqs[String(shard)] = (await js.publish(subjects.log("tr", shard), prepare)).seq;
  }
  expect(await records.decide(txn, "committed", { prepareSeqs })).toBe("committed");
  return prepareSeqs;
}

async function mark(txn: string, shard: number, prepareSeqs: Record<string, number>, withShards = true): Promise<void> {
  const commit = encodeEntry({ kind: EntryKind.TxnCommit, txn, prepareSeq: prepareSeqs[String(shard)]!, committedAtMs: Date.now(), ...(withShards ? { shards: [0, 1, 2, 3] } : {}) });
  await js.publish(subjects.log("tr", shard), commit);
}

describe("reads of a transaction across 4 shards on 3 nodes", () => {
  it("see all of it while its markers reached two shards only, by every read and consistency", async () => {
    const ids = onePerShard("half");
    const prepareSeqs = await committedByHand("half", ids);
    expect(await seen("half", ids, "strong")).toEqual(none);
    await mark("half", 0, prepareSeqs);
    await mark("half", 1, prepareSeqs, false);
    // Shards 0 and 1 applied it, 2 and 3 hold it staged: every read shows all four points.
    await waitFor(async () => (await client.get("tr", { ids: [ids[0]!], consistency: "strong" })).points.length === 1, { what: "shard 0 to apply its marker" });
    expect(await seen("half", ids, "strong")).toEqual(all(4));
    expect(await seen("half", ids, "eventual")).toEqual(all(4));
    await mark("half", 2, prepareSeqs);
    await mark("half", 3, prepareSeqs);
    expect(await seen("half", ids, "strong")).toEqual(all(4));
  });

  it("see all of it, or none until it is staged past the stale age, when it is committed in its record but marked nowhere", async () => {
    const ids = onePerShard("nomark");
    await committedByHand("nomark", ids);
    const began = Date.now();
    await waitFor(
      async () => {
        const view = await seen("nomark", ids, "eventual");
        // Never half, at any poll (each read on its own: they are separate requests).
        for (const n of Object.values(view)) expect([0, 4]).toContain(n);
        return view.get === 4 && view.count === 4 && view.search === 4;
      },
      { what: "readers to find the transaction committed in its record", timeoutMs: limits.txnStagedStaleMs + 20_000 },
    );
    expect(Date.now() - began).toBeGreaterThanOrEqual(limits.txnStagedStaleMs - 1_000);
  });

  it("concurrent conflicting transactions through every node: each commits or gets conflict, never hangs, and the points hold a committed one's writes", async () => {
    const hot = ["h0", "h1", "h2", "h3", "h4"];
    for (let round = 0; round < 3; round++) {
      // Each writes 3 of the 5 hot ids, listed in its own order (locks are taken in one order whatever the request's).
      const plans = Array.from({ length: 8 }, (_, t) => [0, 1, 2].map((k) => hot[(t * 2 + k * (t % 2 === 0 ? 1 : 4)) % hot.length]!));
      const outcomes = await Promise.all(
        plans.map((ids, t) =>
          client
            .transaction("tr", { ops: [{ op: "upsert", points: [...new Set(ids)].map((id) => ({ id, vector: [t, round], payload: { w: `${round}-${t}` } })) }], timeoutMs: 3_000 })
            .then(
              () => "ok",
              (err: { code: string }) => err.code,
            ),
        ),
      );
      // A hang would be `timeout` (no reply within the timeout and the client's margin).
      expect(outcomes.filter((o) => o !== "ok" && o !== "conflict")).toEqual([]);
      expect(outcomes).toContain("ok");
      const committed = new Set(outcomes.flatMap((o, t) => (o === "ok" ? [t] : [])));
      const { points } = await client.get("tr", { ids: hot, consistency: "strong" });
      for (const p of points) {
        const [r, t] = String((p.payload as { w: string }).w).split("-").map(Number);
        const writtenThisRound = [...committed].some((c) => plans[c]!.includes(p.id));
        expect(r === round, `${p.id}: written this round exactly when a committed transaction wrote it`).toBe(writtenThisRound);
        if (!writtenThisRound) continue;
        expect(committed.has(t!), `${p.id} holds the write of transaction ${t}, which was not committed`).toBe(true);
        expect(plans[t!]).toContain(p.id);
      }
    }
  });

  it("never show half of the transactions the gateway commits while readers read through every node", async () => {
    const groups = Array.from({ length: 12 }, (_, n) => ({ g: `live${n}`, ids: Array.from({ length: 8 }, (_, j) => `live${n}-${j}`) }));
    let writing = true;
    const views: string[] = [];
    const reader = async () => {
      while (writing) {
        for (const { g, ids } of groups) {
          const view = await seen(g, ids, "eventual");
          views.push(JSON.stringify(view));
        }
      }
    };
    const readers = [reader(), reader(), reader()];
    for (const { g, ids } of groups) {
      await client.transaction("tr", { ops: [{ op: "upsert", points: ids.map((id, j) => ({ id, vector: [j, j], payload: { g } })) }] });
    }
    writing = false;
    await Promise.all(readers);
    expect(views.length).toBeGreaterThan(groups.length);
    // Each read on its own (the three of a view are separate requests, a commit may land between them).
    expect(views.filter((v) => Object.values(JSON.parse(v) as Record<string, number>).some((n) => n !== 0 && n !== 8))).toEqual([]);
    for (const { g, ids } of groups) expect(await seen(g, ids, "strong")).toEqual(all(8));
  });
});
