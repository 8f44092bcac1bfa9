/**
 * Log retention against real servers: the coordinator purges each shard log down to the
 * newest snapshot (or what a replica or the point-in-time window still needs), deletes the
 * snapshots no restore needs, and shows it all in the status; a follower whose entries
 * were purged from under it stops and restores instead of skipping them; overwriting the
 * same ids does not grow the disk, and deleting shrinks it; a dropped collection leaves
 * nothing behind.
 */
import { readdir, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterAll, describe, expect, it } from "vitest";
import { followLog, isLogPurgedError } from "../src/actors/replica/follow.ts";
import { worthResaving } from "../src/machines/replica-snapshots.ts";
import type { JadeClient } from "../src/client/client.ts";
import { ErrorCode, JadeError } from "../src/runtime/errors.ts";
import { SnapshotStore } from "../src/nats/snapshots.ts";
import type { ClusterStatus } from "../src/runtime/status.ts";
import { Harness, waitFor } from "./support/harness.ts";
import { randomVectors, seededRandom } from "./support/random.ts";

const harness = new Harness();
afterAll(() => harness.close());

const dimension = 64;
/** Fast passes and snapshots, so a test sees the floor move in seconds. */
const nodeOptions = { coordinator: { retention: { intervalMs: 200 } } };
const snapshot = { everyEntries: 1_000_000, intervalMs: 500 };

async function bytesUnder(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) total += (await stat(path.join(entry.parentPath, entry.name)).catch(() => ({ size: 0 }))).size;
  }
  return total;
}

/** Upserts, retrying while back-pressure refuses the batch (the graph is absorbing). */
async function upsert(client: JadeClient, collection: string, ids: string[], vectors: Float32Array, payloads?: { n: number }[]): Promise<void> {
  await waitFor(
    () =>
      client.upsertColumns(collection, { ids, vectors, ...(payloads ? { payloads } : {}) }).then(
        () => true,
        (err: unknown) => {
          if (err instanceof JadeError && err.code === ErrorCode.RateLimited) return false;
          throw err;
        },
      ),
    { what: "an upsert past back-pressure", timeoutMs: 60_000 },
  );
}

function shardsOf(status: ClusterStatus, name: string) {
  return status.collections.find((c) => c.name === name)?.shards ?? [];
}

