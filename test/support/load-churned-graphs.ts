/**
 * Run as a child process by test/graph-churn.test.ts, under glibc's heap checks: saves graphs
 * holding every mix of live and removed nodes, loads each into a new graph, checks what it
 * holds, and grows it by one node (the load's reservation is what usearch 2.25 overran). Prints
 * one JSON line with the number of graphs loaded; a heap overrun aborts the process instead.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { ShardIndexConfig } from "../../src/actors/vector-index/api.ts";
import { Graph } from "../../src/actors/vector-index/graph.ts";

const dimension = 4;
const config: ShardIndexConfig = { dimension, metric: "l2", index: { connectivity: 16, expansionAdd: 32, expansionSearch: 32, quantization: "f32" } };
const dir = mkdtempSync(path.join(os.tmpdir(), "jade-churned-graphs-"));

function rowsOf(count: number): Float32Array {
  const rows = new Float32Array(count * dimension);
  for (let i = 0; i < count; i++) rows.set([i, 1, 2, 3], i * dimension);
  return rows;
}

async function loadChurned(nodes: number, removed: number): Promise<void> {
  const rows = rowsOf(nodes + 1);
  const saved = new Graph(config);
  for (let slot = 0; slot < nodes; slot++) saved.stage(slot, rows, slot * dimension);
  saved.flush();
  for (let slot = 0; slot < removed; slot++) saved.remove(slot);
  const file = path.join(dir, `${nodes}-${removed}.usearch`);
  await saved.save(file);
  const loaded = new Graph(config);
  loaded.load(file);
  const holds = { size: loaded.size, removed: loaded.removed, live: 0, gone: 0 };
  for (let slot = 0; slot < nodes; slot++) {
    if (loaded.contains(slot)) holds[slot < removed ? "gone" : "live"]++;
  }
  const wanted = { size: nodes - removed, removed, live: nodes - removed, gone: 0 };
  if (JSON.stringify(holds) !== JSON.stringify(wanted)) throw new Error(`${nodes} nodes, ${removed} removed: loaded ${JSON.stringify(holds)}`);
  loaded.stage(nodes, rows, nodes * dimension);
  loaded.flush();
}

let graphs = 0;
try {
  for (const nodes of [1, 2, 40, 43, 64, 100, 300, 1_000, 1_365, 2_000]) {
    for (const removed of new Set([0, 1, nodes >> 2, nodes >> 1, nodes - 1, nodes])) {
      await loadChurned(nodes, removed);
      graphs++;
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(JSON.stringify({ graphs }));
