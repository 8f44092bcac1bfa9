/**
 * The change feed against real servers: every change once per shard in log order, with the
 * vectors and payloads written; resuming from a position after the reader and the node
 * restart loses and repeats nothing; from an instant; following live; a purged position
 * and a foreign token refused with a clear error; the CLI's JSON lines.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { jetstream } from "@nats-io/jetstream";
import { afterAll, describe, expect, it } from "vitest";
import type { Change, ChangeFeed, ChangeStart } from "../src/client/changes.ts";
import type { JadeClient } from "../src/client/client.ts";
import { encodeEntry, EntryKind, type LogEntry } from "../src/runtime/log-entry.ts";
import { subjects } from "../src/runtime/subjects.ts";
import { Harness, jadeBin, repoRoot, waitFor } from "./support/harness.ts";

const harness = new Harness();
afterAll(() => harness.close());

const dimension = 4;
const key = (c: Pick<Change, "shard" | "seq" | "index">) => `${c.shard}:${c.seq}:${c.index}`;

async function take(feed: ChangeFeed, count: number): Promise<Change[]> {
  const out: Change[] = [];
  if (count === 0) return out;
  for await (const change of feed) {
    out.push(change);
    if (out.length === count) break;
  }
  return out;
}

async function all(client: JadeClient, collection: string, from: ChangeStart): Promise<Change[]> {
  const out: Change[] = [];
  for await (const change of await client.changes(collection, { from, untilCaughtUp: true })) out.push(change);
  return out;
}

/** Points whose float32 vectors are exact: i, i + 0.5, −i, 1. */
function points(from: number, count: number, tag: string) {
  return Array.from({ length: count }, (_, k) => {
    const i = from + k;
    return { id: `p${i}`, vector: [i, i + 0.5, -i, 1], payload: { tag, i } };
  });
}