describe("log retention", () => {
  it("overwriting the same ids keeps the disk within 2.5 × the live data: logs purged to the snapshot, old snapshots deleted", async () => {
    const natsDir = await harness.tempDir("jade-nats-");
    const nodeDir = await harness.tempDir("jade-node-");
    const nats = await harness.nats(natsDir);
    // As `jade dev` runs it: the node's data and the object store on one disk, one copy of each snapshot.
    const node = await harness.node([nats.url], { ...nodeOptions, dataDir: nodeDir, replica: { keepUploadedCheckpoint: false } });
    const client = await harness.client(nats.url);
    const dimension = 128;
    await client.createCollection({ name: "churn", dimension, metric: "l2", shards: 2, snapshot, retention: { pointInTimeMs: 0 } });
    const ids = Array.from({ length: 20_000 }, (_, i) => `id-${i}`);
    const random = seededRandom(3);
    const diskAfter: number[] = [];
    const settleMs: Record<string, number> = {};
    const settle = async (what: string) => {
      const t0 = performance.now();
      // Settled: every shard applied everything, saved a snapshot of it, and purged its log to there
      // (the retention state is the last pass's: it must have seen the log's current end); its graph
      // absorbed everything and no re-save of it is due (or one came, and the snapshot it replaced is gone).
      // The last state seen, for the message if it never settles.
      let last = "";
      await waitFor(
        async () => {
          const shards = shardsOf(await client.clusterStatus(), "churn");
          const purged = shards.length === 2 && shards.every((s) => s.log && s.log.lastSeq > 0 && s.log.lastSeq === s.replicas[0]?.lastSeq && s.log.floor === s.log.lastSeq && s.log.messages === 0);
          const absorbed = shards.every((s) => s.replicas.every((r) => r.pending === 0 && !worthResaving(r.snapshotUnabsorbed ?? 0, r.count ?? 0)));
          const snapshots = (await new SnapshotStore(node.nats.js, 1).all()).filter((o) => o.collection === "churn");
          // …and no checkpoint is left beside its uploaded snapshot (it is deleted right after the upload).
          const checkpoints = (await readdir(nodeDir, { recursive: true })).filter((f) => String(f).endsWith(".snap"));
          last = JSON.stringify({
            log: shards.map((s) => s.log),
            replicas: shards.map((s) => s.replicas.map((r) => ({ lastSeq: r.lastSeq, pending: r.pending, count: r.count, snapshotUnabsorbed: r.snapshotUnabsorbed }))),
            snapshots: snapshots.map((o) => [o.shard, o.seq, o.complete]),
            checkpoints,
          });
          return purged && absorbed && snapshots.length === 2 && checkpoints.length === 0;
        },
        { what, timeoutMs: 60_000 },
      ).catch((err: unknown) => {
        throw new Error(`${String(err)}; last seen: ${last}`);
      });
      settleMs[what] = Math.round(performance.now() - t0);
      return (await bytesUnder(natsDir)) + (await bytesUnder(nodeDir));
    };
    for (let round = 0; round < 10; round++) {
      for (let from = 0; from < ids.length; from += 2_000) {
        const batch = ids.slice(from, from + 2_000);
        await upsert(client, "churn", batch, randomVectors(random, batch.length, dimension), batch.map((_, i) => ({ n: round * 100_000 + from + i })));
      }
      if (round === 1 || round === 9) diskAfter.push(await settle(`round ${round} purged`));
    }
    await client.delete("churn", { ids: ids.filter((_, i) => i % 2 === 0) });
    const final = await settle("the deletes purged");
    expect(await client.count("churn", {})).toMatchObject({ count: 10_000 });

    // The disk does not grow with overwrites: after two rounds and after ten it holds at most
    // 2.5 × the live vectors and payloads (ten rounds' entries would be 10 ×). The exact size
    // varies a little with how much of the graph had absorbed its points when the snapshot was
    // taken (points still pending are not in usearch's file), so no closer comparison is made.
    const liveBytes = (count: number) => count * (dimension * 4 + JSON.stringify({ n: 999_999 }).length);
    expect(diskAfter[0]!).toBeLessThan(2.5 * liveBytes(20_000));
    expect(diskAfter[1]!).toBeLessThan(2.5 * liveBytes(20_000));
    // Deleting half shrinks it to 2.5 × of what is left: the snapshot after the deletes holds the
    // live points' vectors only and a graph rebuilt without the removed nodes (compaction.ts).
    expect(final).toBeLessThan(2.5 * liveBytes(10_000));
    // The uploaded checkpoints were not kept beside the snapshots.
    expect((await readdir(nodeDir, { recursive: true })).filter((f) => String(f).endsWith(".snap"))).toEqual([]);
    const status = shardsOf(await client.clusterStatus(), "churn");
    for (const s of status) expect(s.log!.heldBy).toMatch(/^snapshot \d+$/);
    // One snapshot per shard is left: the newest, at the floor.
    const snapshots = new SnapshotStore(node.nats.js, 1);
    const objects = (await snapshots.all()).filter((o) => o.collection === "churn");
    expect(objects.map((o) => [o.shard, o.complete]).sort()).toEqual([[0, true], [1, true]]);
    for (const o of objects) expect(o.seq).toBe(status[o.shard]!.log!.floor);

    // A point-in-time window, set later, holds the log from then on; setting it back to 0 lets the floor move again.
    const updated = await client.updateCollection({ name: "churn", retention: { pointInTimeMs: 3_600_000 } });
    expect(updated.retention).toEqual({ pointInTimeMs: 3_600_000 });
    expect((await client.getCollection("churn")).retention).toEqual({ pointInTimeMs: 3_600_000 });
    await upsert(client, "churn", ids.slice(0, 2_000), randomVectors(random, 2_000, dimension));
    const held = await waitFor(
      async () => {
        const shards = shardsOf(await client.clusterStatus(), "churn");
        return shards.every((s) => s.log?.heldBy === "point-in-time window" && s.log.messages > 0) && shards;
      },
      { what: "the window holding the new entries" },
    );
    expect(held.map((s) => s.log!.floor)).toEqual(status.map((s) => s.log!.floor));
    await expect(client.updateCollection({ name: "churn", retention: { pointInTimeMs: -1 } })).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(client.updateCollection({ name: "nope", retention: { pointInTimeMs: 0 } })).rejects.toMatchObject({ code: "not_found" });
    await client.updateCollection({ name: "churn", retention: { pointInTimeMs: 0 } });
    await settle("purged again once the window is 0");

    // Dropped: its logs, snapshots and retention state are gone.
    await client.dropCollection("churn");
    await waitFor(async () => (await snapshots.all()).every((s) => s.collection !== "churn"), { what: "the snapshots deleted" });
    await waitFor(async () => (await node.nats.retention.get("churn"))?.operation !== "PUT", { what: "the retention state purged" });
    await expect(node.nats.jsm.streams.info("jade-log-churn-0")).rejects.toThrow();
    process.stdout.write(
      `retention: data directory ${diskAfter[1]} bytes after the overwrites = ${(diskAfter[1]! / liveBytes(20_000)).toFixed(2)} ×, ${final} after deleting half = ${(final / liveBytes(10_000)).toFixed(2)} × the live vectors and payloads; settled in ${JSON.stringify(settleMs)} ms\n`,
    );
  }, 240_000);
});

