/** Local checkpoint files: newest wins, offers outlive newer checkpoints until they expire, sweeps clean up. */
import { mkdtemp, readdir, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { LocalCheckpoints, offerTtlMs } from "../src/actors/replica/checkpoints.ts";

let dir: string;
afterEach(() => rm(dir, { recursive: true, force: true }));

async function saved(cp: LocalCheckpoints, uid: string, shard: number, seq: number): Promise<void> {
  const file = await cp.scratchFile(uid, shard);
  await writeFile(file, `state at ${seq}`);
  await cp.commit(uid, shard, file, seq);
}

describe("LocalCheckpoints", () => {
  it("keeps only the newest checkpoint of a shard, per shard", async () => {
    dir = await mkdtemp(path.join(tmpdir(), "jade-cp-"));
    const cp = new LocalCheckpoints(dir);
    await saved(cp, "u1", 0, 5);
    await saved(cp, "u1", 0, 9);
    await saved(cp, "u1", 1, 3);
    expect((await cp.latest("u1", 0))?.seq).toBe(9);
    expect((await cp.latest("u1", 1))?.seq).toBe(3);
    expect((await readdir(path.join(dir, "u1"))).sort()).toEqual(["0-9.snap", "1-3.snap"]);
  });

  it("an offer stays readable after a newer checkpoint replaces it, until it expires", async () => {
    dir = await mkdtemp(path.join(tmpdir(), "jade-cp-"));
    const cp = new LocalCheckpoints(dir);
    await saved(cp, "u1", 0, 5);
    const offer = await cp.offer("u1", 0);
    expect(offer?.seq).toBe(5);
    await saved(cp, "u1", 0, 8); // deletes 0-5.snap, not the offer
    expect(await cp.offered("u1", 0, 5)).toBe(offer!.file);
    // A newer offer deletes older ones only once they are past the TTL.
    await cp.offer("u1", 0);
    expect(await cp.offered("u1", 0, 5)).toBeDefined();
    const old = new Date(Date.now() - offerTtlMs - 60_000);
    await utimes(offer!.file, old, old);
    await saved(cp, "u1", 0, 12);
    await cp.offer("u1", 0);
    expect(await cp.offered("u1", 0, 5)).toBeUndefined();
    expect(await cp.offered("u1", 0, 12)).toBeDefined();
  });

  it("drop forgets a shard; sweep removes dropped collections, unfinished saves and offers", async () => {
    dir = await mkdtemp(path.join(tmpdir(), "jade-cp-"));
    const cp = new LocalCheckpoints(dir);
    await saved(cp, "keep", 0, 1);
    await saved(cp, "keep", 1, 1);
    await saved(cp, "gone", 0, 1);
    await cp.offer("keep", 0);
    await writeFile(await cp.scratchFile("keep", 0), "half a save");
    await cp.drop("keep", 1);
    expect(await cp.latest("keep", 1)).toBeUndefined();
    const removed = await cp.sweep((uid) => uid === "keep");
    expect(removed).toBe(3); // gone's checkpoint, the offer, the unfinished save
    expect(await readdir(dir)).toEqual(["keep"]);
    expect(await readdir(path.join(dir, "keep"))).toEqual(["0-1.snap"]);
  });
});
