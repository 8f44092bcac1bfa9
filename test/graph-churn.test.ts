/**
 * usearch under the churn a shard puts it through, real usearch, no NATS.
 *
 * Overwrites, deletes and a compaction's catch-up (compaction.ts) remove keys and add others,
 * many times over. usearch 2.25.3's key table left tombstones unreclaimed under such churn: a
 * key could still be found (`contains`) after `remove` found nothing to remove, so the shard's
 * bookkeeping moved the point to its fresh buffer, and absorbing it again threw "Duplicate keys"
 * (upstream #769; seen under a loaded 2-core run of test/retention.e2e.test.ts).
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";
import type { ShardIndexConfig } from "../src/actors/vector-index/api.ts";
import { Graph } from "../src/actors/vector-index/graph.ts";
import { randomVectors, seededRandom } from "./support/random.ts";

const dimension = 8;
/** glibc's malloc checks (Debian's libc6): with MALLOC_CHECK_=3, a write past a block aborts at its free. */
const glibcMallocDebug = `/usr/lib/${process.arch === "arm64" ? "aarch64" : "x86_64"}-linux-gnu/libc_malloc_debug.so.0`;
const config: ShardIndexConfig = { dimension, metric: "l2", index: { connectivity: 16, expansionAdd: 64, expansionSearch: 64, quantization: "f32" } };

it("removes every key it holds, however long keys were removed and others added in their place", () => {
  // Live keys stay at 2,000 while their tombstones pile up: on 2.25.3 a remove found nothing
  // for a key `contains` still saw after ~300 such rounds.
  const keySpace = 20_000;
  const random = seededRandom(11);
  const vectors = randomVectors(random, keySpace, dimension);
  const graph = new Graph(config);
  const live = new Set<number>();
  const add = (slots: number[]) => {
    for (const slot of slots) {
      graph.stage(slot, vectors, slot * dimension);
      live.add(slot);
    }
    graph.flush();
  };
  add(Array.from({ length: 2_000 }, (_, slot) => slot));
  for (let round = 0; round < 600; round++) {
    const held = [...live];
    const removed = new Set(Array.from({ length: 100 }, () => held[Math.floor(random() * held.length)]!));
    for (const slot of removed) {
      graph.remove(slot);
      live.delete(slot);
      expect(graph.contains(slot), `round ${round}: slot ${slot} after its remove`).toBe(false);
    }
    const added = new Set<number>();
    while (added.size < removed.size) {
      const slot = Math.floor(random() * keySpace);
      if (!live.has(slot)) added.add(slot);
    }
    add([...added]);
  }
  expect(graph.size).toBe(live.size);
  for (const slot of live) expect(graph.contains(slot)).toBe(true);
});

it("loads saved graphs holding any share of removed nodes, within its heap blocks (glibc's checks, in a child process)", async () => {
  // usearch 2.25's load wrote past a heap block when removed nodes outnumbered the key table it
  // reserved for the live ones (graph.ts Graph.load): a child aborts on that, this process would too.
  expect(existsSync(glibcMallocDebug), glibcMallocDebug).toBe(true);
  const child = spawn(process.execPath, ["--import", "tsx", fileURLToPath(new URL("./support/load-churned-graphs.ts", import.meta.url))], {
    env: { ...process.env, LD_PRELOAD: glibcMallocDebug, MALLOC_CHECK_: "3" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const [code, signal] = (await once(child, "exit")) as [number | null, NodeJS.Signals | null];
  expect({ code, signal, stderr }).toEqual({ code: 0, signal: null, stderr: "" });
  expect(JSON.parse(stdout)).toEqual({ graphs: 53 });
}, 120_000);
