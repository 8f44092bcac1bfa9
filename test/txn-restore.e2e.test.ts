/**
 * Restores and transactions (decision 013), on a real node and logs fed transaction entries
 * directly: a restore to an instant includes a transaction on every shard exactly when it
 * committed at or before the instant, whichever side of the cut each shard's marker landed
 * on; a backup taken while a transaction is staged restores without it, and its digest holds.
 */
import { jetstream } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JadeClient } from "../src/client/client.ts";
import { encodeEntry, EntryKind, type LogEntry } from "../src/runtime/log-entry.ts";
import { resolveSharding } from "../src/runtime/sharding/index.ts";
import type { CollectionConfig } from "../src/runtime/schemas.ts";
import { subjects } from "../src/runtime/subjects.ts";
import { Harness, waitFor } from "./support/harness.ts";

const harness = new Harness();
afterAll(() => harness.close());
const dim = 2;
let client: JadeClient;
let config: CollectionConfig;
/** An id on each of the two shards, per tag. */
let idOn: (shard: number, tag: string) => string;

beforeAll(async () => {
  client = await harness.singleNode();
  config = await client.createCollection({ name: "tr", dimension: dim, metric: "l2", shards: 2, replicas: 1 });
  const sharding = resolveSharding(config);
  idOn = (shard, tag) => {
    for (let i = 0; ; i++) if (sharding.shardOf(`${tag}${i}`, [], 0) === shard) return `${tag}${i}`;
  };
  await client.upsert("tr", { points: [0, 1].map((s) => ({ id: idOn(s, "base"), vector: [s, s] })), consistency: "all" });
}, 60_000);

async function append(shard: number, entry: LogEntry): Promise<number> {
  return (await jetstream(client.nc).publish(subjects.log("tr", shard), encodeEntry(entry))).seq;
}

/** A transaction writing one point on each shard: its prepares, and the sequence of each. */
async function prepare(txn: string): Promise<number[]> {
  return Promise.all(
    [0, 1].map((shard) =>
      append(shard, { kind: EntryKind.TxnPrepare, txn, upsert: { ids: [idOn(shard, txn)], dimension: dim, vectors: Float32Array.from([7, 7]) }, deleteIds: [], conditions: [], deadlineAtMs: Date.now() + 60_000 }),
    ),
  );
}
const commit = (txn: string, prepareSeq: number, committedAtMs: number): LogEntry => ({ kind: EntryKind.TxnCommit, txn, prepareSeq, committedAtMs });

/** An instant strictly after everything appended so far, and before anything appended next. */
async function instant(): Promise<Date> {
  const at = Date.now();
  await waitFor(async () => Date.now() > at + 1, { what: "the clock to move", intervalMs: 1 });
  return new Date(at);
}

async function restoredIds(request: Parameters<JadeClient["restore"]>[0], as: string): Promise<string[]> {
  await client.waitForRestore((await client.restore({ ...request, as })).id);
  const ids = ["base", "t1", "t2", "t3"].flatMap((tag) => [0, 1].map((s) => idOn(s, tag)));
  return (await client.get(as, { ids, consistency: "strong" })).points.map((p) => p.id).sort();
}

describe("restores and transactions", () => {
  it("to an instant: a transaction is in on every shard exactly when it committed at or before it", async () => {
    // t1 committed before the instant, its marker on shard 1 only after it.
    const [t1a, t1b] = await prepare("t1");
    const t1At = Date.now();
    await append(0, commit("t1", t1a!, t1At));
    // t2 prepared before the instant, committed after it.
    const [t2a, t2b] = await prepare("t2");
    const at = await instant();
    await append(0, commit("t2", t2a!, at.getTime() + 60_000));
    await append(1, commit("t1", t1b!, t1At));
    await append(1, commit("t2", t2b!, at.getTime() + 60_000));
    const base = [idOn(0, "base"), idOn(1, "base")];
    expect(await restoredIds({ live: "tr", toTime: at.toISOString() }, "tr_at")).toEqual([...base, idOn(0, "t1"), idOn(1, "t1")].sort());
    // Now, everything committed is in.
    expect(await restoredIds({ live: "tr" }, "tr_now")).toEqual([...base, idOn(0, "t1"), idOn(1, "t1"), idOn(0, "t2"), idOn(1, "t2")].sort());
  });

  it("a commit marker inside the cut but committed after the instant is restored as an abort, on every shard", async () => {
    const [a, b] = await prepare("t3");
    await append(0, commit("t3", a!, Date.now() + 3_600_000));
    const at = await instant();
    await append(1, commit("t3", b!, Date.now() + 3_600_000));
    const ids = await restoredIds({ live: "tr", toTime: at.toISOString() }, "tr_skew");
    expect(ids.filter((id) => id.startsWith("t3"))).toEqual([]);
  });

  it("a backup taken while a transaction is staged restores without it, and its digest holds", async () => {
    const [a, b] = await prepare("t4");
    const backup = await client.waitForBackup((await client.createBackup({ collections: ["tr"] })).id);
    expect(backup.state).toBe("complete");
    await append(0, commit("t4", a!, Date.now()));
    await append(1, commit("t4", b!, Date.now()));
    await client.waitForRestore((await client.restore({ backup: backup.id, as: "tr_backup" })).id);
    const t4 = [0, 1].map((s) => idOn(s, "t4"));
    expect((await client.get("tr_backup", { ids: t4, consistency: "strong" })).points).toEqual([]);
    expect((await client.get("tr", { ids: t4, consistency: "strong" })).points.map((p) => p.id).sort()).toEqual([...t4].sort());
  });
});