describe("a node away past the floor", () => {
  it("comes back through a snapshot, not its stale checkpoint and a log that no longer holds what follows it", async () => {
    const nats = await harness.nats();
    // n2 starts first and leads: it writes the shared snapshots and runs the retention passes.
    // No restart delay: n1's clean stop is not a restart it is held for (departures.ts), so the log may move on.
    await harness.node([nats.url], { nodeId: "n2", coordinator: { retention: { intervalMs: 200 }, nodeDeadAfterMs: 4_000, restartDelayMs: 0 } });
    const client = await harness.client(nats.url);
    await client.createCollection({ name: "away", dimension, metric: "l2", shards: 1, replicas: 2, snapshot, retention: { pointInTimeMs: 0 } });
    const data = await harness.tempDir();
    const start = () => harness.spawnJade(["start", "--nats", nats.url, "--node-id", "n1", "--data", data], { env: { JADE_LOG_LEVEL: "info" } });
    let n1 = await start();
    const shard = async () => shardsOf(await client.clusterStatus(), "away")[0];
    const on = (s: Awaited<ReturnType<typeof shard>>, node: string) => s?.replicas.find((r) => r.node === node);
    await waitFor(async () => on(await shard(), "n1")?.state === "serving", { what: "n1 serving", timeoutMs: 30_000 });
    const random = seededRandom(9);
    const write = async (from: number, count: number) => {
      const ids = Array.from({ length: count }, (_, i) => `a${from + i}`);
      await upsert(client, "away", ids, randomVectors(random, count, dimension));
    };
    for (let b = 0; b < 10; b++) await write(b * 100, 100);
    const stoppedAt = await waitFor(async () => {
      const mine = on(await shard(), "n1");
      return mine && mine.appliedSeq === mine.lastSeq && mine.appliedSeq >= 10 && mine.appliedSeq;
    }, { what: "n1 applied everything" });
    await n1.stop();

    // While n1 is away, n2 takes writes, snapshots them, and the log is purged past n1's checkpoint.
    for (let b = 10; b < 20; b++) await write(b * 100, 100);
    await waitFor(async () => ((await shard())?.log?.firstSeq ?? 0) > stoppedAt + 1, { what: "the log purged past n1's checkpoint", timeoutMs: 30_000 });

    n1 = await start();
    const back = await waitFor(async () => {
      const s = await shard();
      const mine = on(s, "n1");
      return mine?.state === "serving" && mine.lag === 0 && mine.count === 2_000 && on(s, "n2")?.count === 2_000 && mine.restored && mine;
    }, { what: "n1 back and caught up", timeoutMs: 60_000 });
    expect(["peer", "snapshot"]).toContain(back.restored!.source);
    expect(back.restored!.seq).toBeGreaterThan(stoppedAt);
    expect(n1.output.join("\n")).toContain("local checkpoint no longer matches the log");
  }, 120_000);
});

