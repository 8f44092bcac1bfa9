/**
 * Backups and restores against real servers (a 3-node cluster, RF = 2): a restore gives back
 * exactly what was backed up (ids, vectors, payloads; the same top-k) whatever was written
 * after; an incremental chain restores to each of its cuts; a point-in-time restore from the
 * live logs lands between two acknowledged batches; a flipped byte in any backup file is
 * caught by verify and refused by restore, before anything is created; a backup whose node is
 * killed fails cleanly and `list` never shows it as complete.
 */
import { execFile } from "node:child_process";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { promisify } from "node:util";
import path from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BackupManifest } from "../src/runtime/backup-schemas.ts";
import type { JadeClient } from "../src/client/client.ts";
import { ErrorCode, JadeError } from "../src/runtime/errors.ts";
import type { StoredPoint } from "../src/runtime/schemas.ts";
import { backupFiles } from "../src/actors/backup/store.ts";
import { connectBulk } from "../src/nats/connect.ts";
import { SnapshotStore } from "../src/nats/snapshots.ts";
import { Harness, jadeBin, repoRoot, waitFor, type ChildNode } from "./support/harness.ts";

const harness = new Harness();
afterAll(() => harness.close());

const dimension = 8;
const snapshot = { everyEntries: 4, intervalMs: 300 };

/** Exact float32 vectors, a payload naming the batch. */
function batch(from: number, count: number, tag: string) {
  return Array.from({ length: count }, (_, k) => {
    const i = from + k;
    return { id: `p${i}`, vector: Array.from({ length: dimension }, (_, d) => ((i * 7 + d * 13) % 101) / 4 - 12), payload: { tag, i } };
  });
}

type Contents = Map<string, { vector: number[]; payload: unknown }>;

function apply(state: Contents, points: ReturnType<typeof batch>, deleted: string[] = []): Contents {
  const next = new Map(state);
  for (const p of points) next.set(p.id, { vector: p.vector, payload: p.payload });
  for (const id of deleted) next.delete(id);
  return next;
}

/** Everything the collection holds under the ids ever written, read with strong consistency. */
async function contentsOf(client: JadeClient, collection: string, ids: string[]): Promise<Contents> {
  const out: Contents = new Map();
  for (let i = 0; i < ids.length; i += 500) {
    const { points } = await client.get(collection, { ids: ids.slice(i, i + 500), withVectors: true, consistency: "strong" });
    for (const p of points as StoredPoint[]) out.set(p.id, { vector: p.vector!, payload: p.payload });
  }
  return out;
}

const queries = batch(5_000, 5, "query").map((p) => p.vector);

async function topK(client: JadeClient, collection: string): Promise<string[][]> {
  const out: string[][] = [];
  for (const vector of queries) out.push((await client.search(collection, { vector, k: 10, consistency: "strong" })).hits.map((h) => h.id));
  return out;
}

let client: JadeClient;
let backupDir: string;
let natsUrl: string;

/** What the nodes logged (info and up), parsed. */
const nodeLogs: Record<string, unknown>[] = [];
const nodeDataDirs: string[] = [];

beforeAll(async () => {
  const nats = await harness.nats();
  natsUrl = nats.url;
  const log = pino({ level: "info" }, { write: (line: string) => void nodeLogs.push(JSON.parse(line) as Record<string, unknown>) });
  for (const nodeId of ["n1", "n2", "n3"]) {
    const dataDir = await harness.tempDir("jade-node-");
    nodeDataDirs.push(dataDir);
    await harness.node([nats.url], { nodeId, dataDir, coordinator: { retention: { intervalMs: 300 } }, log });
  }
  client = await harness.client(nats.url);
  await waitFor(async () => (await client.clusterStatus()).nodes.filter((n) => n.live).length === 3, { what: "3 live nodes" });
  backupDir = await harness.tempDir("jade-backups-");
});

