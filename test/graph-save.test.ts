/**
 * A graph's save runs off the worker's thread (native/usearch, usearch-native.ts): the graph
 * answers searches meanwhile, refuses to change, and the absorber waits for the save to end.
 * Real usearch, real files, no NATS.
 */
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Absorber } from "../src/actors/vector-index/absorber.ts";
import type { ShardIndexConfig } from "../src/actors/vector-index/api.ts";
import { Graph } from "../src/actors/vector-index/graph.ts";
import { ShardIndex } from "../src/actors/vector-index/shard-index.ts";
import { encodeEntry, EntryKind } from "../src/runtime/log-entry.ts";
import { randomVectors, seededRandom } from "./support/random.ts";
import { waitFor } from "./support/harness.ts";

const dimension = 16;
const config: ShardIndexConfig = { dimension, metric: "l2", index: { connectivity: 16, expansionAdd: 128, expansionSearch: 64, quantization: "f32" } };

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "jade-graph-save-"));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

function filledGraph(count: number, vectors: Float32Array): Graph {
  const graph = new Graph(config);
  for (let slot = 0; slot < count; slot++) graph.stage(slot, vectors, slot * dimension);
  graph.flush();
  return graph;
}

function upsert(seq: number, first: number, count: number, vectors: Float32Array) {
  const ids = Array.from({ length: count }, (_, i) => `p${first + i}`);
  return { seq, data: encodeEntry({ kind: EntryKind.Upsert, ids, payloads: ids.map(() => null), dimension, vectors }) };
}

describe("Graph.save", () => {
  it("returns before the file is written; the graph answers searches meanwhile and refuses adds and removes", async () => {
    const count = 20_000;
    const vectors = randomVectors(seededRandom(1), count + 1, dimension);
    const graph = filledGraph(count, vectors);
    const file = path.join(dir, "graph.usearch");
    const query = vectors.slice(7 * dimension, 8 * dimension);

    const saved = graph.save(file);
    expect(graph.saving).toBe(saved);
    // Same turn: a synchronous save would be over by now, and the add below would succeed.
    expect(Number(graph.search(query, 1).keys[0])).toBe(7);
    expect(graph.contains(7)).toBe(true);
    expect(() => graph.remove(7)).toThrow(/save of this index is running/);
    graph.stage(count, vectors, count * dimension);
    expect(() => graph.flush()).toThrow(/save of this index is running/);
    expect(() => graph.save(path.join(dir, "again.usearch"))).toThrow(/running/);

    await saved;
    expect(graph.saving).toBeUndefined();
    expect((await stat(file)).size).toBeGreaterThan(count * dimension * 4);
    const loaded = new Graph(config);
    loaded.load(file);
    expect(loaded.size).toBe(count);
    expect(Number(loaded.search(query, 1).keys[0])).toBe(7);
    // Once the save is over the graph changes again.
    graph.remove(7);
    expect(graph.contains(7)).toBe(false);
  });

  it("rejects, and frees the graph again, when the file cannot be written", async () => {
    const graph = filledGraph(100, randomVectors(seededRandom(2), 100, dimension));
    await expect(graph.save(path.join(dir, "missing", "graph.usearch"))).rejects.toThrow();
    expect(graph.saving).toBeUndefined();
    graph.remove(3);
    expect(graph.contains(3)).toBe(false);
  });

  it("leaves the absorber going after a failed save: the rows it held back are absorbed", async () => {
    const vectors = randomVectors(seededRandom(4), 300, dimension);
    const shard = new ShardIndex(config);
    shard.apply([upsert(1, 0, 300, vectors)]);
    const failed = shard.graph.save(path.join(dir, "missing", "graph.usearch"));
    new Absorber().wake(shard);
    await expect(failed).rejects.toThrow();
    await waitFor(() => shard.pendingRows === 0, { timeoutMs: 30_000, what: "the rows absorbed after the failed save" });
    expect(shard.graph.size).toBe(300);
    shard.close();
  });
});

describe("absorbing while a shard's graph is saved", () => {
  it("moves no row into the graph until the save ends; the absorber then takes them all", async () => {
    const vectors = randomVectors(seededRandom(3), 4_000, dimension);
    const shard = new ShardIndex(config);
    shard.apply([upsert(1, 0, 2_000, vectors.slice(0, 2_000 * dimension))]);
    while (shard.absorb(performance.now() + 1_000)) {
      // until the graph holds the first 2,000
    }
    shard.apply([upsert(2, 2_000, 2_000, vectors.slice(2_000 * dimension))]);
    expect(shard.pendingRows).toBe(2_000);

    const saved = shard.save(path.join(dir, "shard.snap"));
    expect(shard.graph.saving).toBeDefined();
    expect(shard.absorb(performance.now() + 1_000)).toBe(true);
    expect(shard.graph.size).toBe(2_000);
    const absorber = new Absorber();
    absorber.wake(shard);

    const written = await saved;
    expect(written).toMatchObject({ points: 4_000, unabsorbed: 2_000 });
    await waitFor(() => shard.pendingRows === 0, { timeoutMs: 30_000, what: "the absorber took the rows held back by the save" });
    expect(shard.graph.size).toBe(4_000);

    const restored = await ShardIndex.load(config, path.join(dir, "shard.snap"));
    expect(restored.size).toBe(4_000);
    expect(restored.graph.size).toBe(2_000);
    expect(restored.pendingRows).toBe(2_000);
    restored.close();
    shard.close();
  });
});
