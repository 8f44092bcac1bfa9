/**
 * The `jade` client commands end to end: a real nats-server and node in this
 * process, the CLI as child processes (`node bin/jade.mjs … --nats <url>`).
 * Writes use `--consistency all` so the next command sees them without sleeps.
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeFvecs } from "../src/cli/fvecs.ts";
import { JadeClient } from "../src/client/client.ts";
import { JadeNode } from "../src/node.ts";
import { natsServerAvailable, startEmbeddedNats, type EmbeddedNats } from "../src/nats/embedded.ts";
import { seededRandom } from "./support/random.ts";
import { waitFor } from "./support/harness.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const bin = path.join(root, "bin", "jade.mjs");
const commandTimeoutMs = 60_000;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function jade(args: string[], options: { nats?: string; input?: string } = {}): Promise<Run> {
  const env = { ...process.env };
  delete env["JADE_NATS_URL"];
  return new Promise((resolve, reject) => {
    const child = execFile(
      process.execPath,
      [bin, ...args, "--nats", options.nats ?? natsUrl],
      { cwd: root, env, timeout: commandTimeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== "number") {
          reject(new Error(`jade ${args.join(" ")} did not finish: ${err.message}\n${stderr}`));
          return;
        }
        resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
      },
    );
    child.stdin?.end(options.input ?? "");
  });
}

/** Runs a command that must succeed and returns its stdout. */
async function ok(args: string[], options?: { input?: string }): Promise<string> {
  const run = await jade(args, options);
  expect(run.stderr, `stderr of jade ${args.join(" ")}`).toBe("");
  expect(run.code, `exit code of jade ${args.join(" ")}`).toBe(0);
  return run.stdout;
}

let natsUrl = "";
let nats: EmbeddedNats | undefined;
let node: JadeNode | undefined;
let client: JadeClient | undefined;
const dirs: string[] = [];

const available = natsServerAvailable();

