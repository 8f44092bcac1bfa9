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
import { encodeEntry, EntryKind } from "../src/runtime/log-entry.ts";
import { randomVectors, seededRandom } from "./support/random.ts";

let dir: string;
afterEach(() => rm(dir, { recursive: true, force: true }));

const dimension = 16;
const count = 6_000;

/** A shard of `count` points, half of them then deleted: its next save rebuilds the graph first. */
function halfDeleted(): ShardIndex {
  const shard = new ShardIndex({ dimension, metric: "l2", index: { connectivity: 16, expansionAdd: 128, expansionSearch: 64, quantization: "f32" } });
  const ids = Array.from({ length: count }, (_, i) => `p${i}`);
  const vectors = randomVectors(seededRandom(5), count, dimension);
  shard.apply([{ seq: 1, data: encodeEntry({ kind: EntryKind.Upsert, ids, payloads: ids.map(() => null), dimension, vectors }) }]);
  while (shard.absorb(performance.now() + 1_000)) {
    // until the graph holds every point
  }
  shard.apply([{ seq: 2, data: encodeEntry({ kind: EntryKind.Delete, ids: ids.filter((_, i) => i % 2 === 0) }) }]);
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
      deps: { checkpoints: new LocalCheckpoints(dir), settings: { keepUploadedCheckpoint: true } },
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
});
