/**
 * A real cluster on loopback: 3 clustered nats-servers (JetStream, streams and
 * KV at R3) and 3 jade nodes as child processes. Election, placement, replicated
 * writes with consistency levels, reads that survive a hung node, and takeover.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { JadeClient } from "../src/client/client.ts";
import type { MigrationView } from "../src/actors/control/migrations.ts";
import { decodeReplicaMessage, encodeReplicaMessage, type ReplicaReadReply } from "../src/actors/replica/protocol.ts";
import type { StoredPoint } from "../src/runtime/schemas.ts";
import type { ClusterStatus } from "../src/runtime/status.ts";
import { names, nodeApiSubject, subjects } from "../src/runtime/subjects.ts";
import { readIdxImages } from "../bench/datasets.ts";
import { Harness, randomPoints, waitFor, type ChildNode } from "./support/harness.ts";
import { errorMessage } from "../src/runtime/errors.ts";

const fashionMnist = {
  train: "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz",
  test: "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz",
};

const harness = new Harness();
let client: JadeClient;
let urls: string[];
const nodes = new Map<string, ChildNode>();

beforeAll(async () => {
  const servers = await harness.natsCluster(3);
  urls = servers.map((s) => s.url);
  await Promise.all(
    ["n1", "n2", "n3"].map(async (id, i) => {
      // Each node prefers a different server, as on three machines.
      const order = [...urls.slice(i), ...urls.slice(0, i)].join(",");
      const data = await harness.tempDir(`jade-${id}-`);
      // Replicas move off a silent node only after 30 s here, so the hung-node test sees reads route around it.
      // HTTP for the metrics a test reads.
      const args = ["start", "--nats", order, "--node-id", id, "--data", data, "--stream-replicas", "3", "--node-dead-after-ms", "30000", "--http-port", "0"];
      nodes.set(id, await harness.spawnJade(args));
    }),
  );
  client = await harness.client(urls);
  await waitFor(async () => {
    const status = await client.clusterStatus();
    return status.coordinator !== null && status.nodes.filter((n) => n.live).length === 3;
  }, { what: "3 live nodes and a coordinator", timeoutMs: 60_000 });
});
afterAll(() => harness.close());

async function leaseHolder(): Promise<string | null> {
  const kv = await new Kvm(client.nc).open(names.leasesBucket);
  const entry = await kv.get(names.coordinatorLease);
  return entry && entry.operation === "PUT" ? entry.string() : null;
}

async function placementOf(collection: string) {
  return waitFor(async () => {
    const status = await client.clusterStatus();
    const c = status.collections.find((x) => x.name === collection);
    return c && c.shards.every((s) => s.replicas.length === c.replicas && s.replicas.every((r) => r.state === "serving")) ? c : undefined;
  }, { what: `${collection} placed and serving`, timeoutMs: 60_000 });
}

/** Reads one node's replica of a shard directly, with no consistency wait. */
async function readReplica(node: string, collection: string, uid: string, ids: string[]): Promise<string[]> {
  const msg = await client.nc.request(
    subjects.replica(node, collection, 0, "get"),
    encodeReplicaMessage({ uid, minSeq: 0, timeoutMs: 2_000, get: { ids, withVectors: false } }),
    { timeout: 3_000 },
  );
  const reply = decodeReplicaMessage<ReplicaReadReply>(msg.data);
  if (!reply.ok) throw new Error(reply.error.message);
  return (reply.result as StoredPoint[]).map((p) => p.id);
}

describe("membership and election", () => {
  it("elects exactly one coordinator that every node agrees on", async () => {
    const holder = await leaseHolder();
    expect(["n1", "n2", "n3"]).toContain(holder);
    for (let i = 0; i < 12; i++) {
      // The API is a queue group: these land on different nodes.
      expect((await client.clusterStatus()).coordinator).toBe(holder);
    }
  });
});

