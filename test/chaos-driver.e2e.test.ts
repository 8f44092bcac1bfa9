import { afterAll, describe, expect, it } from "vitest";
import { LocalDriver } from "../chaos/local-driver.ts";
import { waitFor } from "./support/harness.ts";

describe("the chaos harness's local driver", () => {
  const driver = new LocalDriver({ workers: 1 });
  afterAll(async () => {
    await driver.stop();
    await driver.removeLogs();
  });

  it("reports a node that exits on its own as a crash, and none that a fault killed or restarted", async () => {
    // Three servers: JetStream in a cluster of one has no quorum.
    await driver.start({ nodes: 2, natsServers: 3 });
    const healKill = await driver.inject({ kind: "kill", target: { kind: "node", id: "n1" } });
    await healKill();
    const healRestart = await driver.inject({ kind: "restart", target: { kind: "node", id: "n1" } });
    await healRestart();
    expect(driver.nodeCrashes).toEqual([]);

    // n2 dies behind the driver's back, as a native abort would end it.
    process.kill(driver.nodePid("n2")!, "SIGABRT");
    await waitFor(async () => driver.nodeCrashes.length > 0, { what: "the crash reported", timeoutMs: 10_000 });
    expect(driver.nodeCrashes).toEqual([expect.objectContaining({ node: "n2", code: null, signal: "SIGABRT" })]);
    expect(driver.nodePid("n2")).toBeUndefined();
    expect(driver.nodePid("n1")).toBeTypeOf("number");
  });
});
