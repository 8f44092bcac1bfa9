/** A replica's save (saving.ts) against a real shard index and real checkpoint files, no NATS: what it reports to the replica machine. */
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { SavedSnapshot } from "../src/actors/vector-index/api.ts";
import { ShardIndex } from "../src/actors/vector-index/shard-index.ts";
import { LocalCheckpoints } from "../src/actors/replica/checkpoints.ts";
import { saveSnapshot } from "../src/actors/replica/saving.ts";
import type { ReplicaParts } from "../src/actors/replica/types.ts";
import { childLogger } from "../src/runtime/log.ts";
import { Mutex } from "../src/runtime/mutex.ts";
import { encodeEntry, EntryKind } from "../src/runtime/log-entry.ts";
import { randomVectors, seededRandom } from "./support/random.ts";

let dir: string;
afterEach(() => rm(dir, { recursive: true, force: true }));

const dimension = 16;
const count = 6_000;

/** A shard of `count` points, all in its graph. */
function absorbed(): ShardIndex {
  const shard = new ShardIndex({ dimension, metric: "l2", index: { connectivity: 16, expansionAdd: 128, expansionSearch: 64, quantization: "f32" } });
  const ids = Array.from({ length: count }, (_, i) => `p${i}`);
  const vectors = randomVectors(seededRandom(5), count, dimension);
  shard.apply([{ seq: 1, data: encodeEntry({ kind: EntryKind.Upsert, ids, payloads: ids.map(() => null), dimension, vectors }) }]);
  while (shard.absorb(performance.now() + 1_000)) {
    // until the graph holds every point
  }
  return shard;
}

/** A shard of `count` points, half of them then deleted: its next save rebuilds the graph first. */
function halfDeleted(): ShardIndex {
  const shard = absorbed();
  const evenIds = Array.from({ length: count / 2 }, (_, i) => `p${2 * i}`);
  shard.apply([{ seq: 2, data: encodeEntry({ kind: EntryKind.Delete, ids: evenIds }) }]);
  return shard;
}

describe("a replica's save", () => {
  it("reports the write's time alone, not the graph's rebuild before it: the replica's next save waits a multiple of it", async () => {
    dir = await mkdtemp(path.join(tmpdir(), "jade-saving-"));
    const shard = halfDeleted();
    let indexSave: SavedSnapshot | undefined;
    const replica = {
      config: { uid: "u1", name: "c" },
      shard: 0,
      deps: { checkpoints: new LocalCheckpoints(dir), settings: { keepUploadedCheckpoint: true }, saves: new Mutex() },
      index: { save: async (file: string) => (indexSave = await shard.save(file)) },
      log: childLogger({ test: "saving" }),
      role: () => ({ designated: false }),
      progress: { checkpointSeq: 0 },
    } as unknown as ReplicaParts;

    const startedMs = performance.now();
    const saved = await saveSnapshot(replica, { upload: "ifDesignated" });
    const wallMs = performance.now() - startedMs;
    expect(saved).toMatchObject({ seq: 2, points: count / 2, unabsorbed: 0 });
    expect(indexSave!.compactionMs).toBeGreaterThan(0);
    expect(saved.saveMs).toBeLessThanOrEqual(wallMs - indexSave!.compactionMs);
    expect(await readdir(dir, { recursive: true })).toContain(path.join("u1", "0-2.snap"));

    // The next save has nothing to rebuild: all its time is the write's.
    const again = await saveSnapshot(replica, { upload: "ifDesignated" });
    expect(indexSave!.compactionMs).toBe(0);
    expect(again.saveMs).toBeGreaterThan(0);
  });

  it("takes turns with the node's other saves, and reports its own time, not the wait for its turn", async () => {
    dir = await mkdtemp(path.join(tmpdir(), "jade-saving-"));
    const shards = [absorbed(), absorbed(), absorbed()];
    const saves = new Mutex();
    let running = 0;
    let overlapped = 0;
    const replicas = shards.map(
      (shard, i) =>
        ({
          config: { uid: `u${i}`, name: `c${i}` },
          shard: 0,
          deps: { checkpoints: new LocalCheckpoints(dir), settings: { keepUploadedCheckpoint: true }, saves },
          index: {
            save: async (file: string) => {
              if (++running > 1) overlapped++;
              try {
                // Let the event loop turn mid-save, so saves run side by side unless something keeps them apart.
                await new Promise((resolve) => setImmediate(resolve));
                return await shard.save(file);
              } finally {
                running--;
              }
            },
          },
          log: childLogger({ test: "saving" }),
          role: () => ({ designated: false }),
          progress: { checkpointSeq: 0 },
        }) as unknown as ReplicaParts,
    );

    // Another save holds the node's turn for a while: the three queue behind it.
    const heldMs = 1_000;
    let release!: () => void;
    const held = saves.run(() => new Promise<void>((resolve) => (release = resolve)));
    const saving = Promise.all(replicas.map((replica) => saveSnapshot(replica, { upload: "never" })));
    await new Promise((resolve) => setTimeout(resolve, heldMs));
    expect(running).toBe(0);
    release();
    await held;
    const saved = await saving;
    expect(overlapped).toBe(0);
    expect(saved.map((s) => s.seq)).toEqual([1, 1, 1]);
    // Each reports its own save, not the wait for its turn (which the replica's cooldown would multiply).
    for (const s of saved) expect(s.saveMs).toBeGreaterThan(0);
    for (const s of saved) expect(s.saveMs).toBeLessThan(heldMs);
    expect(await readdir(path.join(dir, "u2"))).toContain("0-1.snap");
  });
});
