/**
 * KvView against a real nats-server: when it is ready, what it caches, what listeners
 * hear, and that it never steps back to an older revision.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NatsConnection } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { listedKv, type ListedKv } from "../src/nats/kv-keys.ts";
import { jetstreamManager } from "@nats-io/jetstream";
import { pino } from "pino";
import { z } from "zod";
import { KvView, type KvChange } from "../src/nats/kv-view.ts";
import { Harness, waitFor } from "./support/harness.ts";

const Counter = z.object({ n: z.number().int() });
type Counter = z.infer<typeof Counter>;

const harness = new Harness();
let nc: NatsConnection;
let bucketCount = 0;

beforeAll(async () => {
  nc = await harness.connect((await harness.nats()).url);
});
afterAll(() => harness.close());

async function bucket(history = 5): Promise<ListedKv> {
  const name = `kv_view_${++bucketCount}`;
  return listedKv(await new Kvm(nc).create(name, { history }), await jetstreamManager(nc), name);
}

/** A started view, its listener's changes, and its warnings. */
async function view(kv: ListedKv, before: (v: KvView<Counter>) => void = () => undefined) {
  const warnings: { key?: string; msg: string }[] = [];
  const log = pino({ level: "warn" }, { write: (line: string) => void warnings.push(JSON.parse(line)) });
  const v = new KvView(kv, { decode: (e) => Counter.parse(e.json()), log });
  const changes: KvChange<Counter>[] = [];
  v.onChange((c) => changes.push(c));
  before(v);
  await v.start();
  return { v, changes, warnings };
}

const put = (kv: ListedKv, key: string, n: number) => kv.put(key, JSON.stringify({ n }));

describe("KvView", () => {
  it("is ready at once on an empty bucket", async () => {
    const { v, changes } = await view(await bucket());
    expect(v.entries()).toEqual([]);
    expect(changes).toEqual([]);
    await v.stop();
  });

  it("is ready with the newest value of every existing key", async () => {
    const kv = await bucket();
    for (let n = 1; n <= 3; n++) await put(kv, "a", n);
    const bRevision = await put(kv, "b", 7);
    const { v } = await view(kv);
    expect(v.values()).toEqual([{ n: 3 }, { n: 7 }]);
    expect(v.get("b")).toEqual({ value: { n: 7 }, revision: bRevision });
    expect(await v.read("a")).toMatchObject({ value: { n: 3 } });
    expect(await v.read("missing")).toBeUndefined();
    await v.stop();
  });

  it("is ready on a bucket holding only deleted keys (and their history)", async () => {
    const kv = await bucket();
    await put(kv, "a", 1);
    await put(kv, "a", 2);
    await put(kv, "b", 1);
    await kv.delete("a");
    await kv.purge("b");
    const { v, changes } = await view(kv);
    expect(v.entries()).toEqual([]);
    expect(changes.map((c) => [c.key, c.value])).toEqual([
      ["a", undefined],
      ["b", undefined],
    ]);
    await v.stop();
  });

  it("tells listeners of puts, updates and deletes", async () => {
    const kv = await bucket();
    const { v, changes } = await view(kv);
    const r1 = await put(kv, "k", 1);
    const r2 = await put(kv, "k", 2);
    await kv.delete("k");
    await waitFor(() => changes.length === 3, { what: "three changes" });
    expect(changes.slice(0, 2)).toEqual([
      { key: "k", revision: r1, value: { n: 1 }, previous: undefined },
      { key: "k", revision: r2, value: { n: 2 }, previous: { n: 1 } },
    ]);
    expect(changes[2]).toMatchObject({ key: "k", value: undefined, previous: { n: 2 } });
    expect(changes[2]!.revision).toBeGreaterThan(r2);
    expect(v.get("k")).toBeUndefined();
    await v.stop();
  });

  it("skips an undecodable entry, logs it once with its key, and keeps watching", async () => {
    const kv = await bucket();
    const { v, changes, warnings } = await view(kv);
    await put(kv, "k", 1);
    await kv.put("k", "not json");
    await kv.put("k", JSON.stringify({ n: "one" }));
    await put(kv, "after", 1);
    await waitFor(() => v.get("after"), { what: "the entry after the bad ones" });
    expect(v.get("k")?.value).toEqual({ n: 1 });
    expect(changes.map((c) => c.key)).toEqual(["k", "after"]);
    expect(warnings.map((w) => w.key)).toEqual(["k", "k"]);
    expect(await v.read("k")).toBeUndefined();
    await v.stop();
  });

  it("never steps back to an older revision after applyOwnWrite", async () => {
    const kv = await bucket();
    const r1 = await put(kv, "k", 1);
    // Stands for our own write whose watch delivery is still in flight: every revision below it is older.
    const ownRevision = r1 + 100;
    const { v, changes } = await view(kv, (v) => v.applyOwnWrite("k", { n: 99 }, ownRevision));
    await put(kv, "k", 2);
    await put(kv, "sentinel", 1);
    await waitFor(() => v.get("sentinel"), { what: "the sentinel" });
    expect(v.get("k")).toEqual({ value: { n: 99 }, revision: ownRevision });
    expect(changes.map((c) => [c.key, c.value])).toEqual([
      ["k", { n: 99 }],
      ["sentinel", { n: 1 }],
    ]);
    v.applyOwnWrite("k", { n: 50 }, ownRevision - 1);
    expect(v.get("k")?.value).toEqual({ n: 99 });
    await v.stop();
  });

  it("stop ends the watch: later writes reach a new view, not the stopped one", async () => {
    const kv = await bucket();
    const { v, changes } = await view(kv);
    await v.stop();
    await put(kv, "k", 1);
    const other = await view(kv);
    expect(other.v.get("k")?.value).toEqual({ n: 1 });
    await put(kv, "k", 2);
    await waitFor(() => other.v.get("k")?.value.n === 2, { what: "the live view's update" });
    expect(changes).toEqual([]);
    expect(v.get("k")).toBeUndefined();
    await other.v.stop();
  });

  it("restarts a watch whose consumer was lost, and sees the writes it missed (nats.js alone took 60 s)", async () => {
    const kv = await bucket();
    await put(kv, "a", 1);
    const { v, changes, warnings } = await view(kv);
    const jsm = await jetstreamManager(nc);
    const stream = (await kv.status()).streamInfo.config.name;
    // As when the server holding the watch's consumer dies: nothing tells the client.
    for (let round = 2; round <= 3; round++) {
      for (const consumer of await (await jsm.consumers.list(stream)).next()) await jsm.consumers.delete(stream, consumer.name);
      await put(kv, "a", round);
      await waitFor(() => v.get("a")?.value.n === round, { what: `write ${round} seen`, timeoutMs: 20_000 });
    }
    expect(changes.map((c) => c.value?.n)).toEqual([1, 2, 3]);
    expect(warnings.filter((w) => /stalled/.test(w.msg))).toHaveLength(2);
    await v.stop();
  });
});
