/**
 * The operator's side of transactions on real nodes (decision 013, `admin.txns.*`, `jade txns`):
 * records listed and shown; an abort of a transaction left in doubt finishes it at once (record
 * aborted and done, its locks released, its staged point never seen, a plain write to its id
 * then lands); a committed one is refused; a live gateway that loses its commit to an operator
 * tells its client so; the status and the metrics count outcomes and durations; the CLI.
 */
import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { jetstream } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { lockKey, LockTable } from "../src/actors/txn/locks.ts";
import { TxnRecords } from "../src/actors/txn/records.ts";
import type { JadeClient } from "../src/client/client.ts";
import type { JadeNode } from "../src/node.ts";
import { encodeEntry, EntryKind } from "../src/runtime/log-entry.ts";
import { resolveSharding } from "../src/runtime/sharding/index.ts";
import { names, subjects } from "../src/runtime/subjects.ts";
import { Harness, jadeBin, repoRoot, waitFor } from "./support/harness.ts";
import { unversioned } from "./support/points.ts";

const harness = new Harness();
afterAll(() => harness.close());
let natsUrl: string;
let client: JadeClient;
let nodes: JadeNode[];
/** The first transaction the tests commit. */
let committedId: string;

const point = (id: string, x: number) => ({ id, vector: [x, 1], payload: { x } });

beforeAll(async () => {
  const nats = await harness.nats();
  natsUrl = nats.url;
  const http = { port: 0, host: "127.0.0.1" };
  nodes = [await harness.node([nats.url], { nodeId: "ta1", http, workers: 1 }), await harness.node([nats.url], { nodeId: "ta2", http, workers: 1 })];
  await nodes[0]!.nats.config.put(names.formatsKey, JSON.stringify({ log: 2, message: 1 }));
  client = await harness.client(nats.url);
  await client.createCollection({ name: "ta", dimension: 2, metric: "l2", shards: 2, replicas: 2 });
  await client.upsert("ta", { points: [point("held", 1)], consistency: "all" });
}, 60_000);