describe("placement and replication", () => {
  it("spreads a 4-shard RF=2 collection evenly, never two replicas of a shard on one node", async () => {
    await client.createCollection({ name: "spread", dimension: 8, metric: "l2", shards: 4, replicas: 2 });
    const placed = await placementOf("spread");
    const perNode = new Map<string, number>();
    for (const shard of placed.shards) {
      const holders = shard.replicas.map((r) => r.node);
      expect(new Set(holders).size).toBe(2);
      holders.forEach((n) => perNode.set(n, (perNode.get(n) ?? 0) + 1));
    }
    expect([...perNode.values()].sort()).toEqual([2, 3, 3]);
  });

  it("acknowledges `all` writes only once every replica applied them, and `quorum` once a majority did", async () => {
    const config = await client.createCollection({ name: "rf3", dimension: 4, metric: "l2", shards: 1, replicas: 3 });
    await placementOf("rf3");
    for (let i = 0; i < 10; i++) {
      await client.upsert("rf3", { points: [{ id: `all-${i}`, vector: [i, 1, 2, 3] }], consistency: "all" });
      const seen = await Promise.all(["n1", "n2", "n3"].map((n) => readReplica(n, "rf3", config.uid, [`all-${i}`])));
      expect(seen.filter((ids) => ids.includes(`all-${i}`))).toHaveLength(3);

      await client.upsert("rf3", { points: [{ id: `q-${i}`, vector: [i, 3, 2, 1] }], consistency: "quorum" });
      const quorum = await Promise.all(["n1", "n2", "n3"].map((n) => readReplica(n, "rf3", config.uid, [`q-${i}`])));
      expect(quorum.filter((ids) => ids.includes(`q-${i}`)).length).toBeGreaterThanOrEqual(2);
    }
  });

  it("reads its own writes with session consistency, whichever node answers", async () => {
    await client.createCollection({ name: "session", dimension: 8, metric: "cosine", shards: 2, replicas: 2 });
    await placementOf("session");
    const vectors = randomPoints(40, 8, 5);
    for (let i = 0; i < vectors.length; i++) {
      const { token } = await client.upsert("session", { points: [{ id: `s${i}`, vector: vectors[i]! }] });
      const hit = await client.search("session", { vector: vectors[i]!, k: 1, consistency: "session", token });
      expect(hit.partial).toBe(false);
      expect(hit.hits[0]?.id).toBe(`s${i}`);
    }
  });

  it("answers a 4-shard RF=2 collection exactly like a single node", async () => {
    const single = await harness.nats();
    await harness.node([single.url]);
    const alone = await harness.client(single.url);
    const vectors = randomPoints(2_000, 24, 9);
    for (const c of [client, alone]) {
      await c.createCollection({ name: "same", dimension: 24, metric: "l2", shards: 4, replicas: c === client ? 2 : 1 });
      for (let i = 0; i < vectors.length; i += 500) {
        const points = vectors.slice(i, i + 500).map((vector, j) => ({ id: `v${i + j}`, vector, payload: { even: (i + j) % 2 === 0 } }));
        await c.upsert("same", { points, consistency: "all" });
      }
    }
    await placementOf("same");
    for (let i = 0; i < 200; i += 7) {
      const [a, b] = await Promise.all(
        [client, alone].map((c) => c.search("same", { vector: vectors[i]!, k: 10, filter: { even: true } })),
      );
      expect(a!.partial).toBe(false);
      expect(a!.hits.map((h) => h.id)).toEqual(b!.hits.map((h) => h.id));
      expect(a!.hits[0]!.id).toBe(i % 2 === 0 ? `v${i}` : b!.hits[0]!.id);
    }
    expect((await client.count("same")).count).toBe(2_000);
  });
});

