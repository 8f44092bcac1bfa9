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
import { encodeBody, Encoding, encodingHeader, float32Bytes } from "../src/runtime/encoding.ts";
import { headers } from "@nats-io/nats-core";
import { Harness, waitFor } from "./support/harness.ts";
import { unversioned } from "./support/points.ts";

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

it("lands msgpack records in columns, dead-lettering a bad row alone", async () => {
  await client.createCollection({ name: "binary", dimension: 3, metric: "l2", shards: 2 });
  const js = jetstream(client.nc);
  const h = headers();
  h.set(encodingHeader, Encoding.Msgpack);
  const vectors = Float32Array.from([1, 0, 0, 0, Number.NaN, 0, 0, 0, 1, 0.5, 0.5, 0.5]);
  const record = { ids: ["m0", "m1", "m2", ""], vectors: float32Bytes(vectors), payloads: [{ n: 0 }, null, null, null] };
  await js.publish(subjects.ingest("binary"), encodeBody(record, Encoding.Msgpack), { headers: h });
  await js.publish(subjects.ingest("binary"), encodeBody({ id: "single", vector: float32Bytes(Float32Array.from([3, 3, 3])) }, Encoding.Msgpack), { headers: h });
  await js.publish(subjects.ingest("binary"), new Uint8Array([0xc1]), { headers: h });

  await waitFor(async () => (await client.count("binary")).count === 3, { what: "3 ingested points" });
  const { points } = await client.get("binary", { ids: ["m0", "m1", "m2", "single"], withVectors: true });
  expect(unversioned(points)).toEqual([
    { id: "m0", vector: [1, 0, 0], payload: { n: 0 } },
    { id: "m2", vector: [0, 0, 1] },
    { id: "single", vector: [3, 3, 3] },
  ]);
  const consumer = await js.consumers.get(names.dlqStream, { deliver_policy: DeliverPolicy.All });
  const letters: DeadLetter[] = [];
  await waitFor(async () => {
    const m = await consumer.next({ expires: 1_000 });
    const letter = m?.json<DeadLetter>();
    if (letter?.collection === "binary") letters.push(letter);
    return letters.length >= 3;
  }, { what: "3 dead letters" });
  expect(letters.map((l) => [l.error.code, l.index ?? -1]).sort()).toEqual([
    ["invalid_argument", -1],
    ["invalid_argument", 1],
    ["invalid_argument", 3],
  ]);
  expect(letters.find((l) => l.index === 1)?.record).toMatchObject({ id: "m1" });
});