function jade(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [jadeBin, ...args, "--nats", natsUrl], { cwd: repoRoot, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** A sample's value summed over both nodes' /metrics (any node's gateway may have run a transaction). */
async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
  let sum = 0;
  for (const node of nodes) {
    const text = await (await fetch(`${node.httpUrl}/metrics`)).text();
    for (const line of text.split("\n")) {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (!m || m[1] !== name) continue;
      const have = Object.fromEntries([...(m[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1]!, l[2]!]));
      if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
    }
  }
  return sum;
}

/** A count summed over the nodes of the status (from their heartbeats). */
async function statusCount(pick: (t: NonNullable<Awaited<ReturnType<JadeClient["clusterStatus"]>>["nodes"][number]["txns"]>) => number): Promise<number> {
  return (await client.clusterStatus()).nodes.reduce((n, node) => n + (node.txns ? pick(node.txns) : 0), 0);
}

describe("transaction records", () => {
  it("list and get show a committed transaction's record, newest first, filtered", async () => {
    committedId = (await client.transaction("ta", { ops: [{ op: "upsert", points: [point("c1", 2), point("c2", 3)] }], consistency: "all" })).id;
    const second = (await client.transaction("ta", { ops: [{ op: "delete", ids: ["c2"] }] })).id;
    // A gateway answers once the markers are in, and lets the locks go and marks the record done after.
    await waitFor(async () => (await client.getTransaction(second)).done && (await client.getTransaction(committedId)).done, { what: "both records done" });
    const record = await client.getTransaction(committedId);
    expect(record).toMatchObject({ id: committedId, collection: "ta", state: "committed", done: true });
    expect(record.decidedAtMs).toBeGreaterThanOrEqual(record.createdAtMs);
    expect((await client.listTransactions({ collection: "ta" })).txns.map((t) => t.id)).toEqual([second, committedId]);
    expect(await client.listTransactions({ collection: "ta", limit: 1 })).toEqual({ txns: [await client.getTransaction(second)], more: true });
    expect((await client.listTransactions({ collection: "ta", state: "aborted" })).txns).toEqual([]);
    expect((await client.listTransactions({ collection: "ta", open: true })).txns).toEqual([]);
    expect((await client.listTransactions({ collection: "other" })).txns).toEqual([]);
    await expect(client.getTransaction("t-none")).rejects.toMatchObject({ code: "not_found" });
    await expect(client.getTransaction("a.b")).rejects.toMatchObject({ code: "invalid_argument", message: /transaction id/ });
    // The same over HTTP, where the OpenAPI document names it.
    const res = await fetch(`${nodes[1]!.httpUrl}/v1/admin/txns/get`, { method: "POST", body: JSON.stringify({ id: committedId }) });
    expect(await res.json()).toEqual({ ok: true, result: record });
  });

  it("an abort of a committed transaction is refused with conflict, and changes nothing", async () => {
    const before = await client.getTransaction(committedId);
    await expect(client.abortTransaction(committedId)).rejects.toMatchObject({ code: "conflict", message: `transaction ${committedId} is committed: it cannot be aborted` });
    expect(await client.getTransaction(committedId)).toEqual(before);
    await expect(client.abortTransaction("t-none")).rejects.toMatchObject({ code: "not_found" });
  });

  it("an abort finishes a transaction left in doubt at once: aborted, done, locks released, its point never seen, a plain write then lands", async () => {
    const config = await client.getCollection("ta");
    const shard = resolveSharding(config).shardOf("held", [], 0);
    // A gateway that died after its locks, record and prepare; its deadline is far, so recovery leaves it be.
    const txn = "doubt-op";
    const deadlineAtMs = Date.now() + 3_600_000;
    const locks = new LockTable(nodes[0]!.nats.locks);
    await locks.acquire(config.uid, ["held"], txn, deadlineAtMs, deadlineAtMs);
    const records = new TxnRecords(nodes[0]!.nats.txns);
    await records.create({ id: txn, collection: "ta", uid: config.uid, node: "gone", state: "preparing", done: false, shards: [shard], prepareSeqs: {}, createdAtMs: Date.now(), deadlineAtMs });
    const prepare = encodeEntry({ kind: EntryKind.TxnPrepare, txn, upsert: { ids: ["held"], dimension: 2, vectors: Float32Array.from([9, 9]), payloads: [{ by: txn }] }, deleteIds: [], conditions: [], deadlineAtMs });
    await jetstream(client.nc).publish(subjects.log("ta", shard), prepare);
    const seen = async () => unversioned((await client.get("ta", { ids: ["held"], consistency: "strong" })).points);
    expect(await seen()).toEqual([{ id: "held", payload: { x: 1 } }]);
    expect((await client.listTransactions({ open: true })).txns).toMatchObject([{ id: txn, state: "preparing", done: false }]);

    // A plain write to its point waits for it.
    const plain = client.upsert("ta", { points: [point("held", 5)], consistency: "all", timeoutMs: 30_000 });
    // Awaited below; should a step before fail, its rejection is not reported a second time, unhandled.
    plain.catch(() => undefined);
    const aborted = await client.abortTransaction(txn);
    expect(aborted).toMatchObject({ id: txn, state: "aborted", done: true, reason: "aborted by an operator" });
    // Released, and no delete marker left behind for listings to walk (nats/kv-keys.ts).
    expect(await nodes[0]!.nats.locks.get(lockKey(config.uid, "held"))).toBeNull();
    expect(await nodes[0]!.nats.locks.listKeys(`${config.uid}.>`)).toEqual([]);
    await plain;
    expect(await seen()).toEqual([{ id: "held", payload: { x: 5 } }]);
    // Again: answered as it is.
    expect(await client.abortTransaction(txn)).toEqual(aborted);
  });

  it("a live gateway that loses its commit to an operator's abort tells its client conflict, with the record's reason", async () => {
    const decide = TxnRecords.prototype.decide;
    let reached!: (id: string) => void;
    const atCommit = new Promise<string>((resolve) => (reached = resolve));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    // The gateway's commit CAS waits until the operator's abort is done: the race, made certain.
    const spy = vi.spyOn(TxnRecords.prototype, "decide").mockImplementation(async function (this: TxnRecords, ...args: Parameters<TxnRecords["decide"]>) {
      if (args[1] === "committed") {
        reached(args[0]);
        await gate;
      }
      return decide.apply(this, args);
    });
    try {
      const answer = client.transaction("ta", { ops: [{ op: "upsert", points: [point("lost", 7)] }] }).then(
        () => undefined,
        (err: unknown) => err,
      );
      const id = await atCommit;
      expect(await client.abortTransaction(id)).toMatchObject({ state: "aborted", done: true, reason: "aborted by an operator" });
      release();
      expect(await answer).toMatchObject({ code: "conflict", message: `transaction ${id} aborted: aborted by an operator` });
    } finally {
      release();
      spy.mockRestore();
    }
    expect((await client.get("ta", { ids: ["lost"], consistency: "strong" })).points).toEqual([]);
  });

  it("the status and the metrics count outcomes and durations", async () => {
    const before = {
      committed: await metric("jade_transactions_total", { outcome: "committed" }),
      conflict: await metric("jade_transactions_total", { outcome: "conflict" }),
      timed: await metric("jade_transaction_duration_seconds_count"),
    };
    // The earlier tests: an operator's aborts were finished by recovery's code, and the lost commit counted aborted.
    expect(await metric("jade_transactions_recovered_total", { outcome: "aborted" })).toBe(2);
    expect(await metric("jade_transactions_total", { outcome: "aborted" })).toBe(1);
    await client.transaction("ta", { ops: [{ op: "upsert", points: [point("m1", 1)] }] });
    await expect(client.transaction("ta", { ops: [{ op: "upsert", points: [point("m2", 1)] }], conditions: [{ id: "m1", exists: false }] })).rejects.toMatchObject({ code: "conflict" });
    expect(await metric("jade_transactions_total", { outcome: "committed" })).toBe(before.committed + 1);
    expect(await metric("jade_transactions_total", { outcome: "conflict" })).toBe(before.conflict + 1);
    expect(await metric("jade_transaction_duration_seconds_count")).toBe(before.timed + 2);
    expect(await metric("jade_transactions_running")).toBe(0);
    // The status has them from the heartbeats (at most a second old).
    await waitFor(async () => (await statusCount((t) => t.committed)) === before.committed + 1 && (await statusCount((t) => t.conflicts)) === before.conflict + 1, { what: "the status to count them" });
    expect(await statusCount((t) => t.recovered.aborted)).toBe(2);
    const timed = (await client.clusterStatus()).nodes.flatMap((n) => (n.txns?.recentMs ? [n.txns.recentMs] : []));
    expect(timed.reduce((n, t) => n + t.count, 0)).toBe(before.timed + 2);
    for (const t of timed) expect(t.p99).toBeGreaterThanOrEqual(t.p50);
  });
});

describe("the CLI", () => {
  it("lists, shows, and refuses to abort a committed transaction", async () => {
    const list = await jade(["txns", "list", "--collection", "ta"]);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/^id\s+collection\s+state\s+shards\s+gateway\s+created\s+took\s+reason/);
    expect(list.stdout).toMatch(new RegExp(`^${committedId}\\s+ta\\s+committed\\s`, "m"));
    const json = JSON.parse((await jade(["txns", "list", "--state", "aborted", "--json"])).stdout) as { txns: { id: string }[] };
    expect(json.txns.map((t) => t.id)).toContain("doubt-op");
    const get = await jade(["txns", "get", "doubt-op"]);
    expect(get.code, get.stderr).toBe(0);
    expect(get.stdout).toMatch(/^state:\s+aborted$/m);
    expect(get.stdout).toMatch(/^reason:\s+aborted by an operator$/m);
    const refused = await jade(["txns", "abort", committedId]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`error: conflict: transaction ${committedId} is committed`);
    const again = await jade(["txns", "abort", "doubt-op", "--json"]);
    expect(JSON.parse(again.stdout)).toMatchObject({ id: "doubt-op", state: "aborted", done: true });
  });

  it("jade transaction runs one from a file, and refuses a failed condition with conflict", async () => {
    const file = path.join(await harness.tempDir(), "txn.json");
    await writeFile(file, JSON.stringify({ ops: [{ op: "upsert", points: [point("cli1", 1), point("cli2", 2)] }], conditions: [{ id: "cli1", exists: false }] }));
    const ran = await jade(["transaction", "ta", file]);
    expect(ran.code, ran.stderr).toBe(0);
    expect(ran.stdout).toMatch(/^transaction t\w+ committed: upserted 2 points, deleted 0 ids$/m);
    expect((await client.get("ta", { ids: ["cli1", "cli2"], consistency: "strong" })).points).toHaveLength(2);
    const again = await jade(["transaction", "ta", file, "--json"]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/error: conflict: transaction t\w+ aborted: .*cli1/);
    const garbled = await jade(["transaction", "ta", repoRoot + "/package.json"]);
    expect(garbled.code).toBe(1);
    expect(garbled.stderr).toMatch(/error: invalid_argument/);
  });

  it("jade status shows each node's transactions", async () => {
    const status = await jade(["status"]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/^node\s.*\stransactions$/m);
    expect(status.stdout).toMatch(/\d+ committed, \d+ conflicts, \d+ aborted.*; p50 [\d.]+ ms, p99 [\d.]+ ms/);
  });
});