describe("the change feed", () => {
  it("delivers every change once per shard in log order, and resumes after the reader and the node restart", async () => {
    const nats = await harness.nats();
    const dataDir = await harness.tempDir();
    let node = await harness.node([nats.url], { dataDir, nodeId: "c1" });
    const client = await harness.client(nats.url);
    await client.createCollection({ name: "feed", dimension, metric: "l2", shards: 2 });
    await client.upsert("feed", { points: points(0, 50, "a") });
    await client.delete("feed", { ids: ["p1", "p2", "p3"] });
    await client.upsert("feed", { points: points(40, 20, "b") }); // 10 overwrites, 10 new

    const everything = await all(client, "feed", "start");
    expect(everything).toHaveLength(50 + 3 + 20);
    expect(new Set(everything.map(key)).size).toBe(everything.length);
    for (const shard of [0, 1]) {
      const mine = everything.filter((c) => c.shard === shard);
      expect(mine.every((c, i) => i === 0 || c.seq > mine[i - 1]!.seq || (c.seq === mine[i - 1]!.seq && c.index === mine[i - 1]!.index + 1))).toBe(true);
    }
    const last = new Map(everything.map((c) => [c.id, c]));
    expect(last.get("p2")).toMatchObject({ op: "delete", id: "p2" });
    expect(last.get("p45")).toMatchObject({ op: "upsert", vector: [45, 45.5, -45, 1], payload: { tag: "b", i: 45 } });
    expect(last.get("p10")).toMatchObject({ op: "upsert", vector: [10, 10.5, -10, 1], payload: { tag: "a", i: 10 } });
    expect(everything.every((c) => !Number.isNaN(Date.parse(c.time)))).toBe(true);

    // A reader that stops after 30 changes resumes from the position the 30th carried: the rest, once.
    const first = await client.changes("feed", { from: "start" });
    const head = await take(first, 30);
    first.stop();
    const position = head.at(-1)!.position;
    // The feed's own position is the 30th's, though it had read further ahead into its buffer.
    expect(first.position).toBe(position);
    const reader = await harness.client(nats.url); // a restarted reader: a new connection
    const rest = await all(reader, "feed", position);
    expect([...head, ...rest].map(key).sort()).toEqual(everything.map(key).sort());

    // The node restarts (and writes go on): the feed resumes from the last position, nothing lost or repeated.
    const mid = rest.at(-1)!.position;
    await node.stop();
    node = await harness.node([nats.url], { dataDir, nodeId: "c1" });
    await waitFor(async () => (await client.count("feed", {})).count === 57, { what: "the node serving again" });
    await client.upsert("feed", { points: points(100, 5, "c") });
    const after = await all(reader, "feed", mid);
    expect(after.map((c) => c.id).sort()).toEqual(["p100", "p101", "p102", "p103", "p104"]);
  }, 60_000);

  it("follows live writes, starts at an instant, and refuses positions it cannot honour", async () => {
    const nats = await harness.nats();
    await harness.node([nats.url], { coordinator: { retention: { intervalMs: 200 } } });
    const client = await harness.client(nats.url);
    await client.createCollection({ name: "live", dimension, metric: "l2", shards: 2, snapshot: { everyEntries: 1_000_000, intervalMs: 300 }, retention: { pointInTimeMs: 0 } });
    const live = await client.changes("live"); // from now
    await client.upsert("live", { points: points(0, 10, "x") });
    const ackedAtMs = Date.now();
    const seen = await take(live, 10);
    expect(seen.map((c) => c.id).sort()).toEqual(points(0, 10, "x").map((p) => p.id).sort());
    const stale = live.position;
    live.stop();

    // An instant strictly after every entry of the first batch (they were appended before its
    // acknowledgement; Date has whole milliseconds), and strictly before the second batch.
    await waitFor(async () => Date.now() > ackedAtMs + 1, { what: "a millisecond" });
    const between = new Date();
    await waitFor(async () => Date.now() > between.getTime() + 1, { what: "a millisecond" });
    await client.upsert("live", { points: points(10, 6, "y") });
    expect((await all(client, "live", between)).map((c) => c.payload)).toEqual(expect.arrayContaining(points(10, 6, "y").map((p) => p.payload)));
    expect(await all(client, "live", between)).toHaveLength(6);

    // Once the logs are purged past it, the old position is refused: not a silent gap.
    await waitFor(async () => (await client.clusterStatus()).collections[0]!.shards.every((s) => s.log && s.log.firstSeq > 2), { what: "the logs purged", timeoutMs: 30_000 });
    await expect(client.changes("live", { from: stale })).rejects.toMatchObject({ code: "out_of_range" });
    // A token of another incarnation is refused too.
    await client.dropCollection("live");
    await client.createCollection({ name: "live", dimension, metric: "l2", shards: 2 });
    await expect(client.changes("live", { from: stale })).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(client.changes("live", { from: "v1.garbage" })).rejects.toMatchObject({ code: "invalid_argument" });
  }, 60_000);

  it("delivers a transaction's changes together at its commit, never an aborted one's, and resumes mid-transaction to the same changes", async () => {
    const nats = await harness.nats();
    await harness.node([nats.url], { nodeId: "t1" });
    const client = await harness.client(nats.url);
    await client.createCollection({ name: "txfeed", dimension, metric: "l2", shards: 1 });
    await client.upsert("txfeed", { points: points(0, 2, "a") });
    const js = jetstream(client.nc);
    const append = async (entry: LogEntry) => (await js.publish(subjects.log("txfeed", 0), encodeEntry(entry))).seq;
    const vector = Float32Array.from([9, 9.5, -9, 1]);
    const p1 = await append({ kind: EntryKind.TxnPrepare, txn: "t1", upsert: { ids: ["p0", "n"], dimension, vectors: Float32Array.from([...vector, ...vector]) }, deleteIds: ["p1"], conditions: [], deadlineAtMs: Date.now() + 60_000 });
    await client.upsert("txfeed", { points: points(0, 1, "waits") }); // p0 again: waits for t1
    await client.upsert("txfeed", { points: points(5, 1, "free") }); // p5: goes on
    const p2 = await append({ kind: EntryKind.TxnPrepare, txn: "t2", deleteIds: ["p5"], conditions: [], deadlineAtMs: Date.now() + 60_000 });
    await append({ kind: EntryKind.TxnAbort, txn: "t2", prepareSeq: p2 });
    await append({ kind: EntryKind.TxnCommit, txn: "t1", prepareSeq: p1, committedAtMs: Date.now() });

    const everything = await all(client, "txfeed", "start");
    const seen = everything.map((c) => `${c.op} ${c.id}${c.payload ? ` ${(c.payload as { tag: string }).tag}` : ""}`);
    expect(seen).toEqual(["upsert p0 a", "upsert p1 a", "upsert p5 free", "upsert p0", "upsert n", "delete p1", "upsert p0 waits"]);
    // t1's changes carry its prepare's sequence.
    expect(everything.slice(3, 6).every((c) => c.seq === p1)).toBe(true);
    // From every position, the rest comes once, in the same order: mid-transaction positions replay from its start.
    for (let i = 0; i < everything.length; i++) {
      expect(await all(client, "txfeed", everything[i]!.position), `after change ${i}`).toEqual(everything.slice(i + 1));
    }
  });

  it("`jade changes` prints JSON lines and where to resume", async () => {
    const nats = await harness.nats();
    await harness.node([nats.url]);
    const client = await harness.client(nats.url);
    await client.createCollection({ name: "cli", dimension, metric: "l2", shards: 2 });
    await client.upsert("cli", { points: points(0, 12, "z") });
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [jadeBin, "changes", "cli", "--from", "start", "--until-caught-up", "--json", "--nats", nats.url], { cwd: repoRoot });
    const lines = stdout.trim().split("\n").map((l) => JSON.parse(l) as Change);
    expect(lines.map((c) => c.id).sort()).toEqual(points(0, 12, "z").map((p) => p.id).sort());
    expect(stderr).toMatch(/^position: v1\.\S+$/m);
    const resumed = await all(client, "cli", /position: (\S+)/.exec(stderr)![1]!);
    expect(resumed).toEqual([]);
  }, 60_000);
});
