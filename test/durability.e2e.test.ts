/**
 * Nothing acknowledged is lost: a node killed with -9 in the middle of
 * ingestion, restarted, holds every acknowledged write exactly once — restored
 * from a snapshot plus the rest of the log. And the one-command `jade dev`
 * survives kill -9 of itself and its nats-server.
 */
import { readdir, truncate } from "node:fs/promises";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { JadeClient } from "../src/client/client.ts";
import { Harness, jadeBin, randomPoints, waitFor } from "./support/harness.ts";

const harness = new Harness();
afterAll(() => harness.close());

const dimension = 8;

/** Writes batches until stopped; returns the ids whose write was acknowledged. */
function writeLoop(client: JadeClient, collection: string, seed: number) {
  const acked = new Set<string>();
  const attempted = new Set<string>();
  let stopped = false;
  let batches = 0;
  const done = (async () => {
    for (let b = 0; !stopped; b++) {
      const vectors = randomPoints(50, dimension, seed + b);
      const points = vectors.map((vector, i) => ({ id: `b${b}-${i}`, vector, payload: { batch: b } }));
      points.forEach((p) => attempted.add(p.id));
      try {
        await client.upsert(collection, { points, requestId: `w${seed}-${b}`, timeoutMs: 2_000 });
        points.forEach((p) => acked.add(p.id));
        batches++;
      } catch {
        // Unacknowledged: may or may not have landed. Try the next batch.
      }
    }
  })();
  return {
    acked,
    attempted,
    batches: () => batches,
    stop: async () => {
      stopped = true;
      await done;
    },
  };
}

async function assertAllPresentOnce(client: JadeClient, collection: string, acked: Set<string>, attempted: Set<string>) {
  const ids = [...attempted];
  const found = new Set<string>();
  for (let i = 0; i < ids.length; i += 1_000) {
    const { points, partial } = await client.get(collection, { ids: ids.slice(i, i + 1_000), consistency: "strong" });
    expect(partial).toBe(false);
    points.forEach((p) => found.add(p.id));
  }
  const lost = [...acked].filter((id) => !found.has(id));
  expect(lost).toEqual([]);
  // Applied exactly once: the index holds one point per distinct id that landed.
  const { count } = await client.count(collection, { consistency: "strong" });
  expect(count).toBe(found.size);
}