describe("backup and restore", () => {
  it("restores exactly what was backed up, as a new collection, whatever was written after", async () => {
    await client.createCollection({ name: "orig", dimension, metric: "l2", shards: 3, replicas: 2, snapshot });
    const first = batch(0, 600, "a");
    for (let i = 0; i < first.length; i += 100) await client.upsert("orig", { points: first.slice(i, i + 100), consistency: "all" });
    await client.delete("orig", { ids: ["p3", "p4", "p5"], consistency: "all" });
    const expected = apply(new Map(), first, ["p3", "p4", "p5"]);
    const expectedTopK = await topK(client, "orig");
    // Shared snapshots are uploaded by each node's upload thread, which may lag the writes on a
    // loaded machine: this backup is to start every shard from one.
    const bulk = await connectBulk([natsUrl], "test-snapshots");
    try {
      const store = new SnapshotStore(bulk.js, 1);
      await waitFor(async () => {
        const all = await store.all();
        return [0, 1, 2].every((shard) => all.some((s) => s.complete && s.collection === "orig" && s.shard === shard));
      }, { what: "a shared snapshot of every shard" });
    } finally {
      await bulk.nc.close();
    }

    const started = await client.createBackup({ collections: ["orig"], to: { dir: backupDir } });
    const done = await client.waitForBackup(started.id);
    expect(done.points).toBe(expected.size);
    // Each shard as a snapshot and the log after it up to the cut (snapshots every 4 entries, 7 entries per shard).
    const { manifest } = JSON.parse(await readFile(path.join(backupDir, started.id, "manifest.json"), "utf8")) as { manifest: BackupManifest };
    const shards = manifest.collections[0]!.shards;
    expect(shards.map((s) => [s.snapshot !== undefined, (s.log?.toSeq ?? s.snapshot?.seq) === s.seq])).toEqual([[true, true], [true, true], [true, true]]);
    // The shards the backup's node holds were copied from its own checkpoints, not through nats-server.
    const planned = nodeLogs.find((line) => line.msg === "backup planned" && line.backup === started.id);
    expect(planned).toMatchObject({ shards: 3 });
    expect(planned!.fromCheckpoints).toBeGreaterThan(0);
    expect(Number(planned!.fromCheckpoints) + Number(planned!.fromStore)).toBe(3);
    // On the nodes' filesystem those are hard links to the checkpoints, not copies.
    const completed = nodeLogs.find((line) => line.msg === "backup complete" && line.backup === started.id);
    expect(completed?.linkedFiles).toBe(planned!.fromCheckpoints);
    // The pins are gone once the backup ends.
    for (const dir of nodeDataDirs) expect(await readdir(path.join(dir, "scratch", "backups", "pinned")).catch(() => [])).toEqual([]);
    expect(shards.reduce((n, s) => n + s.digest.count, 0)).toBe(expected.size);
    // Writes and deletes after the backup are not in it.
    await client.upsert("orig", { points: batch(0, 50, "later"), consistency: "all" });
    await client.delete("orig", { ids: ["p100", "p101"], consistency: "all" });

    const restore = await client.restore({ backup: started.id, as: "copy" });
    const restored = await client.waitForRestore(restore.id);
    const ids = [...batch(0, 600, "").map((p) => p.id)];
    expect(await contentsOf(client, "copy", ids)).toEqual(expected);
    expect((await client.count("copy", { consistency: "strong" })).count).toBe(expected.size);
    expect(await topK(client, "copy")).toEqual(expectedTopK);
    // Its replicas started from the restored snapshots, as replicas of any collection do; those on the
    // node that ran the restore from the file it handed over, without downloading it back.
    const copy = await waitFor(async () => {
      const found = (await client.clusterStatus()).collections.find((c) => c.name === "copy")!;
      return found.shards.every((s) => s.replicas.every((r) => r.restored)) ? found : undefined;
    }, { what: "every replica's start in the status (heartbeats)" });
    const sources = copy.shards.flatMap((s) => s.replicas.map((r) => [r.node, r.restored!.source]));
    expect(sources).toEqual(sources.map(([node]) => [node, node === restored.node ? "checkpoint" : "snapshot"]));
    expect(sources.filter(([node]) => node === restored.node).length).toBeGreaterThan(0);
    // The restored collection takes writes like any other.
    await client.upsert("copy", { points: batch(700, 10, "new"), consistency: "all" });
    expect((await client.count("copy", { consistency: "strong" })).count).toBe(expected.size + 10);
  });

  it("an incremental chain restores to each of its cuts", async () => {
    await client.createCollection({ name: "chain", dimension, metric: "cosine", shards: 2, replicas: 2, snapshot });
    const states: Contents[] = [];
    const ids: string[] = [];
    let state: Contents = new Map();
    const backups: string[] = [];
    const instants: Date[] = [];
    for (let round = 0; round < 3; round++) {
      const points = batch(round * 100, 150, `r${round}`); // overlaps the previous round's ids
      ids.push(...points.map((p) => p.id));
      await client.upsert("chain", { points, consistency: "all" });
      const deleted = round > 0 ? [`p${round * 100 - 1}`] : [];
      if (deleted.length > 0) await client.delete("chain", { ids: deleted, consistency: "all" });
      state = apply(state, points, deleted);
      states.push(state);
      const base = backups.at(-1);
      const started = await client.createBackup({ collections: ["chain"], to: { dir: backupDir }, ...(base ? { incrementalFrom: base } : {}) });
      const done = await client.waitForBackup(started.id);
      expect(done.base).toBe(base);
      backups.push(done.id);
      // After this round's backup, before the next round's writes.
      await new Promise((r) => setTimeout(r, 5));
      instants.push(new Date());
      await new Promise((r) => setTimeout(r, 5));
    }
    for (let round = 0; round < 3; round++) {
      const restore = await client.restore({ backup: backups[round]!, as: `chain${round}` });
      await client.waitForRestore(restore.id);
      expect(await contentsOf(client, `chain${round}`, [...new Set(ids)])).toEqual(states[round]);
    }
    // The newest backup of the chain, to instants between the rounds' writes.
    for (let round = 0; round < 2; round++) {
      const restore = await client.restore({ backup: backups[2]!, as: `chain-at${round}`, toTime: instants[round]!.toISOString() });
      await client.waitForRestore(restore.id);
      expect(await contentsOf(client, `chain-at${round}`, [...new Set(ids)])).toEqual(states[round]);
    }
    // A base an incremental backup builds on is not deleted by accident.
    await expect(client.deleteBackup(backups[1]!)).rejects.toMatchObject({ code: ErrorCode.Conflict });
  });

  it("restores the live collection to an instant between two acknowledged batches, and undoes a bad batch", async () => {
    await client.createCollection({ name: "live", dimension, metric: "l2", shards: 2, replicas: 2, snapshot });
    const good = batch(0, 300, "good");
    await client.upsert("live", { points: good, consistency: "all" });
    // Strictly after the first batch's acknowledgement, and before the second one is sent.
    await new Promise((r) => setTimeout(r, 5));
    const instant = new Date();
    await new Promise((r) => setTimeout(r, 5));
    await client.upsert("live", { points: batch(100, 300, "bad"), consistency: "all" });
    await client.delete("live", { ids: ["p0", "p1"], consistency: "all" });

    const restore = await client.restore({ live: "live", as: "undone", toTime: instant.toISOString() });
    await client.waitForRestore(restore.id);
    expect(await contentsOf(client, "undone", batch(0, 400, "").map((p) => p.id))).toEqual(apply(new Map(), good));
  });

  it("a flipped byte in any backup file is caught by verify and refused by restore, before anything is created", async () => {
    // Five entries per shard: a snapshot at the fourth (by count, none by time) and the fifth in the log.
    await client.createCollection({ name: "fragile", dimension, metric: "l2", shards: 2, replicas: 2, snapshot: { everyEntries: 4, intervalMs: 3_600_000 } });
    for (let i = 0; i < 5; i++) await client.upsert("fragile", { points: batch(i * 50, 50, "f"), consistency: "all" });
    // A backup taken before a shard's snapshot was saved holds its log alone: taken again until it holds both kinds of file.
    const { id, root, files } = await waitFor(async () => {
      const { id } = await client.createBackup({ collections: ["fragile"], to: { dir: backupDir } });
      await client.waitForBackup(id);
      const root = path.join(backupDir, id);
      const files = (await readdir(root, { recursive: true })).map(String).filter((f) => f.endsWith(".snap") || f.endsWith(".jlog") || f === "manifest.json");
      return files.some((f) => f.endsWith(".snap")) && files.some((f) => f.endsWith(".jlog")) ? { id, root, files } : undefined;
    }, { what: "a backup with both snapshots and logs" });
    expect(await client.verifyBackup({ id })).toMatchObject({ id, files: expect.any(Number) });
    const deep = await client.verifyBackup({ id, deep: true });
    expect(deep.deep).toEqual([{ collection: "fragile", points: 250 }]);

    for (const file of files) {
      const full = path.join(root, file);
      const original = await readFile(full);
      const flipped = Buffer.from(original);
      flipped[Math.floor(flipped.length / 2)]! ^= 0x01;
      await writeFile(full, flipped);
      const refused = await client.verifyBackup({ id }).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(refused, file).toBeInstanceOf(JadeError);
      expect((refused as JadeError).code).toBe(ErrorCode.Corrupt);
      expect((refused as JadeError).message).toContain(file === "manifest.json" ? "manifest.json" : file);
      await expect(client.restore({ backup: id, as: "never" })).rejects.toMatchObject({ code: ErrorCode.Corrupt });
      await writeFile(full, original);
    }
    expect((await client.listCollections()).map((c) => c.name)).not.toContain("never");
  });
});