describe.skipIf(!available)("jade CLI", { timeout: 120_000 }, () => {
  beforeAll(async () => {
    const natsDir = await mkdtemp(path.join(os.tmpdir(), "jade-cli-nats-"));
    const nodeDir = await mkdtemp(path.join(os.tmpdir(), "jade-cli-node-"));
    const filesDir = await mkdtemp(path.join(os.tmpdir(), "jade-cli-files-"));
    dirs.push(natsDir, nodeDir, filesDir);
    nats = await startEmbeddedNats({ dataDir: natsDir });
    natsUrl = nats.url;
    node = await JadeNode.start({ servers: [nats.url], dataDir: nodeDir, workers: 2 });
    client = await JadeClient.connect({ servers: nats.url, name: "cli-test" });
  }, 60_000);

  afterAll(async () => {
    await client?.close();
    await node?.stop();
    await nats?.stop();
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  }, 60_000);

  const file = (name: string) => path.join(dirs[2]!, name);

  it("creates, lists and gets collections", async () => {
    const created = await ok(["collections", "create", "docs", "--dimension", "3", "--metric", "cosine", "--shards", "2"]);
    expect(created).toContain("created collection docs");
    await ok(["collections", "create", "vecs", "--dimension", "8", "--metric", "l2", "--shards", "3", "--connectivity", "8", "--json"]);

    const list = await ok(["collections", "list"]);
    const lines = list.trim().split("\n");
    expect(lines[0]).toMatch(/^name\s+dimension\s+metric/);
    expect(lines.some((l) => /^docs\s+3\s+cosine\s+2\s+1\b/.test(l))).toBe(true);
    expect(lines.some((l) => /^vecs\s+8\s+l2\s+3\b/.test(l))).toBe(true);

    const config = JSON.parse(await ok(["collections", "get", "vecs", "--json"]));
    expect(config).toMatchObject({ name: "vecs", dimension: 8, metric: "l2", shards: 3, index: { connectivity: 8 } });
    // Created without a window or a snapshot interval of its own: the cluster's settings apply (jade config).
    expect(config.retention).toEqual({});
    expect(config.snapshot).toEqual({ everyEntries: 1_000 });
    expect(await ok(["collections", "get", "vecs"])).toMatch(/retention:\s+point-in-time window the cluster's retention.pointInTimeMs/);
  });

  it("changes a collection's point-in-time window", async () => {
    const updated = await ok(["collections", "update", "docs", "--point-in-time-ms", "0"]);
    expect(updated).toContain("updated collection docs");
    expect(updated).toMatch(/retention:\s+point-in-time window 0 ms/);
    expect(JSON.parse(await ok(["collections", "get", "docs", "--json"])).retention).toEqual({ pointInTimeMs: 0 });
    const refused = await jade(["collections", "update", "docs", "--point-in-time-ms", "99999999999"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("invalid_argument");
  });

  it("upserts JSON lines, skipping a malformed line with its number (exit 1) while the rest lands", async () => {
    const lines = [
      JSON.stringify({ id: "a", vector: [1, 0, 0], payload: { color: "red", year: 2021 } }),
      JSON.stringify({ id: "b", vector: [0, 1, 0], payload: { color: "blue", year: 2019 } }),
      '{"id":"broken","vector":[0,0,',
      "",
      JSON.stringify({ id: "c", vector: [0.7, 0.7, 0], payload: { color: "red", year: 2018 } }),
    ];
    await writeFile(file("points.jsonl"), lines.join("\n") + "\n");
    const run = await jade(["upsert", "docs", file("points.jsonl"), "--batch", "2", "--consistency", "all"]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/warning: line 3 skipped: malformed JSON/);
    expect(run.stdout).toMatch(/upserted 3 points in 2 batches/);
    expect(run.stdout).toMatch(/skipped 1 malformed line/);

    const { points } = await client!.get("docs", { ids: ["a", "b", "c", "broken"], consistency: "strong" });
    expect(points.map((p) => p.id)).toEqual(["a", "b", "c"]);
    expect(points[0]!.payload).toEqual({ color: "red", year: 2021 });
  });

  it("upserts from stdin", async () => {
    const out = await ok(["upsert", "docs", "--consistency", "all", "--json"], {
      input: JSON.stringify({ id: "d", vector: [0, 0, 1], payload: { color: "green" } }) + "\n",
    });
    expect(JSON.parse(out)).toMatchObject({ upserted: 1, skipped: 0 });
  });

  it("imports an .fvecs file, skipping a row the collection refuses by its number, and finds a stored vector first", async () => {
    const random = seededRandom(7);
    const vectors = Array.from({ length: 251 }, () => Array.from({ length: 8 }, () => Math.fround(random() * 2 - 1)));
    vectors[200]![3] = Number.NaN;
    await writeFile(file("vecs.fvecs"), encodeFvecs(vectors));
    const run = await jade([
      "import", "vecs", file("vecs.fvecs"), "--batch", "40", "--concurrency", "3", "--consistency", "all", "--id-prefix", "v",
    ]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/warning: row 200 skipped: vector\[3\]: NaN is not a finite float32/);
    expect(run.stdout).toMatch(/^imported 250 vectors in [\d.]+ s \([\d,]+ vectors\/s\); skipped 1 row$/m);
    expect((await ok(["count", "vecs", "--consistency", "strong"])).trim()).toBe("250");
    const { points } = await client!.get("vecs", { ids: ["v199", "v200", "v201"], consistency: "strong" });
    expect(points.map((p) => p.id)).toEqual(["v199", "v201"]);

    const result = JSON.parse(
      await ok(["search", "vecs", "--vector", JSON.stringify(vectors[17]), "-k", "3", "--with-vectors", "--json"]),
    );
    expect(result.partial).toBe(false);
    expect(result.hits).toHaveLength(3);
    expect(result.hits[0].id).toBe("v17");
    expect(result.hits[0].distance).toBeCloseTo(0, 5);
    expect(result.hits[0].vector).toEqual(vectors[17]);
  });

  it("searches with a human table and payloads", async () => {
    const out = await ok(["search", "docs", "--vector", "[0.9,0.1,0]", "-k", "2", "--with-payload", "--consistency", "strong"]);
    const rows = out.trim().split("\n");
    expect(rows[0]).toMatch(/^#\s+id\s+distance\s+payload$/);
    expect(rows[2]).toMatch(/^1\s+a\s+[\d.e-]+\s+\{"color":"red","year":2021\}$/);
    expect(rows[3]).toMatch(/^2\s+c\s/);
    expect(rows).toHaveLength(4);
  });

  it("counts with a filter", async () => {
    expect((await ok(["count", "docs", "--filter", '{"color":"red"}'])).trim()).toBe("2");
    expect((await ok(["count", "docs", "--filter", '{"year":{"$lt":2020}}'])).trim()).toBe("2");
    expect(JSON.parse(await ok(["count", "docs", "--json"]))).toMatchObject({ count: 4, partial: false });
  });

  it("gets and deletes points", async () => {
    const got = await jade(["get", "docs", "a", "nope"]);
    expect(got.code).toBe(0);
    expect(got.stdout).toMatch(/^a\s+\{"color":"red","year":2021\}$/m);
    expect(got.stderr).toContain("not found: nope");

    const deleted = await ok(["delete", "docs", "b", "--consistency", "all"]);
    expect(deleted).toMatch(/deleted 1 id/);
    expect(JSON.parse(await ok(["get", "docs", "b", "--json", "--consistency", "strong"])).points).toEqual([]);
    expect((await ok(["count", "docs", "--consistency", "strong"])).trim()).toBe("3");
  });

  it("shows the collections in status", async () => {
    const out = await ok(["status"]);
    expect(out).toContain(`coordinator: ${node!.nodeId}`);
    expect(out).toMatch(/collection docs: dimension 3, cosine, 2 shards/);
    expect(out).toMatch(/collection vecs: dimension 8, l2, 3 shards × RF 1, 250 points, placement epoch \d+/);
    expect(out).toMatch(new RegExp(`${node!.nodeId} \\(coordinator\\) \\*\\s+live`));
    expect(out).toMatch(/^\s+0\s+serving @\d+ lag \d+ n=\d+/m);
    // The log column, once the coordinator's retention pass has run: what the log holds and what holds its floor.
    const withLog = await waitFor(async () => {
      const text = await ok(["status"]);
      return /held by/.test(text) && text;
    }, { what: "the shard logs in status", timeoutMs: 30_000 });
    expect(withLog).toMatch(/\d+ KiB; purged ≤ \d+, held by (snapshot \d+|point-in-time window|no snapshot yet)/);
    const status = JSON.parse(await ok(["status", "--json"]));
    expect(status.collections.map((c: { name: string }) => c.name).sort()).toEqual(["docs", "vecs"]);
  });

  it("lists nodes and shards, and shows one node", async () => {
    const id = node!.nodeId;
    expect(await ok(["nodes", "list"])).toMatch(new RegExp(`^${id}\\s+live\\s+yes\\s+5\\s`, "m"));
    const nodes = JSON.parse(await ok(["nodes", "list", "--json"])) as { id: string; coordinator: boolean; replicas: number }[];
    expect(nodes).toEqual([expect.objectContaining({ id, coordinator: true, replicas: 5, live: true })]);
    const one = await ok(["nodes", "get", id]);
    expect(one).toMatch(/^coordinator:\s+yes$/m);
    expect(one).toMatch(/^vecs\s+2\s+serving\s+\d+\s+\d+\s+\d+$/m);
    const missing = await jade(["nodes", "get", "nobody"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/not_found: no node "nobody"/);
    const shards = JSON.parse(await ok(["shards", "list", "vecs", "--json"])) as { collection: string; shard: number; replicas: { node: string }[] }[];
    expect(shards.map((s) => [s.collection, s.shard, s.replicas[0]!.node])).toEqual([["vecs", 0, id], ["vecs", 1, id], ["vecs", 2, id]]);
    expect(await ok(["shards", "list"])).toMatch(new RegExp(`^docs\\s+1\\s+${id} serving lag \\d+`, "m"));
  });

  it("reports a server error with its code and exit 1", async () => {
    const run = await jade(["search", "nosuch", "--vector", "[1,0,0]"]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^error: not_found: collection "nosuch" does not exist$/m);
    expect(run.stdout).toBe("");

    const bad = await jade(["search", "docs", "--vector", "[1,0]"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: dimension_mismatch: /m);
  });

  it("exits 2 when it cannot connect", async () => {
    const run = await jade(["collections", "list"], { nats: "nats://127.0.0.1:1" });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/cannot connect to NATS/);
    expect(run.stderr).toMatch(/jade dev/);
  });

  it("drops a collection", async () => {
    expect(await ok(["collections", "drop", "vecs"])).toContain("dropped collection vecs");
    const run = await jade(["collections", "get", "vecs"]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("error: not_found");
  });
});