describe("kill -9 and restart", () => {
  it("a node killed during ingestion restarts with every acknowledged write, once", async () => {
    const nats = await harness.nats();
    const data = await harness.tempDir();
    const first = await harness.spawnJade(["start", "--nats", nats.url, "--data", data, "--node-id", "n1"]);
    const client = await harness.client(nats.url);
    await client.createCollection({
      name: "crash",
      dimension,
      metric: "l2",
      shards: 2,
      snapshot: { everyEntries: 5, intervalMs: 1_000 },
    });
    const writer = writeLoop(client, "crash", 1);
    // Let snapshots happen (every 5 entries per shard), then crash mid-stream.
    await waitFor(() => writer.batches() >= 30, { what: "30 acknowledged batches" });
    await first.kill9();
    await writer.stop();
    expect(writer.acked.size).toBeGreaterThanOrEqual(30 * 50);

    const second = await harness.spawnJade(["start", "--nats", nats.url, "--data", data, "--node-id", "n1"]);
    let lastStatus: unknown;
    const restarted = await waitFor(async () => {
      const status = await client.clusterStatus();
      const shards = status.collections.find((c) => c.name === "crash")?.shards ?? [];
      lastStatus = shards;
      return shards.length === 2 && shards.every((s) => s.replicas[0]?.state === "serving" && s.replicas[0].lag === 0) && shards;
    }, { what: "both shards serving after restart", timeoutMs: 90_000 }).catch((err) => {
      throw new Error(`${err.message}\nstatus: ${JSON.stringify(lastStatus)}\nnode output:\n${second.output.slice(-30).join("\n")}`);
    });
    // The restart started from its last periodic checkpoint (kill -9 leaves no shutdown one)
    // rather than replaying everything from sequence 1.
    for (const shard of restarted) expect(shard.replicas[0]!.restored).toMatchObject({ source: "checkpoint", seq: expect.any(Number) });
    expect(restarted.every((s) => s.replicas[0]!.restored!.seq > 0)).toBe(true);
    expect(second.output.join("\n")).not.toContain("replica failed");
    await assertAllPresentOnce(client, "crash", writer.acked, writer.attempted);
  });

  it("`jade dev` killed with -9 together with its nats-server comes back with its data", async () => {
    const data = await harness.tempDir();
    const first = await harness.spawnJade(["dev", "--data", data, "--nats-port", "0", "--http-port", "0"]);
    expect(first.readyLine).toMatch(/ready .*nats=nats:\/\/127\.0\.0\.1:\d+/);
    let client = await JadeClient.connect({ servers: first.natsUrl });
    await client.createCollection({ name: "devcrash", dimension, metric: "cosine", shards: 2 });
    const writer = writeLoop(client, "devcrash", 2);
    await waitFor(() => writer.batches() >= 10, { what: "10 acknowledged batches" });
    await first.kill9(); // its nats-server child survives the parent: the restart must deal with it
    await writer.stop();
    await client.close();

    const second = await harness.spawnJade(["dev", "--data", data, "--nats-port", "0", "--http-port", "0"]);
    client = await harness.client(second.natsUrl);
    await waitFor(async () => (await client.count("devcrash", { consistency: "strong" })).partial === false, {
      what: "devcrash readable",
    });
    await assertAllPresentOnce(client, "devcrash", writer.acked, writer.attempted);
    await second.stop();
    expect(second.process.exitCode).toBe(0);
  });

  it("a node stopped while idle keeps its checkpoint: its next clean restart starts from it", async () => {
    const nats = await harness.nats();
    const data = await harness.tempDir();
    const start = () => harness.spawnJade(["start", "--nats", nats.url, "--data", data, "--node-id", "idle"], { env: { JADE_LOG_LEVEL: "info" } });
    let node = await start();
    const client = await harness.client(nats.url);
    await client.createCollection({ name: "idle", dimension, metric: "l2", shards: 1, snapshot: { everyEntries: 1_000_000, intervalMs: 86_400_000 } });
    await client.upsert("idle", { points: randomPoints(30, dimension, 5).map((vector, i) => ({ id: `i${i}`, vector })), consistency: "all" });
    // This process's own account (a status could still show the previous process's heartbeat).
    const restoredFromCheckpoint = async () => {
      await waitFor(() => node.output.some((l) => l.includes('"state":"serving"')), { what: "the replica serving again" });
      return node.output.some((l) => l.includes("restored local checkpoint"));
    };
    await node.stop(); // checkpoint at the last write
    node = await start();
    expect(await restoredFromCheckpoint()).toBe(true);
    await node.stop(); // nothing new since: the checkpoint is kept as it is
    node = await start();
    expect(await restoredFromCheckpoint()).toBe(true);
    expect((await client.count("idle", { consistency: "strong" })).count).toBe(30);
    await node.stop();
  });
});

describe("snapshots of an absorbed graph", () => {
  it("a checkpoint that left points for the graph to absorb is saved again once it has: a node killed then restarts with nothing to index again", async () => {
    const nats = await harness.nats();
    const data = await harness.tempDir();
    const start = () => harness.spawnJade(["start", "--nats", nats.url, "--data", data, "--node-id", "burst"], { env: { JADE_LOG_LEVEL: "info" } });
    let node = await start();
    const client = await harness.client(nats.url);
    const dim = 128;
    const total = 30_000;
    await client.createCollection({ name: "burst", dimension: dim, metric: "l2", shards: 1, snapshot: { everyEntries: 1_000_000, intervalMs: 300 } });
    for (let from = 0; from < total; from += 2_000) {
      const vectors = Float32Array.from({ length: 2_000 * dim }, (_, k) => Math.sin(from * dim + k * 0.37));
      await client.upsertColumns("burst", { ids: Array.from({ length: 2_000 }, (_, k) => `p${from + k}`), vectors, consistency: "all" });
    }
    // Stopped at once: its shutdown checkpoint holds points the graph had not absorbed (seconds of work on two cores).
    await node.stop();
    node = await start();
    const line = <T>(msg: string) => node.output.filter((l) => l.includes(`"${msg}"`)).map((l) => JSON.parse(l) as T);
    await waitFor(() => line("restored local checkpoint").length > 0, { what: "the restart restoring its checkpoint" });
    expect(line<{ count: number; unabsorbed: number }>("restored local checkpoint")[0]!.unabsorbed).toBeGreaterThanOrEqual(1_024);
    // Nothing new is written; once the graph holds every point, the replica saves again.
    await waitFor(() => line<{ points: number; unabsorbed: number }>("checkpoint saved").some((s) => s.points === total && s.unabsorbed === 0), {
      what: "a checkpoint of the absorbed graph",
      timeoutMs: 120_000,
    });
    await node.kill9();
    node = await start();
    await waitFor(() => line("restored local checkpoint").length > 0, { what: "the second restart restoring its checkpoint" });
    expect(line("restored local checkpoint")[0]).toMatchObject({ count: total, unabsorbed: 0 });
    await node.stop();
  });
});

