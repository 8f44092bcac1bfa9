/**
 * Memory of a shard's point table (points.ts) per point, vectors aside (they live in the
 * page cache): the V8 heap it adds (ids, payloads) and its typed arrays (slot tables, the id
 * table), after garbage collection, for ids like `id-123456`; then the time of a lookup
 * of each id (its string built each time, as a decoded log entry brings it) and of reading
 * each id back.
 *
 *   npx tsx bench/points-memory.ts [points, default 1000000]
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { PointTable } from "../src/actors/vector-index/points.ts";
import { settledNativeBytes } from "./memory.ts";

const count = Number(process.argv[2] ?? 1_000_000);
const dimension = 128;
/** Points written per vector block: the vectors are not what is measured, one block serves them all. */
const block = 1_000;

const dir = await mkdtemp(path.join(tmpdir(), "jade-points-memory-"));
try {
  const nativeBefore = await settledNativeBytes();
  const heapBefore = process.memoryUsage().heapUsed;
  const table = new PointTable(dimension, dir);
  const vectors = new Float32Array(block * dimension);
  for (let i = 0; i < count; i++) table.write(`id-${i}`, undefined, i + 1, null, vectors, (i % block) * dimension, 10);
  const native = (await settledNativeBytes()) - nativeBefore;
  const heap = process.memoryUsage().heapUsed - heapBefore;
  const per = (bytes: number) => (bytes / count).toFixed(1);
  // (the table is read after the readings: unread, it would be garbage by the time they are taken)
  console.log(`${table.size} points: V8 heap ${per(heap)} B/point, native (typed arrays) ${per(native)} B/point, of which the id table ${per(table.idBytes)} B/point`);
  const perPointNs = (run: (i: number) => unknown) => {
    const startedMs = performance.now();
    for (let i = 0; i < count; i++) run(i);
    return (((performance.now() - startedMs) * 1e6) / count).toFixed(0);
  };
  console.log(`slot of an id: ${perPointNs((i) => table.slotOf(`id-${i}`))} ns; id of a slot: ${perPointNs((i) => table.idOf(i))} ns`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
