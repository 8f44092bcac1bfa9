/**
 * A replica on a real node and a real JetStream log, fed transaction entries appended to its
 * shard log directly (decision 013; the gateway that writes them is the next step): staged ops
 * are invisible until the commit, a plain write to a staged id waits for the marker (its
 * acknowledgement too) and takes effect after it, votes answer over the replica protocol, and
 * a node restarted while a transaction is staged picks up where it was.
 */
import { jetstream } from "@nats-io/jetstream";
import { afterAll, describe, expect, it } from "vitest";
import type { JadeClient } from "../src/client/client.ts";
import { requestReplica, type TxnVoteReply } from "../src/actors/replica/protocol.ts";
import { versionOf } from "../src/actors/vector-index/points.ts";
import { encodeEntry, EntryKind, type LogEntry, type TxnCondition } from "../src/runtime/log-entry.ts";
import { names, subjects } from "../src/runtime/subjects.ts";
import { Harness, waitFor } from "./support/harness.ts";
import { unversioned } from "./support/points.ts";

const harness = new Harness();
afterAll(() => harness.close());

const dim = 2;
function prepare(txn: string, write: string[], conditions: TxnCondition[] = []): LogEntry {
  return {
    kind: EntryKind.TxnPrepare,
    txn,
    upsert: { ids: write, dimension: dim, vectors: Float32Array.from(write.flatMap(() => [9, 9])), payloads: write.map(() => ({ by: txn })) },
    deleteIds: [],
    conditions,
    deadlineAtMs: Date.now() + 60_000,
  };
}

describe("a replica fed transaction entries", () => {
  it("stages, votes, holds a plain write behind the transaction, and commits atomically; a restart keeps what is staged", async () => {
    const nats = await harness.nats();
    const dataDir = await harness.tempDir();
    let node = await harness.node([nats.url], { nodeId: "r1", dataDir });
    const client: JadeClient = await harness.client(nats.url);
    await client.createCollection({ name: "tx", dimension: dim, metric: "l2", shards: 1, replicas: 1 });
    const first = await client.upsert("tx", { points: [{ id: "a", vector: [1, 1] }, { id: "b", vector: [2, 2] }], consistency: "all" });
    const uid = (await client.getCollection("tx")).uid;
    const js = jetstream(client.nc);
    const append = async (entry: LogEntry) => (await js.publish(subjects.log("tx", 0), encodeEntry(entry))).seq;
    const vote = (txn: string, seq: number) =>
      requestReplica<TxnVoteReply>(client.nc, { node: "r1", collection: "tx", shard: 0, op: "vote" }, { uid, minSeq: seq, timeoutMs: 5_000, vote: { txn } }, 5_000);

    const aVersion = versionOf(first.token["0"]!, 0);
    const p1 = await append(prepare("t1", ["a", "n"], [{ id: "a", version: aVersion }, { id: "n", exists: false }]));
    expect(await vote("t1", p1)).toEqual({ yes: true, outcome: "staged", prepareSeq: p1 });
    const p2 = await append(prepare("t2", ["b"], [{ id: "b", version: 1 }]));
    // A failed condition: a no, and staged all the same until its abort (staging follows the log alone).
    expect(await vote("t2", p2)).toEqual({ yes: false, reason: `point "b" has version ${versionOf(first.token["0"]!, 1)}, not 1`, outcome: "staged", prepareSeq: p2 });
    expect(await vote("never", p2)).toMatchObject({ yes: false, outcome: "unknown" });
    // Staged: invisible to every read.
    expect((await client.get("tx", { ids: ["a", "n"], consistency: "strong" })).points).toEqual([{ id: "a", version: aVersion }]);
    expect((await client.count("tx", { consistency: "strong" })).count).toBe(2);

    // A restart while it is staged: the checkpoint at shutdown keeps it (and its vote).
    await node.stop();
    node = await harness.node([nats.url], { nodeId: "r1", dataDir });
    await waitFor(async () => (await client.clusterStatus()).collections[0]?.shards[0]?.replicas[0]?.state === "serving", { what: "the replica serving again" });
    expect(await vote("t1", p1)).toEqual({ yes: true, outcome: "staged", prepareSeq: p1 });
    expect((await client.get("tx", { ids: ["a", "n"], consistency: "strong" })).points).toEqual([{ id: "a", version: aVersion }]);

    // A plain write to a staged id waits for the transaction, acknowledgement included.
    let acknowledged = false;
    const plain = client.upsert("tx", { points: [{ id: "a", vector: [3, 3], payload: { by: "plain" } }], consistency: "all", timeoutMs: 30_000 }).then((r) => {
      acknowledged = true;
      return r;
    });
    const stream = await js.streams.get(names.logStream("tx", 0));
    await waitFor(async () => (await stream.info()).state.last_seq === p2 + 1, { what: "the plain write appended" });
    // Read by the replica (a vote waits for that), and held: a read sees the value from before
    // it, and a strong read, which waits for the last entry to take effect, cannot be answered.
    expect(await vote("never", p2 + 1)).toMatchObject({ outcome: "unknown" });
    expect((await client.get("tx", { ids: ["a"], consistency: "eventual" })).points).toEqual([{ id: "a", version: aVersion }]);
    expect(await client.get("tx", { ids: ["a"], consistency: "strong", timeoutMs: 300 })).toMatchObject({ points: [], partial: true });
    expect(acknowledged).toBe(false);

    await append({ kind: EntryKind.TxnCommit, txn: "t1", prepareSeq: p1, committedAtMs: Date.now() });
    await append({ kind: EntryKind.TxnAbort, txn: "t2", prepareSeq: p2 });
    await plain;
    // The transaction took effect, then the write that waited for it.
    const points = (await client.get("tx", { ids: ["a", "b", "n"], consistency: "strong" })).points;
    // The transaction's point has the version its prepare gave it.
    expect(unversioned(points)).toEqual([{ id: "a", payload: { by: "plain" } }, { id: "b" }, { id: "n", payload: { by: "t1" } }]);
    expect(points[2]!.version).toBe(versionOf(p1, 1));
    expect(await vote("t1", p1)).toEqual({ yes: true, outcome: "committed" });
    expect(await vote("t2", p2)).toMatchObject({ yes: false, outcome: "aborted" });
  });
});
