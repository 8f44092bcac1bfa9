/**
 * Rolling restarts end to end, on a real nats-server with three in-process nodes: a node that
 * stops cleanly announces it, keeps its replicas for the restart delay (searches stay complete
 * on the other replicas, writes go on), retention keeps the log it will replay, and back within
 * the delay it restores its own checkpoints and replays the rest: the placement never changes
 * and no migration runs. Past the delay its replicas are placed elsewhere. `jade nodes
 * restart-plan` orders the restarts; a node refuses a cluster that writes a format it cannot
 * read.
 */
import { execFile } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JadeClient } from "../src/client/client.ts";
import type { JadeNode, NodeOptions } from "../src/node.ts";
import { isIncompatibleFormatError, raiseFormats } from "../src/actors/cluster/formats.ts";
import { buildFormats } from "../src/runtime/formats.ts";
import { nodeReady } from "../src/runtime/restart-plan.ts";
import type { ClusterStatus } from "../src/runtime/status.ts";
import { names } from "../src/runtime/subjects.ts";
import { Harness, jadeBin, randomPoints, repoRoot, waitFor } from "./support/harness.ts";

const harness = new Harness();
const dimension = 4;
let natsUrl: string;
let client: JadeClient;
const nodes = new Map<string, JadeNode>();
const dataDirs = new Map<string, string>();

/** Short failure timeouts (a dead node is re-placed after 3 s), the default restart delay (60 s), fast retention passes. */
const nodeOptions: Partial<NodeOptions> = { coordinator: { nodeDeadAfterMs: 3_500, retention: { intervalMs: 200 } } };

async function start(id: string): Promise<JadeNode> {
  if (!dataDirs.has(id)) dataDirs.set(id, await harness.tempDir(`jade-${id}-`));
  const node = await harness.node([natsUrl], { ...nodeOptions, nodeId: id, dataDir: dataDirs.get(id)! });
  nodes.set(id, node);
  return node;
}

