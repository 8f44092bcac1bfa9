/**
 * Times each step of the write and search paths in isolation (no NATS), on the same
 * Fashion-MNIST data as bench/run.ts, to show where the node spends its time:
 *
 *   npx tsx bench/profile-write-path.ts [--batch 1000] [--shards 2] [--vectors 10000]
 *
 * Write path, per upsert request of B points (what the gateway's main thread does, then
 * what an index worker does per log entry):
 *   client JSON.stringify → gateway decode + JSON.parse → zod UpsertRequest → writer
 *   (shard grouping, float32 packing, msgpack encodeEntry) → [JetStream] → worker
 *   decodeEntry → ShardIndex.apply (bookkeeping + usearch add, 1 thread).
 * Search path, per query: zod SearchRequest, Float32Array.from, ShardIndex.search vs raw
 * usearch search, JSON reply.
 * CPU figures are per thread of this process (the machine may be shared), wall for the rest.
 */
import { Command } from "commander";
import { Index, MetricKind, ScalarKind } from "usearch";
import { ShardIndex } from "../src/actors/vector-index/shard-index.ts";
import { encodeEntry, EntryKind } from "../src/runtime/log-entry.ts";
import { parse } from "../src/runtime/checks.ts";
import { SearchRequest, UpsertRequest, type Point } from "../src/runtime/schemas.ts";
import { readIdxImages } from "./datasets.ts";

const opts = new Command()
  .option("--batch <n>", "points per upsert", (v) => Number(v), 1000)
  .option("--shards <n>", "shards", (v) => Number(v), 2)
  .option("--vectors <n>", "vectors to index for the apply/search part", (v) => Number(v), 10_000)
  .option("--repeat <n>", "repetitions of each write step", (v) => Number(v), 5)
  .parse(process.argv)
  .opts<{ batch: number; shards: number; vectors: number; repeat: number }>();

const train = await readIdxImages("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");
const test = await readIdxImages("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz");
const dim = train.dimension;

/** CPU ms of the calling thread (process.threadCpuUsage is Node 23+; resourceUsage is per process). */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function time<T>(label: string, units: number, unit: string, fn: () => T, repeat = opts.repeat): T {
  let value!: T;
  const walls: number[] = [];
  const cpus: number[] = [];
  for (let r = 0; r < repeat; r++) {
    const c0 = cpuMs();
    const t0 = performance.now();
    value = fn();
    walls.push(performance.now() - t0);
    cpus.push(cpuMs() - c0);
  }
  walls.sort((a, b) => a - b);
  cpus.sort((a, b) => a - b);
  const wall = walls[Math.floor(walls.length / 2)]!;
  const cpu = cpus[Math.floor(cpus.length / 2)]!;
  const per = units > 1 ? `  = ${((wall * 1000) / units).toFixed(1)} µs/${unit}` : "";
  process.stdout.write(`  ${label.padEnd(48)} ${wall.toFixed(2).padStart(9)} ms wall ${cpu.toFixed(1).padStart(8)} ms cpu${per}\n`);
  return value;
}

function pointsOf(from: number, to: number): Point[] {
  const points: Point[] = [];
  for (let i = from; i < to; i++) points.push({ id: String(i), vector: Array.from(train.data.subarray(i * dim, (i + 1) * dim)) });
  return points;
}

process.stdout.write(`\n== write path, one upsert of ${opts.batch} points × ${dim} (median of ${opts.repeat}) ==\n`);
const points = pointsOf(0, opts.batch);
const body = time("client: JSON.stringify({points}) (JadeClient.upsert)", opts.batch, "point", () =>
  Buffer.from(JSON.stringify({ points, consistency: "log" })),
);
process.stdout.write(`  (body ${(body.byteLength / 1e6).toFixed(2)} MB with JSON.stringify of float32→double values)\n`);
const decoder = new TextDecoder();
const raw = time("gateway: TextDecoder + JSON.parse", opts.batch, "point", () => JSON.parse(decoder.decode(body)) as unknown);
const req = time("gateway: zod parse(UpsertRequest)", opts.batch, "point", () => parse(UpsertRequest, raw));
// The node hashes ids (murmur3); a modulo stands in for it here, so this does not depend on the
// sharding module's API. The cost measured is the grouping, the float32 packing and msgpack.
const entries = time("writer: shard grouping + Float32Array + encodeEntry", opts.batch, "point", () => {
  const groups = new Map<number, { ids: string[]; vectors: number[][] }>();
  for (const p of req.points) {
    const s = Number(p.id) % opts.shards;
    let g = groups.get(s);
    if (!g) groups.set(s, (g = { ids: [], vectors: [] }));
    g.ids.push(p.id);
    g.vectors.push(p.vector);
  }
  return [...groups].map(([shard, g]) => {
    const vectors = new Float32Array(g.ids.length * dim);
    g.vectors.forEach((v, i) => vectors.set(v, i * dim));
    return { shard, data: encodeEntry({ kind: EntryKind.Upsert, ids: g.ids, payloads: g.ids.map(() => null), dimension: dim, vectors }) };
  });
});
process.stdout.write(`  (log entries: ${entries.map((e) => `shard ${e.shard} ${(e.data.byteLength / 1e6).toFixed(2)} MB`).join(", ")})\n`);
time("zod: Vector schema alone on 1 vector × batch", opts.batch, "point", () => {
  for (const p of req.points) parse(SearchRequest, { vector: p.vector, k: 10 });
}, 3);


