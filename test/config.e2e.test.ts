/**
 * Central configuration end to end, on a real nats-server with two in-process nodes: `jade
 * config` validates a change whole (refusing it with the reason and writing nothing), every
 * node applies it live and reports the revision it runs, history, diff and rollback work; the
 * heartbeat interval, an API key's rate limit, the log level and the snapshot interval change
 * without a restart; a node whose own settings contradict a revision keeps the one it runs, and
 * the status and the dashboard (a real browser) show it on the old revision.
 */
import { execFile } from "node:child_process";
import { Kvm } from "@nats-io/kv";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NodeHeartbeat } from "../src/actors/cluster/membership.ts";
import type { JadeClient } from "../src/client/client.ts";
import type { JadeNode } from "../src/node.ts";
import { JadeError } from "../src/runtime/errors.ts";
import { onLogLine, processLogLevel, setLogLevel } from "../src/runtime/log.ts";
import { names } from "../src/runtime/subjects.ts";
import { Harness, jadeBin, randomPoints, repoRoot, waitFor } from "./support/harness.ts";

const harness = new Harness();
let natsUrl: string;
let a: JadeNode;
let client: JadeClient;
let operatorKey: string;

/** Node b's dead-node timeout is short: a failure timeout of 4 s suits a but contradicts b. */
const bNodeDeadAfterMs = 3_500;

function jade(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [jadeBin, ...args, "--nats", natsUrl], { cwd: repoRoot, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

async function heartbeats(): Promise<NodeHeartbeat[]> {
  const kv = await new Kvm(client.nc).open(names.nodesBucket);
  const out: NodeHeartbeat[] = [];
  for (const node of ["a", "b"]) {
    const entry = await kv.get(node);
    if (entry?.operation === "PUT") out.push(NodeHeartbeat.parse(entry.json()));
  }
  return out;
}

/** Until every node reports running `revision` (nodes: which ones). */
function untilRunning(revision: number, nodes = ["a", "b"]): Promise<unknown> {
  return waitFor(
    async () => {
      const status = await client.clusterStatus();
      return nodes.every((id) => status.nodes.find((n) => n.id === id)?.configRevision === revision) && status.configRevision >= revision;
    },
    { what: `nodes ${nodes.join(", ")} on settings revision ${revision}` },
  );
}

async function set(body: unknown): Promise<{ revision: number }> {
  return client.admin<{ revision: number }>("config.set", body);
}

async function refusal(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof JadeError)) throw new Error(`expected a refusal, got ${String(err)}`);
  return { code: err.code, message: err.message };
}

