/**
 * Reproduces the replica follow-loop stall seen in `npm run bench` (entries delivered to the
 * replica but never applied until another write arrives): the loop of
 * src/actors/replica/follow.ts, verbatim in its batching decision, against a plain stream with
 * a fake apply. `messages.getPending()` of @nats-io/jetstream 3.4 consume() can stay > 0 after
 * the last message was yielded (QueuedIteratorImpl.iterate does not decrement `inflight` for the
 * pull-request callbacks it queues among messages), so the loop `continue`s waiting for a
 * message that never comes. Timing-dependent: try a few settings.
 *
 *   npx tsx bench/repro-follow-stall.ts [applyMsPerEntry=150] [maxBytesMB=64]
 *   e.g. `100 16` reproduced it here: "last delivered seq 60 (getPending() then: 3), applied through 54".
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { connect } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, DeliverPolicy } from "@nats-io/jetstream";
import { startEmbeddedNats } from "../src/nats/embedded.ts";
import { delay } from "../src/runtime/async.ts";
const dir = await mkdtemp(path.join(os.tmpdir(), "pend-"));
const nats = await startEmbeddedNats({ dataDir: dir });
const nc = await connect({ servers: nats.url });
const jsm = await jetstreamManager(nc);
await jsm.streams.add({ name: "T", subjects: ["t"] });
const js = jetstream(nc);
const payload = new Uint8Array(1_570_000); // one 500-point × 784-d log entry
const total = 60;
const applyMsPerEntry = Number(process.argv[2] ?? 150);
const consumer = await js.consumers.get("T", { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: 1 });
const messages = await consumer.consume({ max_bytes: Number(process.argv[3] ?? 64) * 1024 * 1024 });
const pubs = (async () => { for (let i = 0; i < total; i++) { await js.publish("t", payload); await delay(50); } })();
let applied = 0;
let last: { seq: number; gp: number } | undefined;
const loop = (async () => {
  let batch: number[] = [];
  for await (const m of messages) {
    batch.push(m.seq);
    const gp = messages.getPending();
    last = { seq: m.seq, gp };
    if (gp > 0 && batch.length < 512) continue;
    await delay(applyMsPerEntry * batch.length);
    applied = batch[batch.length - 1]!;
    batch = [];
  }
})();
await pubs;
for (let i = 0; i < 1200 && applied < total; i++) await delay(100);
await delay(5000);
console.log(`published ${total}, last delivered seq ${last?.seq} (getPending() then: ${last?.gp}), applied through ${applied}`);
console.log(applied < total ? "STALLED: delivered messages sit in the follow loop's batch" : "no stall this time");
messages.stop(); await loop.catch(() => undefined);
await nc.close(); await nats.stop(); await rm(dir, { recursive: true, force: true });
process.exit(0);