function jade(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [jadeBin, ...args, "--nats", natsUrl], { cwd: repoRoot, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

const epochs = (s: ClusterStatus) => Object.fromEntries(s.collections.map((c) => [c.name, c.epoch]));
const replicasOf = (s: ClusterStatus, node: string) => s.collections.flatMap((c) => c.shards.flatMap((sh) => sh.replicas.filter((r) => r.node === node).map((r) => ({ ...r, collection: c.name, shard: sh.shard }))));

let written = 0;
async function write(batches: number): Promise<void> {
  for (let b = 0; b < batches; b++, written++) {
    await client.upsert("roll", { points: randomPoints(10, dimension, 1_000 + written).map((vector, i) => ({ id: `w${written}-${i}`, vector })), consistency: "log" });
  }
}

/** A search of every shard, answered completely (no shard left out). */
async function completeSearch(): Promise<boolean> {
  const result = await client.search("roll", { vector: [0.1, 0.2, 0.3, 0.4], k: 5 });
  return !result.partial && result.shards.answered === result.shards.total;
}

beforeAll(async () => {
  const nats = await harness.nats();
  natsUrl = nats.url;
  for (const id of ["a", "b", "c"]) await start(id);
  client = await harness.client(nats.url);
  await client.createCollection({ name: "roll", dimension, metric: "l2", shards: 3, replicas: 2, snapshot: { everyEntries: 5 }, retention: { pointInTimeMs: 0 } });
  // Replaced snapshots stay restorable for one snapshot interval: short, so the log floor moves on.
  await client.admin("config.set", { set: { "snapshot.intervalMs": 300 } });
  await write(10);
}, 90_000);
afterAll(() => harness.close());

let status: ClusterStatus | undefined;

describe("rolling restarts", () => {
  it("a node stopped cleanly keeps its replicas; back within the delay it replays only what it missed, and nothing is copied", async () => {
    await waitFor(async () => {
      status = await client.clusterStatus();
      return ["a", "b", "c"].every((id) => nodeReady(status!, id));
    }, { what: "every replica serving" });
    const before = epochs(status!);
    const coordinator = status!.coordinator;
    const away = ["a", "b", "c"].find((id) => id !== coordinator && replicasOf(status!, id).length > 0)!;
    await nodes.get(away)!.stop();
    const gone = await waitFor(async () => {
      const s = await client.clusterStatus();
      return s.departed.some((d) => d.node === away) && !s.nodes.some((n) => n.id === away && n.live) && s;
    }, { what: `${away} announced as away` });
    const announced = replicasOf(gone, away);
    expect(announced.length).toBeGreaterThan(0);
    // Writes go on, searches stay complete, and long past the dead-node timeout (3.5 s) nothing
    // moves. Retention keeps what the away node will replay: snapshots move on (every 5 entries,
    // replaced ones kept 300 ms), the log of its shards stops at what it announced.
    const awaySince = performance.now();
    let heldBy: string[] = [];
    while (performance.now() - awaySince < 5_000 || !heldBy.includes(`restart of ${away}`)) {
      await write(1);
      expect(await completeSearch()).toBe(true);
      const now = await client.clusterStatus();
      expect(epochs(now)).toEqual(before);
      heldBy = now.collections[0]!.shards.filter((s) => s.replicas.some((r) => r.node === away)).map((s) => s.log?.heldBy ?? "");
      expect(performance.now() - awaySince, `log of ${away}'s shards held by ${heldBy.join(", ")}`).toBeLessThan(30_000);
    }

    await start(away);
    const back = await waitFor(async () => {
      const s = await client.clusterStatus();
      return nodeReady(s, away) && s;
    }, { what: `${away} back and serving`, timeoutMs: 60_000 });
    expect(epochs(back)).toEqual(before);
    expect(back.departed).toEqual([]);
    expect(replicasOf(back, away).map((r) => r.restored?.source)).toEqual(announced.map(() => "checkpoint"));
    expect(replicasOf(back, away).every((r) => r.appliedSeq > r.restored!.seq)).toBe(true);
    expect((await client.admin<{ migrations: unknown[] }>("migrations", {})).migrations).toEqual([]);
    expect(await completeSearch()).toBe(true);
  });

  it("past the delay a node that stopped cleanly counts as dead: its replicas are placed elsewhere", async () => {
    const { revision } = await client.admin<{ revision: number }>("config.set", { set: { "coordinator.restartDelayMs": 1_000 } });
    await waitFor(async () => (await client.clusterStatus()).nodes.every((n) => n.configRevision === revision), { what: "the delay applied" });
    const s = await client.clusterStatus();
    const before = epochs(s);
    const away = ["a", "b", "c"].find((id) => id !== s.coordinator)!;
    await nodes.get(away)!.stop();
    const moved = await waitFor(async () => {
      const now = await client.clusterStatus();
      return now.collections[0]!.epoch > before["roll"]! && replicasOf(now, away).length === 0 && now;
    }, { what: `${away}'s replicas placed elsewhere`, timeoutMs: 30_000 });
    expect(moved.departed).toEqual([]);
    await start(away);
    await waitFor(async () => (await client.clusterStatus()).nodes.some((n) => n.id === away && n.live), { what: `${away} back` });
    await client.admin("config.set", { unset: ["coordinator.restartDelayMs"] });
  });

  it("restart-plan restarts the coordinator last and names shards that would go dark", async () => {
    await client.createCollection({ name: "single", dimension, metric: "l2", shards: 1, replicas: 1 });
    const run = await waitFor(async () => {
      const r = await jade(["nodes", "restart-plan", "--json"]);
      const plan = JSON.parse(r.stdout) as { steps: { node: string; coordinator: boolean; alone: string[] }[] };
      return plan.steps.length === 3 && plan.steps.some((s) => s.alone.includes("single/0")) && plan;
    }, { what: "a plan with every node" });
    expect(run.steps.at(-1)!.coordinator).toBe(true);
    expect(run.steps.filter((s) => s.coordinator)).toHaveLength(1);
    const text = await jade(["nodes", "restart-plan"]);
    expect(text.stdout).toMatch(/no other serving replica: single\/0/);
    expect(text.stdout).toMatch(/\(coordinator\)/);
    const ready = await jade(["nodes", "ready", run.steps[0]!.node, "--timeout-ms", "30000"]);
    expect(ready.stdout).toContain("is ready");
    const never = await jade(["nodes", "ready", "nobody", "--timeout-ms", "500"]);
    expect(never.code).not.toBe(0);
    expect(never.stderr).toMatch(/nobody was not ready within 500 ms/);
  });

  it("the cluster moves to a newer format once every node reads it; a node that cannot read it refuses to join, and says which", async () => {
    const kv = nodes.get("a")!.nats.config;
    const stored = (await kv.get(names.formatsKey))!;
    // A new cluster writes the newest formats its build reads.
    const current = { log: buildFormats.log.max, message: buildFormats.message.max };
    expect(stored.json()).toEqual(current);
    const next = current.log + 1;
    // Every node here reads what the cluster writes and nothing newer: it stays.
    const readers = (await client.clusterStatus()).nodes.map(() => buildFormats);
    expect(await raiseFormats(kv, readers)).toBeUndefined();
    // Once every node reads the next log format (newer builds, as their heartbeats would say), the cluster writes it, by CAS.
    const newer = { log: { min: 1, max: next }, message: buildFormats.message };
    expect(await raiseFormats(kv, [newer, newer, newer])).toEqual({ ...current, log: next });
    expect((await kv.get(names.formatsKey))!.json()).toEqual({ ...current, log: next });
    const refusal = `the cluster writes log format ${next}; this node reads log formats ${buildFormats.log.min}–${buildFormats.log.max}`;
    try {
      const err = await harness.node([natsUrl], { nodeId: "newcomer" }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isIncompatibleFormatError(err)).toBe(true);
      expect((err as Error).message).toContain(refusal);
      const cli = await harness.spawnJade(["start", "--nats", natsUrl, "--node-id", "newcomer2", "--data", await harness.tempDir()], { timeoutMs: 30_000 }).then(
        () => "started",
        (e: unknown) => String(e),
      );
      expect(cli).toMatch(/exited with 1 before ready/);
      expect(cli).toContain(`error: ${refusal}: run a jade that reads format ${next}`);
    } finally {
      await kv.put(names.formatsKey, stored.string());
    }
    expect((await client.clusterStatus()).nodes.map((n) => n.id).sort()).toEqual(["a", "b", "c"]);
  });
});