function http(path: string, init: { key?: string; body?: unknown } = {}): Promise<Response> {
  return fetch(`${a.httpUrl}${path}`, {
    method: init.body === undefined ? "GET" : "POST",
    headers: { "content-type": "application/json", ...(init.key ? { authorization: `Bearer ${init.key}` } : {}) },
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
}

beforeAll(async () => {
  const nats = await harness.nats();
  natsUrl = nats.url;
  a = await harness.node([nats.url], { nodeId: "a", http: { port: 0, host: "127.0.0.1", apiKeys: true } });
  await harness.node([nats.url], { nodeId: "b", coordinator: { nodeDeadAfterMs: bNodeDeadAfterMs } });
  client = await harness.client(nats.url);
  operatorKey = (await client.admin<{ key: string }>("keys.create", { name: "operator", scopes: [{ collection: "*", access: "admin" }] })).key;
}, 60_000);
afterAll(async () => {
  await harness.close();
  setLogLevel(processLogLevel);
});

describe("central configuration", () => {
  it("refuses a change that is malformed, out of bounds or breaks a relation, with the reason, and writes nothing", async () => {
    const twice = await refusal(set({ set: { "membership.failureTimeoutMs": 1_500 } }));
    expect(twice).toEqual({ code: "invalid_argument", message: expect.stringMatching(/membership.failureTimeoutMs \(1500\) must be at least twice membership.heartbeatIntervalMs \(1000\)/) });
    expect((await refusal(set({ set: { "membership.heartbeat": 500 } }))).message).toMatch(/membership.heartbeat is not a setting: one of membership.heartbeatIntervalMs/);
    expect((await refusal(set({ set: { "migration.concurrentMax": 0 } }))).code).toBe("invalid_argument");
    expect((await refusal(set({ set: { "log.level": "loud" } }))).message).toMatch(/^log.level/);
    expect((await refusal(set({}))).message).toMatch(/nothing to change/);
    expect((await refusal(client.admin("config.rollback", { revision: 999 }))).code).toBe("not_found");
    // The coordinator's subject does not serve settings: any gateway does.
    expect((await client.admin<{ revisions: unknown[] }>("config.history", {})).revisions).toEqual([]);
    const view = await client.admin<{ revision: number; nodes: { node: string; revision: number }[] }>("config.get", {});
    expect(view.revision).toBe(0);
    expect(view.nodes).toEqual([
      { node: "a", revision: 0 },
      { node: "b", revision: 0 },
    ]);
  });

  it("every node applies a change and reports its revision; history, diff, rollback and a stale revision through the CLI", async () => {
    const first = await jade(["config", "set", "migration.concurrentMax=3", "retention.pointInTimeMs=3600000", "--note", "more moves at once"]);
    expect(first.code, first.stderr).toBe(0);
    const r1 = Number(/^revision (\d+)/.exec(first.stdout)![1]);
    expect(first.stdout).toMatch(/migration.concurrentMax\s+—\s+3/);
    await untilRunning(r1);
    const second = await jade(["config", "unset", "retention.pointInTimeMs"]);
    const r2 = Number(/^revision (\d+)/.exec(second.stdout)![1]);
    expect(second.stdout).toMatch(/retention.pointInTimeMs\s+3600000\s+—/);
    const history = await jade(["config", "history"]);
    expect(history.stdout).toMatch(new RegExp(`^\\s*${r2}\\s.*retention.pointInTimeMs: 3600000 → —`, "m"));
    expect(history.stdout).toMatch(new RegExp(`^\\s*${r1}\\s.*more moves at once.*migration.concurrentMax: — → 3`, "m"));
    expect(JSON.parse((await jade(["config", "diff", String(r2), String(r1), "--json"])).stdout)).toEqual([{ path: "retention.pointInTimeMs", to: 3_600_000 }]);
    const stale = await jade(["config", "set", "migration.concurrentMax=4", "--revision", String(r1)]);
    expect(stale.code).not.toBe(0);
    expect(stale.stderr).toMatch(/conflict: the settings are at revision \d+, not \d+/);
    const back = await jade(["config", "rollback", String(r1), "--json"]);
    const r3 = (JSON.parse(back.stdout) as { revision: number }).revision;
    await untilRunning(r3);
    const get = JSON.parse((await jade(["config", "get", "--json"])).stdout) as { revision: number; note: string; settings: unknown; effective: { migration: { concurrentMax: number }; retention: { pointInTimeMs: number } } };
    expect(get).toMatchObject({ revision: r3, note: `rollback to revision ${r1}`, settings: { migration: { concurrentMax: 3 }, retention: { pointInTimeMs: 3_600_000 } } });
    expect(get.effective.migration.concurrentMax).toBe(3);
    expect((await jade(["status"])).stdout).toMatch(new RegExp(`^a .*rev ${r3}\\s*$`, "m"));
  });

  it("the heartbeat interval, an API key's rate limit and the log level change without a restart", async () => {
    // Beats a tenth of a second apart: ten in a row, each within half a second of the last, never
    // happen at the default (one a second).
    const { revision: fast } = await set({ set: { "membership.heartbeatIntervalMs": 100, "membership.failureTimeoutMs": 1_000 } });
    await untilRunning(fast);
    const kv = await new Kvm(client.nc).open(names.nodesBucket);
    const watch = await kv.watch({ key: "b" });
    const deadline = setTimeout(() => watch.stop(), 20_000);
    let last = 0;
    let quick = 0;
    for await (const _ of watch) {
      const now = performance.now();
      quick = last > 0 && now - last < 500 ? quick + 1 : 0;
      last = now;
      if (quick >= 10) break;
    }
    clearTimeout(deadline);
    watch.stop();
    expect(quick, "ten heartbeats in a row, each within 500 ms of the last").toBeGreaterThanOrEqual(10);

    const res = () => http("/v1/collections", { key: operatorKey });
    expect((await res()).status).toBe(200);
    const { revision: limited } = await set({ set: { "rateLimits.httpKey": { perSecond: 0.001, burst: 2 } } });
    await untilRunning(limited);
    const statuses = [(await res()).status, (await res()).status, (await res()).status];
    expect(statuses).toEqual([200, 200, 429]);
    const { revision: unlimited } = await set({ unset: ["rateLimits.httpKey"] });
    await untilRunning(unlimited);
    expect((await res()).status).toBe(200);

    // The tests run at level error: a node's "settings applied" line (info) is written only while the
    // cluster's level lets it through.
    const applied = new Set<number>();
    const off = onLogLine((line) => {
      const parsed = JSON.parse(line) as { msg: string; revision?: number; node?: string };
      if (parsed.msg === "settings applied" && parsed.node === "a") applied.add(parsed.revision!);
    });
    try {
      const { revision: toInfo } = await set({ set: { "log.level": "info" } });
      await untilRunning(toInfo);
      const { revision: heard } = await set({ set: { "migration.concurrentMax": 2 } });
      await untilRunning(heard);
      const { revision: toError } = await set({ set: { "log.level": "error" } });
      await untilRunning(toError);
      const { revision: quiet } = await set({ set: { "migration.concurrentMax": 1 } });
      await untilRunning(quiet);
      // Both nodes share this process's level: which of them applies a level change first decides
      // whether the other's line for that same revision is written, so only these two are certain.
      expect(applied.has(heard)).toBe(true);
      expect(applied.has(quiet)).toBe(false);
    } finally {
      off();
    }
    await untilRunning((await set({ unset: ["log.level", "membership.heartbeatIntervalMs", "membership.failureTimeoutMs"] })).revision);
  });

  it("a collection without its own snapshot interval follows the cluster's", async () => {
    await client.createCollection({ name: "snaps", dimension: 4, metric: "l2", shards: 1, replicas: 1 });
    const { revision } = await set({ set: { "snapshot.intervalMs": 200 } });
    await untilRunning(revision);
    await client.upsert("snaps", { points: randomPoints(5, 4, 3).map((vector, i) => ({ id: `p${i}`, vector })), consistency: "all" });
    // Five entries are far from the entry trigger (1,000): only the 200 ms interval saves them;
    // at the default (30 s) this wait would time out.
    await waitFor(
      async () => {
        const beat = (await heartbeats()).flatMap((h) => h.replicas).find((r) => r.collection === "snaps");
        return beat !== undefined && beat.appliedSeq > 0 && beat.checkpointSeq === beat.appliedSeq;
      },
      { timeoutMs: 15_000, what: "a checkpoint of snaps written on the cluster's interval" },
    );
    await untilRunning((await set({ unset: ["snapshot.intervalMs"] })).revision);
  });

  it("a node whose own settings contradict a revision keeps the one it runs; status and the dashboard show it, and it catches up after a rollback", async () => {
    const before = (await client.clusterStatus()).configRevision;
    // Through node a's HTTP: a judges the change against its own settings (b would refuse it).
    const res = await http("/v1/admin/config/set", { key: operatorKey, body: { set: { "membership.failureTimeoutMs": 4_000 } } });
    expect(res.status).toBe(200);
    const { result } = (await res.json()) as { result: { revision: number } };
    await untilRunning(result.revision, ["a"]);
    const status = await client.clusterStatus();
    expect(status.configRevision).toBe(result.revision);
    expect(status.nodes.find((n) => n.id === "b")?.configRevision).toBe(before);
    expect((await jade(["status"])).stdout).toMatch(new RegExp(`^b .*rev ${before} \\(OLD: ${result.revision} stored\\)`, "m"));
    // b still serves.
    expect((await client.request<{ collections: unknown[] }>(`jade.n.b.v1.collections.list`, {})).collections).toBeDefined();

    let browser: Browser | undefined;
    try {
      browser = await chromium.launch({
        executablePath: "/usr/bin/chromium",
        args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
      });
      const page = await browser.newPage();
      await page.goto(a.httpUrl!);
      await page.getByTestId("api-key").fill(operatorKey);
      await page.locator("#key-form button").click();
      const cell = page.getByTestId("settings-b");
      await waitFor(async () => /old/.test((await cell.textContent()) ?? ""), { what: "b shown on an old revision" });
      expect(await cell.getAttribute("class")).toBe("config-old");
      expect(await page.getByTestId("settings-a").textContent()).toBe(`rev ${result.revision}`);

      const back = await client.admin<{ revision: number }>("config.rollback", { revision: before });
      await untilRunning(back.revision);
      await waitFor(async () => (await cell.textContent()) === `rev ${back.revision}`, { what: "b caught up on the page" });
    } finally {
      await browser?.close();
    }
  });
});
