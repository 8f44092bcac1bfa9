/**
 * The admin dashboard in a real browser (Debian's Chromium through playwright-core) against a
 * real 3-node cluster: the page loads small and from the node alone, shows the nodes and the
 * shard × replica grid live, drains a node from the page and shows its replicas move, shows
 * the nodes' log lines as they come, shows a backup's progress, a killed node as silent and a
 * cleanly stopped one as restarting, and leaves screenshots in test/artifacts/.
 */
import { mkdir } from "node:fs/promises";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JadeClient } from "../src/client/client.ts";
import type { JadeNode } from "../src/node.ts";
import { processLogLevel, setLogLevel } from "../src/runtime/log.ts";
import { Harness, randomPoints, repoRoot, waitFor } from "./support/harness.ts";

const harness = new Harness();
const nodeIds = ["d1", "d2", "d3"];
const pageBytesMax = 200 * 1024;
const transferBytesPerSecMax = 256 * 1024;
let client: JadeClient;
let natsUrl: string;
let web: JadeNode;
let browser: Browser;
let page: Page;
const outside: string[] = [];

beforeAll(async () => {
  const nats = await harness.nats();
  natsUrl = nats.url;
  // At info, so the nodes ship log lines for the page to show.
  setLogLevel("info");
  for (const nodeId of nodeIds) {
    // A transfer budget that makes a move of a few MiB take seconds, long enough to watch it on the page.
    const replica = { transferBytesPerSecMax: transferBytesPerSecMax };
    const node = await harness.node([nats.url], { nodeId, replica, ...(nodeId === "d1" ? { http: { port: 0, host: "127.0.0.1" } } : {}) });
    if (nodeId === "d1") web = node;
  }
  client = await harness.client(nats.url);
  await client.createCollection({ name: "dash", dimension: 4, metric: "l2", shards: 3, replicas: 1 });
  await client.upsert("dash", { points: randomPoints(60, 4, 9).map((vector, i) => ({ id: `p${i}`, vector })), consistency: "all" });
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  page = await browser.newPage({ viewport: { width: 1400, height: 1600 } });
  page.on("request", (req) => {
    if (!req.url().startsWith(web.httpUrl!)) outside.push(req.url());
  });
}, 120_000);
afterAll(async () => {
  await browser?.close();
  await harness.close();
  setLogLevel(processLogLevel);
});

/** The nodes holding a replica of `dash`, as the page's grid shows them. */
async function gridNodes(): Promise<string[]> {
  return page.locator('[data-collection="dash"] td[data-node]').evaluateAll((cells) => cells.map((c) => c.getAttribute("data-node")!));
}

