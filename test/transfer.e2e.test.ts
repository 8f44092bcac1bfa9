/**
 * Rebalancing throttles itself: a node copying a shard that another replica still serves
 * (a move's target) draws on its transfer budget, so the copy cannot go faster than
 * `transferBytesPerSecMax` — the knob that keeps rebalancing from starving searches.
 */
import { afterAll, describe, expect, it } from "vitest";
import type { MigrationView } from "../src/actors/control/migrations.ts";
import type { JadeClient } from "../src/client/client.ts";
import { Harness, randomPoints, waitFor } from "./support/harness.ts";
import { seededRandom } from "./support/random.ts";
import { onLogLine, processLogLevel, setLogLevel } from "../src/runtime/log.ts";

const harness = new Harness();
afterAll(() => harness.close());

const rateBytesPerSec = 128 * 1024;

/** Two live nodes with the transfer budget (the target's is the one that applies); auto-rebalance off: only the test's move runs. */
async function throttledPair(first: string, second: string): Promise<JadeClient> {
  const nats = await harness.nats();
  const settings = { replica: { transferBytesPerSecMax: rateBytesPerSec }, coordinator: { autoRebalance: false } };
  await harness.node([nats.url], { nodeId: first, ...settings });
  await harness.node([nats.url], { nodeId: second, ...settings });
  const client = await harness.client(nats.url);
  await waitFor(async () => (await client.clusterStatus()).nodes.filter((n) => n.live).length === 2, { what: "2 live nodes" });
  return client;
}

/** The copies the nodes log ("copied the shard from a serving replica": bytes, and bytes on the wire) while `run` goes. */
async function loggedCopies<T>(run: () => Promise<T>): Promise<{ result: T; copies: { bytes: number; wireBytes: number }[] }> {
  const copies: { bytes: number; wireBytes: number }[] = [];
  setLogLevel("info");
  const off = onLogLine((line) => {
    const entry = JSON.parse(line) as { msg: string; bytes: number; wireBytes: number };
    if (entry.msg === "copied the shard from a serving replica") copies.push(entry);
  });
  try {
    return { result: await run(), copies };
  } finally {
    off();
    setLogLevel(processLogLevel);
  }
}

