/**
 * kill -9 of a transaction's gateway (decision 013, "Recovery") on 3 nodes: stopped by a
 * failpoint (runtime/failpoints.ts) after its prepares and before its commit point, or after
 * the commit point and before its markers, then killed. Recovery on the coordinator finishes
 * it from its record: the first is aborted, the second committed, on every shard, and no read
 * sees half of it meanwhile.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JadeClient } from "../src/client/client.ts";
import { TxnRecords } from "../src/actors/txn/records.ts";
import { Failpoint } from "../src/runtime/failpoints.ts";
import type { TxnRecord } from "../src/runtime/txn-schemas.ts";
import { Harness, waitFor } from "./support/harness.ts";

const harness = new Harness();
afterAll(() => harness.close());
let client: JadeClient;
let natsUrl: string;
let records: TxnRecords;
const timeoutMs = 1_500;

beforeAll(async () => {
  const nats = await harness.nats();
  natsUrl = nats.url;
  // Recovery takes over 200 ms past a transaction's deadline (10 s by default); the coordinator is one of these two.
  const coordinator = { txnRecoveryGraceMs: 200 };
  const first = await harness.node([nats.url], { nodeId: "k1", coordinator });
  await harness.node([nats.url], { nodeId: "k2", coordinator });
  client = await harness.client(nats.url);
  await client.createCollection({ name: "kc", dimension: 2, metric: "l2", shards: 4, replicas: 2 });
  records = new TxnRecords(first.nats.txns);
}, 60_000);

const ids = (prefix: string) => Array.from({ length: 8 }, (_, i) => `${prefix}${i}`);

/** Starts a third node stopped at `failpoint`, sends it a transaction over HTTP, and kills it -9 once it stopped there. */
async function gatewayKilledAt(failpoint: Failpoint, nodeId: string, points: string[]): Promise<TxnRecord> {
  const gateway = await harness.spawnJade(["start", "--nats", natsUrl, "--data", await harness.tempDir(), "--node-id", nodeId, "--http-port", "0", "--no-auto-rebalance"], { env: { JADE_FAILPOINTS: failpoint } });
  const body = { ops: [{ op: "upsert", points: points.map((id, i) => ({ id, vector: [i, i], payload: { g: nodeId } })) }], timeoutMs };
  const told = fetch(`${gateway.httpUrl}/v1/collections/kc/transaction`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) }).then(
    (r) => `answered ${r.status}`,
    () => "no answer",
  );
  await waitFor(() => gateway.output.some((line) => line.includes(`failpoint ${failpoint} reached`)), { what: `the gateway to stop at ${failpoint}` });
  const [record] = (await records.open()).filter((r) => r.node === nodeId);
  await gateway.kill9();
  expect(await told).toBe("no answer");
  return record!;
}

/** Reads the group until `done` holds, checking every read shows all of its points or none. */
async function watchUntil(g: string, points: string[], done: (shown: number) => boolean): Promise<void> {
  await waitFor(
    async () => {
      const [got, counted, found] = await Promise.all([
        client.get("kc", { ids: points, consistency: "eventual" }),
        client.count("kc", { filter: { g }, consistency: "strong" }),
        client.search("kc", { vector: [0, 0], k: 50, filter: { g }, consistency: "eventual" }),
      ]);
      const shown = [got.points.length, counted.count, found.hits.length];
      for (const n of shown) expect([0, points.length]).toContain(n);
      return shown.every(done);
    },
    { what: `reads of ${g} to settle`, timeoutMs: 30_000 },
  );
}

describe("a transaction's gateway killed -9", () => {
  it("after its prepares, before its commit point: recovery aborts it on every shard, and its points are free", async () => {
    const points = ids("a");
    const record = await gatewayKilledAt(Failpoint.TxnBeforeDecide, "k3", points);
    expect(record).toMatchObject({ state: "preparing", done: false });
    expect(Object.keys(record.prepareSeqs)).toHaveLength(record.shards.length);
    await waitFor(async () => (await records.get(record.id))?.done === true, { what: "recovery to finish it", timeoutMs: 30_000 });
    expect(await records.get(record.id)).toMatchObject({ state: "aborted", reason: /gateway did not decide/ });
    await watchUntil("k3", points, (n) => n === 0);
    // Nothing of it holds the points: a plain write to all of them lands.
    await client.upsert("kc", { points: points.map((id) => ({ id, vector: [1, 1], payload: { g: "plain" } })), consistency: "all" });
    expect((await client.count("kc", { filter: { g: "plain" }, consistency: "strong" })).count).toBe(points.length);
  });

  it("after its commit point, before its markers: recovery commits it on every shard, and no read sees half meanwhile", async () => {
    const points = ids("b");
    const record = await gatewayKilledAt(Failpoint.TxnBeforeMarkers, "k4", points);
    expect(await records.get(record.id)).toMatchObject({ state: "committed", done: false });
    await watchUntil("k4", points, (n) => n === points.length);
    await waitFor(async () => (await records.get(record.id))?.done === true, { what: "recovery to mark it done", timeoutMs: 30_000 });
  });
});
