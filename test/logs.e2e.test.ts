/**
 * Log shipping end to end: a `jade dev` process logging at info ships its lines to
 * `jade.logs.<node>`; `jade logs` reads them back from the stream (by node, level and age),
 * and `--follow` prints lines written after it started.
 */
import { execFile, spawn, spawnSync } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatLogLine } from "../src/cli/commands/logs.ts";
import { Harness, jadeBin, repoRoot, waitFor, type ChildNode } from "./support/harness.ts";

const harness = new Harness();
let dev: ChildNode;
let nodeId: string;

function jade(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [jadeBin, ...args, "--nats", dev.natsUrl], { cwd: repoRoot, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

beforeAll(async () => {
  dev = await harness.spawnJade(["dev", "--data", await harness.tempDir(), "--nats-port", "0", "--http-port", "0"], { env: { JADE_LOG_LEVEL: "info" } });
  nodeId = /node=(\S+)/.exec(dev.readyLine)![1]!;
});
afterAll(() => harness.close());

describe("jade logs", () => {
  it("reads a node's recent lines back from NATS, filtered by node and level", async () => {
    const out = await waitFor(async () => {
      const run = await jade(["logs"]);
      return run.stdout.includes("node started") && run;
    });
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3} INFO  ${nodeId}: node started `, "m"));
    const json = (await jade(["logs", "--json", "--node", nodeId])).stdout.trim().split("\n").map((l) => JSON.parse(l) as { node: string; level: number });
    expect(json.length).toBeGreaterThanOrEqual(2);
    expect(json.every((l) => l.node === nodeId)).toBe(true);
    expect((await jade(["logs", "--node", "someone-else"])).stdout).toBe("");
    expect((await jade(["logs", "--level", "error"])).stdout).not.toContain("node started");
    expect((await jade(["logs", "--since", "1ms"])).stdout).toBe("");
    const bad = await jade(["logs", "--since", "soon"]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/must be a duration/);
  });

  it("--follow prints lines written after it started", async () => {
    const follower = spawn(process.execPath, [jadeBin, "logs", "--follow", "--since", "1ms", "--nats", dev.natsUrl], { cwd: repoRoot });
    const lines: string[] = [];
    createInterface({ input: follower.stdout }).on("line", (l) => lines.push(l));
    try {
      // Until it is consuming, a line written now may come before its start time: write until one arrives.
      await waitFor(async () => {
        await jade(["collections", "create", `f${Date.now()}`, "--dimension", "2", "--metric", "l2"]);
        return lines.some((l) => l.includes("collection created"));
      }, { timeoutMs: 30_000, intervalMs: 500 });
    } finally {
      follower.kill("SIGINT");
    }
  });

  it("jade diag bundles status, config, logs, every node's info and metrics, and versions", async () => {
    const dir = await harness.tempDir();
    const out = path.join(dir, "bundle.tar.gz");
    const run = await jade(["diag", "--out", out]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`wrote ${out}`);
    expect(spawnSync("tar", ["-xzf", out, "-C", dir]).status).toBe(0);
    const [bundle] = (await readdir(dir)).filter((f) => f.startsWith("jade-diag-"));
    const read = (file: string) => readFile(path.join(dir, bundle!, file), "utf8");
    expect(JSON.parse(await read("errors.json"))).toEqual([]);
    expect((JSON.parse(await read("status.json")) as { coordinator: string }).coordinator).toBe(nodeId);
    expect(await read(`nodes/${nodeId}/metrics.txt`)).toMatch(/^jade_requests_total\{/m);
    expect(JSON.parse(await read(`nodes/${nodeId}/info.json`))).toMatchObject({ node: nodeId, version: expect.any(String), natsServerVersion: expect.stringMatching(/^2\./) });
    expect(await read("logs.jsonl")).toContain('"msg":"node started"');
    expect(JSON.parse(await read("versions.json"))).toMatchObject({ cli: expect.any(String), natsServer: expect.any(String) });
    expect(JSON.parse(await read("collections.json")).length).toBeGreaterThan(0);
  });

  it("formats a line for people, and leaves a line that is not JSON as it is", () => {
    const line = JSON.stringify({ level: 40, time: Date.UTC(2026, 0, 2, 3, 4, 5, 6), pid: 1, node: "n1", actor: "gateway", msg: "request failed", ms: 3 });
    expect(formatLogLine(line)).toBe('03:04:05.006 WARN  n1 gateway: request failed {"ms":3}');
    expect(formatLogLine("plain text\n")).toBe("plain text");
  });
});