describe("recall on a real data set", () => {
  it("a 4-shard RF=2 cluster collection matches a single node's recall@10 on fashion-mnist", async () => {
    const train = await readIdxImages(fashionMnist.train);
    const test = await readIdxImages(fashionMnist.test);
    const n = 4_000;
    const dim = train.dimension;
    const row = (set: typeof train, i: number) => Array.from(set.data.subarray(i * dim, (i + 1) * dim));
    const queries = Array.from({ length: 40 }, (_, q) => row(test, q));
    const truth = queries.map((query) => {
      const scored: { i: number; d: number }[] = [];
      for (let i = 0; i < n; i++) {
        let d = 0;
        for (let j = 0; j < dim; j++) d += (train.data[i * dim + j]! - query[j]!) ** 2;
        scored.push({ i, d });
      }
      return new Set(scored.sort((a, b) => a.d - b.d).slice(0, 10).map(({ i }) => `f${i}`));
    });
    const single = await harness.nats();
    await harness.node([single.url]);
    const alone = await harness.client(single.url);
    const recall: number[] = [];
    for (const [c, replicas] of [[client, 2], [alone, 1]] as const) {
      await c.createCollection({ name: "fashion", dimension: dim, metric: "l2", shards: 4, replicas });
      for (let i = 0; i < n; i += 250) {
        const points = Array.from({ length: Math.min(250, n - i) }, (_, j) => ({ id: `f${i + j}`, vector: row(train, i + j) }));
        await c.upsert("fashion", { points, consistency: "all" });
      }
      let found = 0;
      for (let q = 0; q < queries.length; q++) {
        const result = await c.search("fashion", { vector: queries[q]!, k: 10 });
        expect(result.partial).toBe(false);
        found += result.hits.filter((h) => truth[q]!.has(h.id)).length;
      }
      recall.push(found / (queries.length * 10));
    }
    expect(recall[0]).toBeGreaterThan(0.9);
    expect(Math.abs(recall[0]! - recall[1]!)).toBeLessThanOrEqual(0.01);
    // Its 784-d replicas would only slow the migration tests down.
    await client.dropCollection("fashion");
  });
});