describe("transfer throttle", () => {
  it("a move's target copies no faster than its node's transfer budget", async () => {
    const client = await throttledPair("a", "b");
    await client.createCollection({ name: "slow", dimension: 64, metric: "l2", shards: 1, replicas: 1 });
    // 6,000 points (~1.5 MB of vectors alone): at the budget, the copy outlasts enough of the target's
    // heartbeats (one a second) for its ETA even on a loaded CI box, where 3,000 sometimes did not.
    const vectors = randomPoints(6_000, 64, 5);
    for (let i = 0; i < vectors.length; i += 500) {
      const points = vectors.slice(i, i + 500).map((vector, j) => ({ id: `p${i + j}`, vector }));
      await client.upsert("slow", { points, consistency: "all" });
    }
    const from = await waitFor(async () => {
      const shard = (await client.clusterStatus()).collections.find((c) => c.name === "slow")?.shards[0];
      return shard?.replicas[0]?.state === "serving" && shard.replicas[0].node;
    }, { what: "slow placed" });
    const to = from === "a" ? "b" : "a";

    const started = performance.now();
    // What an operator sees while the target copies: how far the copy is, toward what, and when it ends.
    const whileCopying: MigrationView["progress"][] = [];
    const { result: done, copies } = await loggedCopies(async () => {
      const view = await client.admin<{ id: string }>("move", { collection: "slow", shard: 0, from, to });
      // The status lists the target as a learner of the shard until the cutover.
      const learner = await waitFor(async () => (await client.clusterStatus()).collections.find((c) => c.name === "slow")?.shards[0]?.learners[0], { what: "the target listed as a learner" });
      expect(learner.node).toBe(to);
      return waitFor(async () => {
        const { migrations } = await client.admin<{ migrations: MigrationView[] }>("migrations");
        const m = migrations.find((x) => x.id === view.id);
        if (m && m.progress.bytesCopied < m.progress.copyGoalBytes) whileCopying.push(m.progress);
        return m?.state === "completed" && m;
      }, { what: "move completed", timeoutMs: 90_000, intervalMs: 200 });
    });
    const seconds = (performance.now() - started) / 1_000;

    // ~1.5 MB of vectors alone: several seconds at 128 KiB/s after the one-second burst. The budget
    // paces the bytes on the wire, which compression makes fewer than those copied.
    const copied = done.progress.bytesCopied;
    expect(copied).toBeGreaterThan(3_000 * 64 * 4);
    expect(copies).toHaveLength(1);
    expect(seconds).toBeGreaterThanOrEqual((copies[0]!.wireBytes - rateBytesPerSec) / rateBytesPerSec);
    expect(whileCopying.length).toBeGreaterThan(0);
    expect(whileCopying.every((p) => p.copyGoalBytes > 3_000 * 64 * 4 && p.copyGoalBytes <= copied)).toBe(true);
    // Seconds of copying at a steady rate: the ETA is known, and no more than the time the copy had left plus a margin.
    const withEta = whileCopying.filter((p) => p.etaMs !== null);
    expect(withEta.length).toBeGreaterThan(0);
    for (const p of withEta) expect(p.etaMs!).toBeLessThanOrEqual(((p.copyGoalBytes - p.bytesCopied) / rateBytesPerSec) * 1_000 * 4);
    expect((await client.count("slow", { consistency: "strong" })).count).toBe(6_000);
    const shard = (await client.clusterStatus()).collections.find((c) => c.name === "slow")!.shards[0]!;
    expect({ replicas: shard.replicas.map((r) => r.node), learners: shard.learners }).toEqual({ replicas: [to], learners: [] });
  });

  it("compresses a budgeted copy of compressible vectors: fewer bytes on the wire, so the move ends sooner", async () => {
    const client = await throttledPair("p", "q");
    await client.createCollection({ name: "pixels", dimension: 64, metric: "l2", shards: 1, replicas: 1 });
    // Image-like: most values 0, the rest small integers (Fashion-MNIST's checkpoints compress to 27 %).
    const random = seededRandom(21);
    for (let i = 0; i < 3_000; i += 500) {
      const points = Array.from({ length: 500 }, (_, j) => ({ id: `x${i + j}`, vector: Array.from({ length: 64 }, () => (random() < 0.7 ? 0 : Math.floor(random() * 8))) }));
      await client.upsert("pixels", { points, consistency: "all" });
    }
    const from = await waitFor(async () => {
      const shard = (await client.clusterStatus()).collections.find((c) => c.name === "pixels")?.shards[0];
      return shard?.replicas[0]?.state === "serving" && shard.replicas[0].node;
    }, { what: "pixels placed" });
    const started = performance.now();
    const { copies } = await loggedCopies(async () => {
      const view = await client.admin<{ id: string }>("move", { collection: "pixels", shard: 0, from, to: from === "p" ? "q" : "p" });
      await waitFor(async () => (await client.admin<{ migrations: MigrationView[] }>("migrations")).migrations.find((m) => m.id === view.id)?.state === "completed", {
        what: "move completed",
        timeoutMs: 90_000,
      });
    });
    const seconds = (performance.now() - started) / 1_000;
    expect(copies).toHaveLength(1);
    const [{ bytes, wireBytes }] = copies as [{ bytes: number; wireBytes: number }];
    expect(bytes).toBeGreaterThan(3_000 * 64 * 4);
    expect(wireBytes).toBeLessThan(0.5 * bytes);
    // The budget paced the wire bytes: at least their time past the one-second burst.
    expect(seconds).toBeGreaterThanOrEqual((wireBytes - rateBytesPerSec) / rateBytesPerSec);
    process.stdout.write(`compressed peer copy: ${bytes} bytes as ${wireBytes} on the wire (${((100 * wireBytes) / bytes).toFixed(0)} %) in ${seconds.toFixed(1)} s\n`);
    expect((await client.count("pixels", { consistency: "strong" })).count).toBe(3_000);
  });

  it("moves replicas onto a node that joins (auto-rebalance, the default)", async () => {
    const nats = await harness.nats();
    await harness.node([nats.url], { nodeId: "first" });
    const client = await harness.client(nats.url);
    await client.createCollection({ name: "spread", dimension: 8, metric: "l2", shards: 4, replicas: 1 });
    const nodesOf = async () => {
      const c = (await client.clusterStatus()).collections.find((x) => x.name === "spread");
      const placed = c?.shards.length === 4 && c.shards.every((s) => s.replicas.length === 1 && s.replicas[0]!.state === "serving");
      return placed ? c.shards.map((s) => s.replicas[0]!.node) : undefined;
    };
    expect(await waitFor(nodesOf, { what: "spread placed" })).toEqual(["first", "first", "first", "first"]);
    await client.upsert("spread", { points: randomPoints(200, 8, 9).map((vector, i) => ({ id: `s${i}`, vector })), consistency: "all" });

    await harness.node([nats.url], { nodeId: "second" });
    const spread = await waitFor(async () => {
      const nodes = await nodesOf();
      return nodes && nodes.filter((n) => n === "second").length === 2 && nodes;
    }, { what: "two shards moved onto the node that joined", timeoutMs: 90_000 });
    expect(spread.filter((n) => n === "first")).toHaveLength(2);
    expect((await client.count("spread", { consistency: "strong" })).count).toBe(200);
  });
});