describe("the dashboard", () => {
  it("is small, and comes from the node alone", async () => {
    let bytes = 0;
    for (const path of ["/", "/dashboard/app.js", "/dashboard/style.css"]) {
      const res = await fetch(`${web.httpUrl}${path}`);
      expect(res.status, path).toBe(200);
      bytes += (await res.arrayBuffer()).byteLength;
    }
    expect(bytes).toBeLessThan(pageBytesMax);
  });

  it("shows the cluster live, drains a node from the page and shows its replicas move, and shows log lines", async () => {
    await page.goto(web.httpUrl!);
    await page.getByTestId("live").filter({ hasText: "live" }).waitFor();
    await waitFor(async () => (await page.locator("#nodes tr").count()) === 3, { what: "three nodes on the page" });
    await waitFor(async () => (await gridNodes()).length === 3, { what: "the grid" });
    await expect.poll(() => page.getByTestId("coordinator").textContent()).toMatch(/coordinator: d\d/);
    // Every shard on its own node (RF 1, three nodes): drain one that holds one.
    const victim = (await gridNodes()).find((n) => n !== "d1")!;
    expect(Number(await page.getByTestId(`replicas-${victim}`).textContent())).toBe(1);
    // Updates happen in place: a button survives the status pushed every second (a click is never lost to a re-render).
    const drainButton = await page.getByTestId(`drain-${victim}`).elementHandle();
    const heartbeat = page.locator(`#nodes tr[data-node="${victim}"] td`).nth(5);
    for (let push = 0; push < 2; push++) {
      const before = await heartbeat.textContent();
      await waitFor(async () => (await heartbeat.textContent()) !== before, { what: "a status push" });
    }
    expect(await drainButton!.evaluate((button) => button.isConnected)).toBe(true);
    await page.getByTestId(`drain-${victim}`).click();
    await page.getByTestId("notice").filter({ hasText: `draining ${victim}` }).waitFor();
    await waitFor(async () => (await page.getByTestId(`replicas-${victim}`).textContent()) === "0" && !(await gridNodes()).includes(victim), {
      timeoutMs: 60_000,
      what: `the page to show ${victim}'s replica moved`,
    });
    expect((await gridNodes()).sort()).toHaveLength(3);
    await page.getByTestId(`state-${victim}`).filter({ hasText: "drained" }).waitFor();
    await page.getByTestId(`undrain-${victim}`).click();
    await page.getByTestId(`state-${victim}`).filter({ hasNotText: "drained" }).waitFor();
    // The migration's cutover is logged by the coordinator, shipped, and pushed to the page.
    const cutover = page.locator("#logs li", { hasText: "placement updated by a migration" });
    await cutover.first().waitFor({ timeout: 30_000 });
    // Filtering by level hides info lines.
    await page.getByTestId("log-level").selectOption("50");
    expect(await cutover.count()).toBe(0);
    await page.getByTestId("log-level").selectOption("30");
    await mkdir(`${repoRoot}/test/artifacts`, { recursive: true });
    await page.screenshot({ path: `${repoRoot}/test/artifacts/dashboard.png`, fullPage: true });
    // The data is still all there.
    expect((await client.count("dash", { consistency: "strong" })).count).toBe(60);
    expect(outside).toEqual([]);
  });

  it("shows a move's learner and its copy, and pauses and resumes it from the page", async () => {
    await client.createCollection({ name: "held", dimension: 32, metric: "l2", shards: 1, replicas: 1 });
    const vectors = randomPoints(10_000, 32, 4);
    for (let i = 0; i < vectors.length; i += 1_000) {
      await client.upsert("held", { points: vectors.slice(i, i + 1_000).map((vector, j) => ({ id: `h${i + j}`, vector })), consistency: "all" });
    }
    const from = await waitFor(async () => {
      const shard = (await client.clusterStatus()).collections.find((c) => c.name === "held")?.shards[0];
      return shard?.replicas[0]?.state === "serving" && shard.replicas[0].node;
    }, { what: "held placed" });
    const to = nodeIds.find((n) => n !== from)!;
    // Some MiB at 256 KiB/s: the copy takes seconds, and the page shows it.
    const move = await client.admin<{ id: string }>("move", { collection: "held", shard: 0, from, to });
    const learner = page.locator(`[data-collection="held"] td[data-learner-node="${to}"]`);
    await learner.waitFor({ timeout: 30_000 });
    const row = page.locator(`[data-migration="${move.id}"]`);
    await row.filter({ hasText: "copying" }).waitFor({ timeout: 30_000 });
    await page.getByTestId(`pause-${move.id}`).click();
    await row.filter({ hasText: "paused" }).waitFor({ timeout: 30_000 });
    // Only what the paused migration accepts can be clicked.
    await expect.poll(() => page.getByTestId(`pause-${move.id}`).isDisabled()).toBe(true);
    expect(await page.getByTestId(`cancel-${move.id}`).isDisabled()).toBe(false);
    await page.getByTestId(`resume-${move.id}`).click();
    await learner.waitFor({ state: "detached", timeout: 90_000 });
    await page.locator(`[data-collection="held"] td[data-node="${to}"]`).waitFor({ timeout: 30_000 });
    expect((await client.count("held", { consistency: "strong" })).count).toBe(10_000);
  });

  it("asks for an API key where the node requires one, and works with one that may administer", async () => {
    // A node of its own, so the keys it requires touch no other test.
    const nats = await harness.nats();
    const keyed = await harness.node([nats.url], { nodeId: "k1", http: { port: 0, host: "127.0.0.1", apiKeys: true } });
    const admin = await harness.client(nats.url);
    const viewer = await admin.admin<{ key: string }>("keys.create", { name: "viewer", scopes: [{ collection: "dash", access: "read" }] });
    const operator = await admin.admin<{ key: string }>("keys.create", { name: "operator", scopes: [{ collection: "*", access: "admin" }] });
    const keyPage = await browser.newPage();
    try {
      await keyPage.goto(keyed.httpUrl!);
      await keyPage.getByTestId("live").filter({ hasText: "needs a key" }).waitFor();
      await keyPage.getByTestId("notice").filter({ hasText: "unauthorized" }).waitFor();
      // A key that may only read one collection may not watch the whole cluster.
      await keyPage.getByTestId("api-key").fill(viewer.key);
      await keyPage.getByTestId("api-key").press("Enter");
      await keyPage.getByTestId("notice").filter({ hasText: "forbidden" }).waitFor();
      await keyPage.getByTestId("api-key").fill(operator.key);
      await keyPage.getByTestId("api-key").press("Enter");
      await keyPage.getByTestId("live").filter({ hasText: /^live$/ }).waitFor();
      await keyPage.locator('#nodes tr[data-node="k1"]').waitFor();
      // Operations from the page carry the key.
      await keyPage.locator('#create input[name="name"]').fill("keyed");
      await keyPage.locator('#create input[name="dimension"]').fill("2");
      await keyPage.locator("#create button").click();
      await keyPage.locator('[data-collection="keyed"]').waitFor({ timeout: 30_000 });
      // The key is the tab's, never the page's address.
      expect(keyPage.url()).not.toContain(operator.key);
    } finally {
      await keyPage.close();
    }
  });

  it("creates and drops a collection, backs up, and restores a backup under another name, from the page", async () => {
    await page.locator('#create input[name="name"]').fill("fromui");
    await page.locator('#create input[name="dimension"]').fill("3");
    await page.locator("#create button").click();
    await page.locator('[data-collection="fromui"]').waitFor({ timeout: 30_000 });
    expect((await client.getCollection("fromui")).dimension).toBe(3);
    page.once("dialog", (dialog) => void dialog.accept());
    await page.locator('[data-collection="fromui"] button', { hasText: "drop" }).click();
    await page.locator('[data-collection="fromui"]').waitFor({ state: "detached", timeout: 30_000 });
    // Back up from the page, then restore the backup under another name from the page.
    await page.locator("#backup").click();
    await page.getByTestId("notice").filter({ hasText: "backup started" }).waitFor();
    const backupId = await waitFor(async () => {
      await page.locator("#list-backups").click();
      return (await page.locator("#backups tr[data-backup]").first().getAttribute("data-backup", { timeout: 1_000 }).catch(() => null)) ?? undefined;
    }, { timeoutMs: 60_000, intervalMs: 500, what: "a complete backup listed on the page" });
    // The backup holds every collection: restore one of them under another name.
    await page.getByTestId(`restore-collection-${backupId}`).selectOption("dash");
    await page.getByTestId(`restore-as-${backupId}`).fill("dash_copy");
    await page.getByTestId(`restore-${backupId}`).click();
    await page.locator('[data-collection="dash_copy"]').waitFor({ timeout: 60_000 });
    await waitFor(async () => (await client.count("dash_copy", { consistency: "strong" }).catch(() => ({ count: -1 }))).count === 60, { timeoutMs: 60_000, what: "the restored copy to serve" });
    // A refused operation says why.
    await page.locator('#create input[name="name"]').fill("dash");
    await page.locator("#create button").click();
    await page.getByTestId("notice").filter({ hasText: "already_exists" }).waitFor();
  });

  it("shows a backup in progress, a node killed as silent, and a node stopped cleanly as restarting", async () => {
    // A backup at the slowest budget (1 MiB/s) of ~4 MB of log, copied then read back: seconds of progress on the page.
    await client.createCollection({ name: "busy", dimension: 32, metric: "l2", shards: 2, replicas: 1 });
    const vectors = randomPoints(30_000, 32, 5);
    for (let i = 0; i < vectors.length; i += 5_000) {
      await client.upsert("busy", { points: vectors.slice(i, i + 5_000).map((vector, j) => ({ id: `b${i + j}`, vector })), consistency: "all" });
    }
    await page.goto(web.httpUrl!);
    await page.getByTestId("live").filter({ hasText: "live" }).waitFor();
    const dir = await harness.tempDir("jade-dash-backups-");
    const slow = await client.createBackup({ collections: ["busy"], to: { dir }, bytesPerSecMax: 1 << 20 });
    const job = page.locator("#jobs p", { hasText: `backup ${slow.id}` });
    await job.waitFor({ timeout: 30_000 });
    await waitFor(async () => Number(await job.locator("progress").getAttribute("value")) > 0, { what: "the backup's progress on the page" });
    // A node that dies without a word goes silent; one that stops cleanly is expected back.
    const killed = await harness.spawnJade(["start", "--nats", natsUrl, "--data", await harness.tempDir(), "--node-id", "d8"]);
    const stopped = await harness.node([natsUrl], { nodeId: "d9" });
    for (const id of ["d8", "d9"]) await page.getByTestId(`state-${id}`).filter({ hasText: /^live/ }).waitFor({ timeout: 30_000 });
    await killed.kill9();
    await stopped.stop();
    await page.getByTestId("state-d9").filter({ hasText: "restarting · stopped cleanly" }).waitFor({ timeout: 30_000 });
    await page.getByTestId("state-d8").filter({ hasText: /^silent/ }).waitFor({ timeout: 60_000 });
    expect(await page.locator('#nodes tr[data-node="d9"]').getAttribute("class")).toBe("restarting");
    await mkdir(`${repoRoot}/test/artifacts`, { recursive: true });
    await page.screenshot({ path: `${repoRoot}/test/artifacts/dashboard-failures.png`, fullPage: true });
    await waitFor(async () => (await client.listBackups()).find((b) => b.id === slow.id)?.state === "complete", { timeoutMs: 60_000, what: "the slow backup to complete" });
    await job.waitFor({ state: "detached", timeout: 30_000 });
  });
});