process.stdout.write(`\n== alternatives for the same request (what the gateway could do instead) ==\n`);
time("hand-written check: finite numbers, dims, ids", opts.batch, "point", () => {
  const body = raw as { points: { id: unknown; vector: unknown }[] };
  for (const p of body.points) {
    if (typeof p.id !== "string" || p.id.length === 0) throw new Error("id");
    const v = p.vector;
    if (!Array.isArray(v) || v.length !== dim) throw new Error("vector");
    for (let j = 0; j < v.length; j++) {
      const x = v[j];
      if (typeof x !== "number" || !Number.isFinite(x)) throw new Error("number");
    }
  }
});
time("hand-written check + pack straight into Float32Array", opts.batch, "point", () => {
  const body = raw as { points: { id: string; vector: number[] }[] };
  const out = new Float32Array(body.points.length * dim);
  body.points.forEach((p, i) => {
    const v = p.vector;
    if (!Array.isArray(v) || v.length !== dim) throw new Error("vector");
    for (let j = 0; j < dim; j++) {
      const x = v[j]!;
      if (typeof x !== "number" || !Number.isFinite(x)) throw new Error("number");
      out[i * dim + j] = x;
    }
  });
  return out;
});
const b64Body = Buffer.from(
  JSON.stringify({
    points: points.map((p) => ({ id: p.id, vectorB64: Buffer.from(Float32Array.from(p.vector).buffer).toString("base64") })),
  }),
);
process.stdout.write(`  (same request with base64 float32 vectors: ${(b64Body.byteLength / 1e6).toFixed(2)} MB)\n`);
time("base64 float32 vectors: JSON.parse + decode + isFinite", opts.batch, "point", () => {
  const body = JSON.parse(decoder.decode(b64Body)) as { points: { id: string; vectorB64: string }[] };
  const out = new Float32Array(body.points.length * dim);
  body.points.forEach((p, i) => {
    const bytes = Buffer.from(p.vectorB64, "base64");
    const v = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    for (let j = 0; j < dim; j++) if (!Number.isFinite(v[j]!)) throw new Error("number");
    out.set(v, i * dim);
  });
  return out;
});
process.stdout.write(`\n== index worker: apply ${opts.vectors} vectors in entries of ${opts.batch / opts.shards} (1 shard, 1 thread) vs raw usearch add ==\n`);
const indexConfig = { dimension: dim, metric: "l2" as const, index: { connectivity: 16, expansionAdd: 128, expansionSearch: 64, quantization: "f32" as const } };
const perEntry = Math.max(1, Math.floor(opts.batch / opts.shards));
const records: { seq: number; data: Uint8Array }[] = [];
for (let from = 0, seq = 1; from < opts.vectors; from += perEntry, seq++) {
  const to = Math.min(opts.vectors, from + perEntry);
  const ids = Array.from({ length: to - from }, (_, i) => String(from + i));
  records.push({ seq, data: encodeEntry({ kind: EntryKind.Upsert, ids, payloads: ids.map(() => null), dimension: dim, vectors: train.data.slice(from * dim, to * dim) }) });
}
const shard = new ShardIndex(indexConfig);
time("ShardIndex.apply (decode + bookkeeping + add)", opts.vectors, "vector", () => shard.apply(records), 1);
const rawIndex = new Index({ dimensions: dim, metric: MetricKind.L2sq, quantization: ScalarKind.F32, connectivity: 16, expansion_add: 128, expansion_search: 64, multi: false });
time("raw usearch add, same entries, 1 thread", opts.vectors, "vector", () => {
  for (let from = 0; from < opts.vectors; from += perEntry) {
    const to = Math.min(opts.vectors, from + perEntry);
    rawIndex.add(BigUint64Array.from({ length: to - from }, (_, i) => BigInt(from + i)), train.data.slice(from * dim, to * dim), 1);
  }
}, 1);

process.stdout.write(`\n== search path, per query (1000 test queries over ${opts.vectors} vectors) ==\n`);
const q = 1000;
const queryArrays = Array.from({ length: q }, (_, i) => Array.from(test.data.subarray(i * dim, (i + 1) * dim)));
const queryBodies = queryArrays.map((v) => Buffer.from(JSON.stringify({ vector: v, k: 10 })));
const parsed = time("gateway: TextDecoder + JSON.parse ×1000", q, "query", () => queryBodies.map((b) => JSON.parse(decoder.decode(b)) as unknown), 3);
const searchReqs = time("gateway: zod parse(SearchRequest) ×1000", q, "query", () => parsed.map((b) => parse(SearchRequest, b)), 3);
const f32 = time("handler: Float32Array.from(vector) ×1000", q, "query", () => searchReqs.map((r) => Float32Array.from(r.vector)), 3);
time("ShardIndex.search k=10 ×1000", q, "query", () => f32.map((v) => shard.search({ vector: v, k: 10, withPayload: false, withVectors: false })), 3);
time("raw usearch search k=10 ×1000", q, "query", () => f32.map((v) => rawIndex.search(v, 10, 1)), 3);
const hits = f32.map((v) => shard.search({ vector: v, k: 10, withPayload: false, withVectors: false }));
time("gateway: JSON.stringify reply ×1000", q, "query", () => hits.map((h) => JSON.stringify({ ok: true, result: { hits: h, partial: false, shards: { total: 2, answered: 2 } } })), 3);
process.exit(0);
