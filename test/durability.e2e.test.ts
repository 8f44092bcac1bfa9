/**
 * Nothing acknowledged is lost: a node killed with -9 in the middle of
 * ingestion, restarted, holds every acknowledged write exactly once — restored
 * from a snapshot plus the rest of the log. And the one-command `jade dev`
 * survives kill -9 of itself and its nats-server.
 */
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
    await waitFor(async () => {
      const status = await client.clusterStatus();
      const shards = status.collections.find((c) => c.name === "crash")?.shards ?? [];
      lastStatus = shards;
      return shards.length === 2 && shards.every((s) => s.replicas[0]?.state === "serving" && s.replicas[0].lag === 0);
    }, { what: "both shards serving after restart", timeoutMs: 90_000 }).catch((err) => {
      throw new Error(`${err.message}\nstatus: ${JSON.stringify(lastStatus)}\nnode output:\n${second.output.slice(-30).join("\n")}`);
    });
    // The restart restored from snapshots rather than replaying everything from sequence 1.
    expect(second.output.join("\n")).not.toContain("replica failed");
    await assertAllPresentOnce(client, "crash", writer.acked, writer.attempted);
  });

  it("`jade dev` killed with -9 together with its nats-server comes back with its data", async () => {
    const data = await harness.tempDir();
    const first = await harness.spawnJade(["dev", "--data", data, "--nats-port", "0"]);
    expect(first.readyLine).toMatch(/ready .*nats=nats:\/\/127\.0\.0\.1:\d+/);
    let client = await JadeClient.connect({ servers: first.natsUrl });
    await client.createCollection({ name: "devcrash", dimension, metric: "cosine", shards: 2 });
    const writer = writeLoop(client, "devcrash", 2);
    await waitFor(() => writer.batches() >= 10, { what: "10 acknowledged batches" });
    await first.kill9(); // its nats-server child survives the parent: the restart must deal with it
    await writer.stop();
    await client.close();

    const second = await harness.spawnJade(["dev", "--data", data, "--nats-port", "0"]);
    client = await harness.client(second.natsUrl);
    await waitFor(async () => (await client.count("devcrash", { consistency: "strong" })).partial === false, {
      what: "devcrash readable",
    });
    await assertAllPresentOnce(client, "devcrash", writer.acked, writer.attempted);
    await second.stop();
    expect(second.process.exitCode).toBe(0);
  });
});

describe("jade dev without nats-server", () => {
  it("says how to install it and exits with code 2", async () => {
    const { spawnSync } = await import("node:child_process");
    const path = await import("node:path");
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