/** A counter of one node's /metrics. */
async function counter(node: string, name: string): Promise<number> {
  const text = await (await fetch(`${nodes.get(node)!.httpUrl}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
  if (!line) throw new Error(`${node} has no ${name}`);
  return Number(line.split(" ").at(-1));
}

/** The cluster as `node` sees it: its own membership, which its router ranks replicas by. */
async function statusSeenBy(node: string): Promise<ClusterStatus> {
  const msg = await client.nc.request(nodeApiSubject(node, subjects.clusterStatus), "{}", { timeout: 5_000 });
  const reply = msg.json<{ ok: true; result: ClusterStatus } | { ok: false; error: { code: string; message: string } }>();
  if (!reply.ok) throw new Error(`${node}: cluster status: ${reply.error.code}: ${reply.error.message}`);
  return reply.result;
}

describe("failures", () => {
  it("a router asks a shard's next replica when the first has not answered in 250 ms, not after half the deadline", async () => {
    // A shard on two nodes, read through the third: its router asks the smaller id first
    // (nothing in flight anywhere: least-loaded breaks the tie by id).
    await client.createCollection({ name: "hedged", dimension: 8, metric: "l2", shards: 2, replicas: 2 });
    const placed = await placementOf("hedged");
    const all = ["n1", "n2", "n3"];
    const shard = placed.shards[0]!;
    const [victim] = shard.replicas.map((r) => r.node).sort();
    const entry = all.find((n) => !shard.replicas.some((r) => r.node === n))!;
    const vectors = randomPoints(40, 8, 5);
    await client.upsert("hedged", { points: vectors.map((vector, i) => ({ id: `r${i}`, vector })), consistency: "all" });
    // Least-loaded ranks the readable replicas by requests in flight at the last heartbeat: both
    // at 0, the id decides. Seen by the entry node itself, whose router ranks them: the view of
    // whichever node answers `clusterStatus` may be a heartbeat ahead (the router asked the
    // live replica first once in CI, and nothing was hedged).
    await waitFor(
      async () => {
        const seen = await statusSeenBy(entry);
        const replicas = seen.collections.find((c) => c.name === "hedged")?.shards[0]?.replicas ?? [];
        const loads = seen.nodes.filter((n) => shard.replicas.some((r) => r.node === n.id)).map((n) => n.load);
        return replicas.length === 2 && replicas.every((r) => r.state === "serving") && loads.length === 2 && loads.every((load) => load === 0);
      },
      { what: `${entry} to see both replicas of shard 0 serving, with no request in flight` },
    );
    const hedgesBefore = await counter(entry, "jade_router_hedges_total");
    nodes.get(victim!)!.pause();
    try {
      // Within the 3 s its heartbeats take to go stale, the router still counts the victim live.
      for (let i = 0; i < 4; i++) {
        const started = performance.now();
        const msg = await client.nc.request(nodeApiSubject(entry, subjects.collection("hedged", "search")), JSON.stringify({ vector: vectors[i], k: 1, timeoutMs: 2_000 }), { timeout: 5_000 });
        const tookMs = performance.now() - started;
        const reply = msg.json<{ ok: boolean; result: { partial: boolean; hits: { id: string }[] } }>();
        expect(reply.ok).toBe(true);
        expect(reply.result.partial).toBe(false);
        expect(reply.result.hits[0]!.id).toBe(`r${i}`);
        // Waiting out the victim would take half the 2 s deadline.
        expect(tookMs).toBeLessThan(900);
      }
      expect(await counter(entry, "jade_router_hedges_total")).toBeGreaterThan(hedgesBefore);
    } finally {
      nodes.get(victim!)!.resume();
    }
    await waitFor(async () => (await client.clusterStatus()).nodes.filter((n) => n.live).length === 3, { what: "victim back" });
    await client.dropCollection("hedged");
  });

  it("keeps answering completely with one node hung (RF=2), and partially with RF=1", async () => {
    await client.createCollection({ name: "rf1", dimension: 8, metric: "l2", shards: 3, replicas: 1 });
    const rf1 = await placementOf("rf1");
    const spread = await placementOf("spread");
    const vectors = randomPoints(300, 8, 3);
    for (const name of ["spread", "rf1"]) {
      await client.upsert(name, { points: vectors.map((vector, i) => ({ id: `h${i}`, vector })), consistency: "all" });
    }
    // Hang a node that is not the coordinator and holds an RF=1 shard.
    const coordinator = await leaseHolder();
    const victim = rf1.shards.map((s) => s.replicas[0]!.node).find((n) => n !== coordinator)!;
    expect(spread.shards.some((s) => s.replicas.some((r) => r.node === victim))).toBe(true);
    nodes.get(victim)!.pause();
    try {
      await waitFor(async () => (await client.clusterStatus()).nodes.find((n) => n.id === victim)?.live === false, {
        what: `${victim} seen as silent`,
      });
      // The client addresses live nodes (from heartbeats), and routers skip the hung replicas:
      // every search is answered within its own deadline, first time.
      for (let i = 0; i < 20; i++) {
        let started = performance.now();
        const full = await client.search("spread", { vector: vectors[i]!, k: 3, timeoutMs: 2_000 });
        expect(full.partial).toBe(false);
        expect(full.hits[0]!.id).toBe(`h${i}`);
        expect(performance.now() - started).toBeLessThan(2_000 + 500);
        started = performance.now();
        const partial = await client.search("rf1", { vector: vectors[i]!, k: 3, timeoutMs: 1_000 });
        expect(partial.partial).toBe(true);
        expect(partial.shards).toEqual({ total: 3, answered: 2 });
        expect(performance.now() - started).toBeLessThan(1_000 + 500);
      }
    } finally {
      nodes.get(victim)!.resume();
    }
    await waitFor(async () => (await client.clusterStatus()).nodes.filter((n) => n.live).length === 3, { what: "victim back" });
  });
});

describe("migrations", () => {
  it("moves a shard replica to another node while searches keep answering completely", async () => {
    await client.createCollection({ name: "moving", dimension: 8, metric: "l2", shards: 1, replicas: 1 });
    const placed = await placementOf("moving");
    const from = placed.shards[0]!.replicas[0]!.node;
    const to = ["n1", "n2", "n3"].find((n) => n !== from)!;
    const vectors = randomPoints(400, 8, 21);
    await client.upsert("moving", { points: vectors.map((vector, i) => ({ id: `m${i}`, vector })), consistency: "all" });

    let searching = true;
    const outcomes = { complete: 0, incomplete: [] as unknown[] };
    const searches = (async () => {
      for (let i = 0; searching && i < 5_000; i++) {
        const r = await client.search("moving", { vector: vectors[i % 400]!, k: 1, timeoutMs: 2_000 });
        if (!r.partial && r.hits[0]?.id === `m${i % 400}`) outcomes.complete++;
        else outcomes.incomplete.push({ wanted: `m${i % 400}`, ...r });
      }
    })();
    const view = await client.admin<{ id: string }>("move", { collection: "moving", shard: 0, from, to });
    const done = await waitFor(async () => {
      const { migrations } = await client.admin<{ migrations: MigrationView[] }>("migrations");
      const m = migrations.find((x) => x.id === view.id);
      return m?.state === "completed" && m;
    }, { what: "migration completed", timeoutMs: 60_000 });
    searching = false;
    await searches;
    const after = await placementOf("moving");
    expect(after.shards[0]!.replicas.map((r) => r.node)).toEqual([to]);
    // The target copied the source's checkpoint and loaded it, rather than rebuilding the index from the log.
    expect(after.shards[0]!.replicas[0]!.restored).toEqual({ source: "peer", seq: 1 });
    expect(done.progress.appliedSeq).toBe(1);
    expect(done.progress.bytesCopied).toBeGreaterThan(400 * 8 * 4);
    expect(outcomes.incomplete).toEqual([]);
    expect(outcomes.complete).toBeGreaterThan(0);
    expect((await client.count("moving", { consistency: "strong" })).count).toBe(400);
  });

  it("drains a node: its replicas move away with no read left incomplete", { timeout: 150_000 }, async () => {
    const status = await client.clusterStatus();
    const coordinator = status.coordinator!;
    const victim = ["n1", "n2", "n3"].find((n) => n !== coordinator)!;
    await client.admin("drain", { node: victim });
    try {
      // Collections with RF 3 cannot leave a 3-node cluster's third node: only the others must move.
      // The deadline is well under the 120 s migration stall timeout: a move that loses its learner
      // (as concurrent placement writes once made it do) stalls that long and fails this.
      let seen: unknown;
      await waitFor(async () => {
        const s = await client.clusterStatus();
        const pending = s.collections.filter((c) => c.replicas < 3 && c.shards.some((sh) => sh.replicas.some((r) => r.node === victim || r.state !== "serving")));
        seen = { pending, migrations: (await client.admin<{ migrations: unknown[] }>("migrations")).migrations };
        return pending.length === 0;
      }, { what: `${victim} drained`, timeoutMs: 90_000 }).catch((err) => {
        throw new Error(`${errorMessage(err)}\n${JSON.stringify(seen, null, 1).slice(0, 6_000)}`);
      });
      const r = await client.search("spread", { vector: randomPoints(1, 8, 77)[0]!, k: 3, timeoutMs: 2_000 });
      expect(r.partial).toBe(false);
    } finally {
      await client.admin("undrain", { node: victim });
    }
  });
});

describe("coordinator failover", () => {
  it("hands the coordinator role to another node when the leader dies", async () => {
    const old = await leaseHolder();
    expect(old).not.toBeNull();
    await nodes.get(old!)!.kill9();
    const next = await waitFor(async () => {
      const holder = await leaseHolder();
      return holder !== null && holder !== old ? holder : undefined;
    }, { what: "a new coordinator", timeoutMs: 30_000 });
    expect(["n1", "n2", "n3"].filter((n) => n !== old)).toContain(next);
    // The new leader re-places the dead node's replicas on the survivors.
    const placed = await waitFor(async () => {
      const c = (await client.clusterStatus()).collections.find((x) => x.name === "spread");
      return c && c.shards.every((s) => s.replicas.length === 2 && s.replicas.every((r) => r.node !== old && r.state === "serving")) ? c : undefined;
    }, { what: "spread re-placed without the dead node", timeoutMs: 60_000 });
    expect(placed.shards).toHaveLength(4);
    expect((await client.count("spread", { consistency: "strong" })).count).toBe(300);
  });
});

it("keeps the shard logs and KV replicated on every NATS server", async () => {
  const jsm = await jetstreamManager(client.nc);
  const info = await jsm.streams.info(names.logStream("spread", 0));
  expect(info.config.num_replicas).toBe(3);
});
