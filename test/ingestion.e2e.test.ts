/**
 * JetStream ingestion: records published to `jade.ingest.<collection>` land in
 * the collection; a bad record in the middle is dead-lettered with its reason
 * while the good ones keep flowing.
 */
import { DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { JadeClient } from "../src/client/client.ts";
import type { DeadLetter } from "../src/actors/write/ingestion.ts";
import { names, subjects } from "../src/runtime/subjects.ts";
import { Harness, waitFor } from "./support/harness.ts";

const harness = new Harness();
let client: JadeClient;

beforeAll(async () => {
  client = await harness.singleNode();
  await client.createCollection({ name: "events", dimension: 3, metric: "l2", shards: 2 });
});
afterAll(() => harness.close());

it("lands good records and dead-letters the bad one in the middle", async () => {
  const js = jetstream(client.nc);
  const publish = (subject: string, body: string) => js.publish(subject, body);
  for (let i = 0; i < 5; i++) await publish(subjects.ingest("events"), JSON.stringify({ id: `single-${i}`, vector: [i, 1, 2], payload: { i } }));
  await publish(subjects.ingest("events"), JSON.stringify({ id: "wrong-dim", vector: [1, 2] }));
  await publish(subjects.ingest("events"), "{not json");
  await publish(
    subjects.ingest("events"),
    JSON.stringify({ points: [{ id: "batch-0", vector: [0, 0, 1] }, { id: "", vector: [1, 1, 1] }, { id: "batch-2", vector: [0, 1, 0] }] }),
  );
  await publish(subjects.ingest("nosuch"), JSON.stringify({ id: "x", vector: [1, 2, 3] }));
  for (let i = 5; i < 10; i++) await publish(subjects.ingest("events"), JSON.stringify({ id: `single-${i}`, vector: [i, 1, 2] }));

  await waitFor(async () => (await client.count("events")).count === 12, { what: "12 ingested points" });
  const { points } = await client.get("events", { ids: ["single-0", "single-9", "batch-0", "batch-2", "wrong-dim"] });
  expect(points.map((p) => p.id)).toEqual(["single-0", "single-9", "batch-0", "batch-2"]);
  expect(points[0]!.payload).toEqual({ i: 0 });

  const consumer = await js.consumers.get(names.dlqStream, { deliver_policy: DeliverPolicy.All });
  const letters: DeadLetter[] = [];
  await waitFor(async () => {
    const m = await consumer.next({ expires: 1_000 });
    if (m) letters.push(m.json<DeadLetter>());
    return letters.length >= 4;
  }, { what: "4 dead letters" });
  const reasons = letters.map((l) => [l.collection, l.error.code, l.index ?? null]);
  expect(reasons).toEqual(
    expect.arrayContaining([
      ["events", "dimension_mismatch", null],
      ["events", "invalid_argument", null],
      ["events", "invalid_argument", 1],
      ["nosuch", "not_found", null],
    ]),
  );
  const wrongDim = letters.find((l) => l.error.code === "dimension_mismatch")!;
  expect(wrongDim.record).toEqual({ id: "wrong-dim", vector: [1, 2] });

  // The ingest stream is a work queue: everything was acknowledged, nothing is left.
  const jsm = await jetstreamManager(client.nc);
  await waitFor(async () => (await jsm.streams.info(names.ingestStream)).state.messages === 0, {
    what: "ingest stream drained",
  });
});