describe("a follower whose entries were purged", () => {
  it("stops with log_purged instead of skipping them, at start and while following", async () => {
    const nats = await harness.nats();
    const nc = await connect({ servers: nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      const js = jetstream(nc);
      await jsm.streams.add({ name: "gap", subjects: ["gap.x"] });
      for (let i = 1; i <= 10; i++) await js.publish("gap.x", new Uint8Array([i]));
      await jsm.streams.purge("gap", { seq: 4 }); // 1–3 gone
      const signal = new AbortController().signal;
      const apply = async (records: { seq: number }[]) => ({ appliedSeq: records.at(-1)!.seq, count: 0 });
      const fromStart = followLog({ js, jsm, stream: "gap", fromSeq: 2, apply, onProgress: () => undefined, signal });
      await expect(fromStart).rejects.toSatisfy(isLogPurgedError);

      // Following from 4, one entry at a time; 5–8 are purged while entry 4 is being applied.
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      const applied: number[] = [];
      const following = followLog({
        js,
        jsm,
        stream: "gap",
        fromSeq: 4,
        apply: async (records) => {
          applied.push(...records.map((r) => r.seq));
          if (records[0]!.seq === 4) await held;
          return { appliedSeq: records.at(-1)!.seq, count: 0 };
        },
        onProgress: () => undefined,
        signal,
        limits: { batchEntriesMax: 1, batchBytesMax: 1, bufferEntriesMax: 1, stallCheckMs: 200 },
      });
      await waitFor(() => applied.includes(4), { what: "entry 4 in apply" });
      await jsm.streams.purge("gap", { seq: 9 });
      release();
      await expect(following).rejects.toSatisfy(isLogPurgedError);
      expect(applied.every((seq, i) => i === 0 || seq === applied[i - 1]! + 1)).toBe(true); // nothing skipped
      expect(applied).not.toContain(9);
    } finally {
      await nc.close();
    }
  });
});

describe("two snapshots of one sequence", () => {
  it("the second upload goes beside the first, which stays whole; the second is the newest", async () => {
    // A replica saves again at the same sequence once its graph absorbed what a save left out, and a newly
    // designated replica may save where its predecessor did: one bucket name for both once cost the first.
    const nats = await harness.nats();
    const nc = await connect({ servers: nats.url });
    try {
      const snapshots = new SnapshotStore(jetstream(nc), 1);
      const dir = await harness.tempDir("jade-snapfiles-");
      const first = path.join(dir, "first");
      const again = path.join(dir, "again");
      await writeFile(first, Buffer.alloc(300_000, 1));
      await writeFile(again, Buffer.alloc(200_000, 2));
      const a = await snapshots.upload("twice", "uid-1", 0, 40, first);
      const b = await snapshots.upload("twice", "uid-1", 0, 40, again);
      expect(b.name).not.toBe(a.name);
      expect((await snapshots.list("twice", "uid-1", 0)).map((s) => s.name)).toEqual([b.name, a.name]);
      const bytesOf = async (name: string) => {
        let n = 0;
        for await (const chunk of snapshots.read(name)) n += chunk.byteLength;
        return n;
      };
      expect(await bytesOf(a.name)).toBe(300_000);
      expect(await bytesOf(b.name)).toBe(200_000);
      // A paced upload whose file is gone (a restarting replica discarded its checkpoint) fails, and
      // leaves no bucket: the read stream's error once went unhandled and killed the node (chaos suite).
      await expect(snapshots.upload("twice", "uid-1", 0, 41, path.join(dir, "deleted"), async () => undefined)).rejects.toThrow(/ENOENT/);
      expect((await snapshots.all()).filter((s) => s.seq === 41)).toEqual([]);
    } finally {
      await nc.close();
    }
  });
});
