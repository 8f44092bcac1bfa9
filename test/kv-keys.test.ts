/**
 * nats/kv-keys.ts against a real nats-server: listings that always return, even beside a
 * writer (where `kv.keys()` was seen to hang for good), and deleted keys dropped from the
 * bucket up to a revision, nothing written later with them.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { listedKv, type ListedKv } from "../src/nats/kv-keys.ts";
import { Harness } from "./support/harness.ts";

const harness = new Harness();
let nc: NatsConnection;
let bucketCount = 0;

beforeAll(async () => {
  nc = await harness.connect((await harness.nats()).url);
});
afterAll(() => harness.close());

async function bucket(history = 1): Promise<ListedKv> {
  const name = `kv_keys_${++bucketCount}`;
  return listedKv(await new Kvm(nc).create(name, { history }), await jetstreamManager(nc), name);
}

describe("listed KV", () => {
  it("reads a key's kept revisions, oldest first, deletes included, other keys' left out", async () => {
    const kv = await bucket(64);
    const written: number[] = [];
    for (let i = 0; i < 70; i++) {
      written.push(await kv.put("settings", `v${i}`));
      await kv.put("other", `o${i}`);
    }
    await kv.delete("settings");
    const revisions = await kv.revisions("settings");
    // The bucket keeps 64 entries of a key, the delete marker one of them: the seven oldest values are gone.
    expect(revisions.map((r) => r.revision)).toEqual([...written.slice(7), revisions.at(-1)!.revision]);
    expect(revisions.slice(0, -1).map((r) => new TextDecoder().decode(r.value))).toEqual(written.slice(7).map((_, i) => `v${i + 7}`));
    expect(revisions.slice(0, -1).every((r) => r.operation === "PUT")).toBe(true);
    expect(revisions.at(-1)!.operation).toBe("DEL");
    expect(await kv.revisions("never")).toEqual([]);
  });

  it("lists the keys under a filter, a deleted key's marker too, until its history is dropped", async () => {
    const kv = await bucket();
    for (const key of ["open.a", "open.b", "open.c", "done.a"]) await kv.put(key, "x");
    await kv.delete("open.b");
    expect((await kv.listKeys("open.>")).sort()).toEqual(["open.a", "open.b", "open.c"]);
    expect((await kv.listKeys()).sort()).toEqual(["done.a", "open.a", "open.b", "open.c"]);
    await kv.dropHistory("open.b");
    expect((await kv.listKeys("open.>")).sort()).toEqual(["open.a", "open.c"]);
    expect(await kv.get("open.b")).toBeNull();
    expect(await kv.listKeys("none.>")).toEqual([]);
  });

  it("drops a key's entries up to a revision only: a value written after the marker stays", async () => {
    const kv = await bucket();
    await kv.put("lock", "mine");
    await kv.delete("lock");
    const marker = (await kv.get("lock"))!;
    expect(marker.operation).toBe("DEL");
    await kv.dropHistory("lock", marker.revision);
    expect(await kv.get("lock")).toBeNull();
    // A create on the emptied key needs no revision; a drop that arrives late leaves it be.
    await kv.create("lock", "theirs");
    await kv.dropHistory("lock", marker.revision);
    expect((await kv.get("lock"))?.string()).toBe("theirs");
  });

  it("answers every listing while a writer creates, deletes and drops keys (kv.keys() hung so)", async () => {
    const kv = await bucket();
    let writing = true;
    let written = 0;
    const writer = (async () => {
      while (writing) {
        const key = `open.k${written++}`;
        await kv.create(key, "x");
        await kv.delete(key);
        if (written % 2 === 0) await kv.dropHistory(key);
      }
    })();
    let listings = 0;
    while (listings < 300 || written < 300) {
      const keys = await kv.listKeys("open.>");
      expect(keys.length).toBeLessThanOrEqual(written);
      listings++;
    }
    writing = false;
    await writer;
    // Only the keys whose history was not dropped are left, as markers.
    expect((await kv.listKeys("open.>")).length).toBe(Math.ceil(written / 2));
  });
});