describe("where backups are kept", () => {
  it("in the default bucket; and read by another cluster from its directory, which its catalog does not know", async () => {
    await client.createCollection({ name: "moving", dimension, metric: "ip", shards: 2, replicas: 2, snapshot });
    const points = batch(0, 120, "m");
    await client.upsert("moving", { points, consistency: "all" });
    const inBucket = await client.waitForBackup((await client.createBackup({ collections: ["moving"] })).id);
    expect(inBucket.location).toEqual({ bucket: "jade-backups" });
    await client.waitForRestore((await client.restore({ backup: inBucket.id, as: "moved-bucket" })).id);
    expect(await contentsOf(client, "moved-bucket", points.map((p) => p.id))).toEqual(apply(new Map(), points));
    // A backup of two collections restores under another name only one at a time, named.
    const both = await client.waitForBackup((await client.createBackup({ collections: ["moving", "moved-bucket"] })).id);
    await expect(client.restore({ backup: both.id, as: "one" })).rejects.toMatchObject({ code: ErrorCode.InvalidArgument, message: expect.stringContaining("collections") });
    expect((await client.listCollections()).map((c) => c.name)).not.toContain("one");

    const inDir = await client.waitForBackup((await client.createBackup({ collections: ["moving"], to: { dir: backupDir } })).id);
    const elsewhere = await harness.nats();
    await harness.node([elsewhere.url], { nodeId: "other" });
    const other = await harness.client(elsewhere.url);
    expect(await other.listBackups()).toEqual([]);
    const { manifests } = await other.admin<{ manifests: { id: string }[] }>("backup.list", { from: { dir: backupDir } });
    expect(manifests.map((m) => m.id)).toContain(inDir.id);
    await expect(other.restore({ backup: inDir.id, as: "x" })).rejects.toMatchObject({ code: ErrorCode.NotFound });
    await other.waitForRestore((await other.restore({ backup: inDir.id, from: { dir: backupDir } })).id);
    expect(await contentsOf(other, "moving", points.map((p) => p.id))).toEqual(apply(new Map(), points));
  });

  it("a file whose source fails partway fails its write, in a directory and in a bucket, and nothing crashes", async () => {
    // The fuzz suite found it: a collection dropped while a bucket backup read its log killed the node
    // (the source's error never reached the object-store put). Now the write rejects with it.
    const bulk = await connectBulk([natsUrl], "source-fails");
    try {
      async function* failing(): AsyncIterable<Uint8Array> {
        yield new Uint8Array(64 * 1024).fill(7);
        throw new Error("the log went away");
      }
      for (const location of [{ dir: backupDir }, { bucket: "source-fails" }]) {
        const files = backupFiles(location, "20261205T000000Z-000000", bulk.objm, 1);
        await expect(files.write("shard-0.log", failing()), JSON.stringify(location)).rejects.toThrow("the log went away");
        await files.remove();
      }
      expect((await client.clusterStatus()).nodes.every((n) => n.live)).toBe(true);
    } finally {
      await bulk.nc.close();
    }
  });

  it("from the command line, with the same results", async () => {
    const jade = (...args: string[]) => promisify(execFile)(process.execPath, [jadeBin, ...args, "--nats", natsUrl], { cwd: repoRoot });
    await client.createCollection({ name: "cli", dimension, metric: "l2", shards: 2, replicas: 2, snapshot });
    const points = batch(0, 80, "cli");
    await client.upsert("cli", { points, consistency: "all" });
    const created = JSON.parse((await jade("backup", "create", "--collections", "cli", "--to", backupDir, "--json")).stdout) as { id: string; state: string; points: number };
    expect(created).toMatchObject({ state: "complete", points: 80 });
    expect((await jade("backup", "list")).stdout).toContain(created.id);
    expect((await jade("backup", "verify", created.id)).stdout).toMatch(/every checksum matches/);
    const restored = await jade("restore", created.id, "--as", "cli2");
    expect(restored.stdout).toMatch(/restored cli2: 80 points/);
    expect((await jade("restores")).stdout).toContain("cli → cli2");
    expect(await contentsOf(client, "cli2", points.map((p) => p.id))).toEqual(apply(new Map(), points));
    const refused = await jade("restore", created.id, "--as", "cli2").then(
      () => undefined,
      (err: { code: number; stderr: string }) => err,
    );
    expect(refused?.code).toBe(1);
    expect(refused?.stderr).toMatch(/already_exists/);
  });
});