describe("restart from the local checkpoint", () => {
  it("a restarted node loads its own checkpoint and replays only the delta; a corrupt one is discarded", async () => {
    const nats = await harness.nats();
    const data = await harness.tempDir();
    const start = () => harness.spawnJade(["start", "--nats", nats.url, "--data", data, "--node-id", "n1"], { env: { JADE_LOG_LEVEL: "info" } });
    let n1 = await start();
    // A second node takes the writes while n1 is down; RF=2 puts both shards on both nodes.
    await harness.node([nats.url], { nodeId: "n2" });
    const client = await harness.client(nats.url);
    // No periodic snapshots: only n1's own shutdown checkpoint can spare it a full replay.
    await client.createCollection({ name: "rejoin", dimension, metric: "l2", shards: 2, replicas: 2, snapshot: { everyEntries: 1_000_000, intervalMs: 86_400_000 } });
    const shardsOf = async () => (await client.clusterStatus()).collections.find((c) => c.name === "rejoin")?.shards ?? [];
    const replicaOn = (shards: Awaited<ReturnType<typeof shardsOf>>, node: string) =>
      shards.map((s) => s.replicas.find((r) => r.node === node));
    await waitFor(async () => replicaOn(await shardsOf(), "n1").every((r) => r?.state === "serving"), { what: "n1 serving both shards" });

    // `all` while both nodes run; `log` (durable, applied later) while n1 is down.
    const write = async (from: number, batches: number, consistency: "all" | "log") => {
      for (let b = from; b < from + batches; b++) {
        const points = randomPoints(20, dimension, 100 + b).map((vector, i) => ({ id: `r${b}-${i}`, vector }));
        await client.upsert("rejoin", { points, consistency });
      }
    };
    await write(0, 20, "all");
    // Status may come from n2, which knows n1's progress from heartbeats: wait until it shows everything applied.
    const atStop = await waitFor(async () => {
      const mine = replicaOn(await shardsOf(), "n1");
      return mine.every((r) => r && r.lastSeq > 0 && r.appliedSeq === r.lastSeq) && mine.map((r) => r!.appliedSeq);
    }, { what: "n1 applied every write" });
    await n1.stop();
    expect(n1.process.exitCode).toBe(0);
    await write(20, 10, "log"); // n1 misses these

    // Rejoin: each shard starts from exactly the sequence n1 had applied when it stopped.
    n1 = await start();
    const settled = async () => {
      const shards = await shardsOf();
      const mine = replicaOn(shards, "n1");
      const theirs = replicaOn(shards, "n2");
      const ok = mine.every((r, i) => r?.state === "serving" && r.lag === 0 && r.count === theirs[i]?.count && r.restored);
      return ok ? mine.map((r) => r!) : undefined;
    };
    const rejoined = await waitFor(settled, { what: "n1 rejoined and caught up", timeoutMs: 90_000 });
    expect(rejoined.map((r) => r.restored)).toEqual(atStop.map((seq) => ({ source: "checkpoint", seq })));
    expect(rejoined.every((r) => r.appliedSeq > r.restored!.seq)).toBe(true); // the delta was replayed
    expect(n1.output.join("\n")).toContain("restored local checkpoint");

    // A checkpoint that no longer reads back is discarded, and the log alone rebuilds the replica.
    await n1.stop();
    const dir = path.join(data, "checkpoints");
    const files = (await readdir(dir, { recursive: true })).filter((f) => f.endsWith(".snap"));
    expect(files).toHaveLength(2);
    for (const f of files) await truncate(path.join(dir, f), 100);
    await write(30, 5, "log");
    n1 = await start();
    const rebuilt = await waitFor(settled, { what: "n1 rebuilt from the log", timeoutMs: 90_000 });
    expect(rebuilt.map((r) => r.restored?.source)).toEqual(["log", "log"]);
    expect(rebuilt.reduce((sum, r) => sum + r.count!, 0)).toBe(35 * 20);
    expect(n1.output.join("\n")).toContain("local checkpoint unreadable");
  });
});

describe("jade dev without nats-server", () => {
  it("says how to install it and exits with code 2", async () => {
    const { spawnSync } = await import("node:child_process");
    const data = await harness.tempDir();
    // A PATH with node but no nats-server.
    const result = spawnSync(process.execPath, [jadeBin, "dev", "--data", data], {
      env: { ...process.env, PATH: path.dirname(process.execPath) },
      encoding: "utf8",
      timeout: 60_000,
    });
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/nats-server was not found on PATH.*apt-get install -y nats-server/s);
  });
});