describe("backups and failures", () => {
  it("a node killed during a backup: another node's death does not stall it; the runner's fails it cleanly, never listed complete", async () => {
    const nats = await harness.nats();
    // Whichever node leads runs the backups: every node is a process that can be killed.
    const nodes = new Map<string, ChildNode>();
    for (const id of ["ka", "kb", "kc"]) nodes.set(id, await harness.spawnJade(["start", "--nats", nats.url, "--data", await harness.tempDir(), "--node-id", id]));
    const c = await harness.client(nats.url);
    await waitFor(async () => (await c.clusterStatus()).nodes.filter((n) => n.live).length === 3, { what: "3 live nodes" });
    const dim = 128;
    await c.createCollection({ name: "big", dimension: dim, metric: "l2", shards: 3, replicas: 2, snapshot: { everyEntries: 1_000, intervalMs: 60_000 } });
    for (let i = 0; i < 8_000; i += 500) {
      const vectors = Float32Array.from({ length: 500 * dim }, (_, k) => Math.sin(i * dim + k));
      await c.upsertColumns("big", { ids: Array.from({ length: 500 }, (_, k) => `b${i + k}`), vectors, consistency: "all" });
    }
    const dir = await harness.tempDir("jade-backups-");
    let sawComplete: string[] = [];
    let survivedId = "";
    let killedId = "";
    const watch = setInterval(() => void c.listBackups().then((list) => (sawComplete = [...sawComplete, ...list.filter((r) => r.state === "complete").map((r) => r.id)]), () => undefined), 200);
    try {
      // ~4 MB of log at 1 MiB/s: several seconds in which to kill a node that does not run it.
      const slow = { collections: ["big"], to: { dir }, bytesPerSecMax: 1 << 20 };
      const survived = await c.createBackup(slow);
      survivedId = survived.id;
      await waitFor(async () => ((await c.listBackups()).find((r) => r.id === survived.id)?.progress.bytesDone ?? 0) > 0, { what: "the backup copying" });
      const bystander = [...nodes.keys()].find((id) => id !== survived.node)!;
      await nodes.get(bystander)!.kill9();
      nodes.delete(bystander);
      const done = await c.waitForBackup(survived.id, { timeoutMs: 120_000 });
      expect(done.points).toBe(8_000);
      expect(await c.verifyBackup({ id: done.id })).toMatchObject({ id: done.id });

      const killed = await c.createBackup(slow);
      killedId = killed.id;
      await waitFor(async () => ((await c.listBackups()).find((r) => r.id === killed.id)?.progress.bytesDone ?? 0) > 0, { what: "the second backup copying" });
      await nodes.get(killed.node)!.kill9();
      nodes.delete(killed.node);
      // The next leader fails it once its heartbeat is stale, and removes what it wrote.
      const failed = await waitFor(async () => (await c.listBackups()).find((r) => r.id === killed.id && r.state === "failed"), { what: "the orphaned backup failed", timeoutMs: 90_000 });
      expect(failed.error?.message).toContain(`${killed.node} stopped`);
      expect(await readdir(dir)).toEqual([survived.id]);
      await expect(c.restore({ backup: killed.id, as: "nope" })).rejects.toMatchObject({ code: ErrorCode.Conflict });
      // Backups go on on the new leader.
      const after = await c.waitForBackup((await c.createBackup({ collections: ["big"], to: { dir } })).id, { timeoutMs: 120_000 });
      expect(after.node).toBe([...nodes.keys()][0]);
      expect(after.points).toBe(8_000);
    } finally {
      clearInterval(watch);
    }
    // Polled every 200 ms throughout: the backup whose node died was never listed complete.
    expect(sawComplete).not.toContain(killedId);
    expect(sawComplete).toContain(survivedId);
  });
});
