import { mkdtemp, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LogRecord, ShardIndexConfig } from "../src/actors/vector-index/api.ts";
import { IndexPool, type WorkerExit } from "../src/actors/vector-index/pool.ts";
import { ErrorCode, JadeError } from "../src/runtime/errors.ts";
import { parseFilter } from "../src/runtime/filter.ts";
import { encodeEntry, EntryKind } from "../src/runtime/log-entry.ts";
import { randomVectors, seededRandom } from "./support/random.ts";
import { unversioned } from "./support/points.ts";

const dim = 16;
const config: ShardIndexConfig = {
  dimension: dim,
  metric: "l2",
  index: { connectivity: 16, expansionAdd: 64, expansionSearch: 64, quantization: "f32" },
};

function upsertRecords(vectors: Float32Array, batch: number, firstSeq = 1, prefix = "p"): LogRecord[] {
  const count = vectors.length / dim;
  const records: LogRecord[] = [];
  for (let start = 0, seq = firstSeq; start < count; start += batch, seq++) {
    const end = Math.min(count, start + batch);
    const ids = Array.from({ length: end - start }, (_, i) => `${prefix}${start + i}`);
    const data = encodeEntry({
      kind: EntryKind.Upsert,
      ids,
      payloads: ids.map((_, i) => ({ n: start + i, odd: (start + i) % 2 === 1 })),
      dimension: dim,
      vectors: vectors.slice(start * dim, end * dim),
    });
    records.push({ seq, data });
  }
  return records;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

describe("IndexPool", () => {
  let pool: IndexPool;
  let dir: string;
  const exits: WorkerExit[] = [];
  const random = seededRandom(99);
  const vectors = randomVectors(random, 2000, dim);

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "jade-index-pool-"));
    pool = await IndexPool.start({
      workers: 2,
      // Small, so an apply behind a big one waits for the graph (the worker-death test needs a call in flight).
      shardIndex: { freshBytesMax: 256 * 1024 },
      onWorkerExit: (exit) => exits.push(exit),
      logger: { warn: () => undefined, error: () => undefined },
    });
  });

  afterAll(async () => {
    await pool.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("pins shards to the least loaded worker, stickily", () => {
    expect(pool.size).toBe(2);
    pool.pin("col/0");
    pool.pin("col/1");
    expect(pool.workerOf("col/0")).not.toBe(pool.workerOf("col/1"));
    pool.pin("col/0");
    expect(pool.workerOf("col/0")).toBe(0);
    pool.unpin("col/1");
    expect(pool.workerOf("col/1")).toBeUndefined();
  });

  it("applies, searches, counts, gets and reports stats through a worker", async () => {
    const shard = pool.pin("col/0");
    await shard.open(config);
    const records = upsertRecords(vectors, 500);
    const callerBytes = records.map((r) => r.data.byteLength);
    expect(await shard.apply(records)).toMatchObject({ appliedSeq: 4, count: 2000 });
    // The caller's buffers are copied, not detached.
    expect(records.map((r) => r.data.byteLength)).toEqual(callerBytes);
    expect(await shard.apply(records)).toMatchObject({ appliedSeq: 4, count: 2000 });

    const query = vectors.subarray(7 * dim, 8 * dim);
    const { value: hits } = await shard.search({ vector: query, k: 5, withPayload: true, withVectors: true });
    expect(hits).toHaveLength(5);
    expect(hits[0]).toMatchObject({ id: "p7", distance: 0, payload: { n: 7, odd: true } });
    expect(hits[0]?.vector).toEqual(Array.from(query));
    expect(query.length).toBe(dim);

    const { value: odd } = await shard.search({ vector: query, k: 5, filter: parseFilter({ odd: false }), withPayload: true, withVectors: false });
    expect(odd).toHaveLength(5);
    expect(odd.every((h) => h.payload?.odd === false)).toBe(true);

    expect((await shard.count()).value).toBe(2000);
    expect((await shard.count(parseFilter({ n: { $lt: 10 } }))).value).toBe(10);
    expect(unversioned((await shard.get(["p1", "nope"], false)).value)).toEqual([{ id: "p1", payload: { n: 1, odd: true } }]);
    const stats = await shard.stats();
    expect(stats).toMatchObject({ count: 2000, appliedSeq: 4 });
    expect(stats.memoryBytes).toBeGreaterThan(2000 * dim * 4);
  });

  it("saves on one worker and loads on another", async () => {
    const source = pool.pin("col/0");
    const file = path.join(dir, "col-0.snap");
    const saved = await source.save(file);
    expect(saved.appliedSeq).toBe(4);
    expect(saved.bytes).toBe((await stat(file)).size);

    const target = pool.pin("copy/0");
    expect(pool.workerOf("copy/0")).not.toBe(pool.workerOf("col/0"));
    expect(await target.load(config, file)).toMatchObject({ appliedSeq: 4, count: 2000 });
    for (const i of [0, 500, 1999]) {
      const request = { vector: vectors.slice(i * dim, (i + 1) * dim), k: 10, withPayload: true, withVectors: false };
      expect(await target.search(request)).toEqual(await source.search(request));
    }
    const more = upsertRecords(randomVectors(random, 10, dim), 10, 5, "q");
    await source.apply(more);
    expect(await target.apply(more)).toMatchObject({ appliedSeq: 5, count: 2010 });
    await target.close();
    pool.unpin("copy/0");
  });

  it("holds an apply issued during a save until the save captured its state", async () => {
    const shard = pool.pin("col/0");
    const file = path.join(dir, "during.snap");
    const before = await shard.stats();
    const [p0] = (await shard.get(["p0"], true)).value;
    const saving = shard.save(file);
    // Rewrites p0…p49 in place: had it run while the vectors were streamed, the file would hold some new ones.
    const applying = shard.apply(upsertRecords(randomVectors(random, 50, dim), 50, before.appliedSeq + 1, "p"));
    const [saved, applied] = await Promise.all([saving, applying]);
    expect(saved.appliedSeq).toBe(before.appliedSeq);
    expect(applied).toMatchObject({ appliedSeq: before.appliedSeq + 1, count: before.count });
    expect((await shard.get(["p0"], true)).value).not.toEqual([p0]);
    const copy = pool.pin("copy/1");
    expect(await copy.load(config, file)).toMatchObject({ appliedSeq: before.appliedSeq, count: before.count });
    expect((await copy.get(["p0"], true)).value).toEqual([p0]);
    await copy.close();
    pool.unpin("copy/1");
  });

  it("lets an apply of new points through while a save runs; one that rewrites points waits for the save", async () => {
    const shard = pool.pin("col/0");
    const file = path.join(dir, "adding.snap");
    const before = await shard.stats();
    const settled: string[] = [];
    const saving = shard.save(file).finally(() => settled.push("save"));
    const adding = shard.apply(upsertRecords(randomVectors(random, 20, dim), 20, before.appliedSeq + 1, "new")).finally(() => settled.push("add"));
    const rewriting = shard.apply(upsertRecords(randomVectors(random, 20, dim), 20, before.appliedSeq + 2, "p")).finally(() => settled.push("rewrite"));
    const [saved, added, rewritten] = await Promise.all([saving, adding, rewriting]);
    expect(settled.indexOf("add")).toBeLessThan(settled.indexOf("save"));
    expect(settled.indexOf("add")).toBeLessThan(settled.indexOf("rewrite"));
    expect(saved.appliedSeq).toBe(before.appliedSeq);
    expect(added).toMatchObject({ appliedSeq: before.appliedSeq + 1, count: before.count + 20 });
    expect(rewritten).toMatchObject({ appliedSeq: before.appliedSeq + 2, count: before.count + 20 });
    const copy = pool.pin("copy/2");
    expect(await copy.load(config, file)).toMatchObject({ appliedSeq: before.appliedSeq, count: before.count });
    expect((await copy.get(["new0"], false)).value).toEqual([]);
    await copy.close();
    pool.unpin("copy/2");
  });

  it("gathers the searches of one tick into one batch per worker, each answered or refused alone", async () => {
    const a = pool.pin("batch/0");
    const b = pool.pin("batch/2");
    const closed = pool.pin("batch/4");
    await Promise.all([a.open(config), b.open(config)]);
    await Promise.all([a.apply(upsertRecords(vectors.slice(0, 500 * dim), 250)), b.apply(upsertRecords(vectors.slice(500 * dim, 1000 * dim), 250, 1, "b"))]);
    const query = vectors.slice(600 * dim, 601 * dim);
    const [fromA, fromB, refused] = await Promise.allSettled([
      a.search({ vector: query, k: 3, withPayload: false, withVectors: false }),
      b.search({ vector: query, k: 3, withPayload: false, withVectors: false }),
      closed.search({ vector: query, k: 3, withPayload: false, withVectors: false }),
    ]);
    expect(fromB).toMatchObject({ status: "fulfilled", value: { value: [{ id: "b100", distance: 0 }, {}, {}] } });
    expect(fromA).toMatchObject({ status: "fulfilled" });
    expect(refused).toMatchObject({ status: "rejected", reason: { message: expect.stringMatching(/batch\/4 is not open/) } });
    // The caller's query is neither detached nor changed.
    expect(query.length).toBe(dim);
    for (const key of ["batch/0", "batch/2"]) await pool.pin(key).close();
    for (const key of ["batch/0", "batch/2", "batch/4"]) pool.unpin(key);
  });

  it("rejects calls for shards that are not open or not pinned", async () => {
    const shard = pool.pin("col/9");
    expect(String(await rejection(shard.count()))).toMatch(/col\/9 is not open/);
    pool.unpin("col/9");
    expect(String(await rejection(shard.count()))).toMatch(/not pinned/);
  });

  it("rejects calls in flight when a worker dies and replaces the worker", async () => {
    const shard = pool.pin("col/0");
    const position = pool.workerOf("col/0")!;
    const big = upsertRecords(randomVectors(random, 20_000, dim), 5_000, 100, "big");
    await shard.apply(big);
    // The fresh buffer is over its bound now: this apply waits (seconds) for the graph to absorb.
    const inFlight = shard.apply(upsertRecords(randomVectors(random, 10, dim), 10, 200, "more"));
    await pool.killWorker(position);
    const err = await rejection(inFlight);
    expect(err).toBeInstanceOf(JadeError);
    expect((err as JadeError).code).toBe(ErrorCode.Unavailable);
    expect(exits).toEqual([expect.objectContaining({ worker: position, shardKeys: ["col/0"] })]);

    // The replacement serves the same pinned shard once it is reopened.
    expect(String(await rejection(shard.count()))).toMatch(/not open/);
    await shard.open(config);
    expect(await shard.apply(upsertRecords(vectors.slice(0, 10 * dim), 10))).toMatchObject({ appliedSeq: 1, count: 10 });
  });

  it("close terminates the workers, settles calls in flight and is idempotent", async () => {
    const other = await IndexPool.start({ workers: 1, logger: { warn: () => undefined, error: () => undefined } });
    const shard = other.pin("x/0");
    await shard.open(config);
    const inFlight = shard.apply(upsertRecords(randomVectors(random, 5_000, dim), 5_000));
    await Promise.all([other.close(), other.close()]);
    const [settled] = await Promise.allSettled([inFlight]);
    if (settled?.status === "rejected") expect((settled.reason as JadeError).code).toBe(ErrorCode.Unavailable);
    expect((await rejection(shard.count())) as JadeError).toMatchObject({ code: ErrorCode.Unavailable });
    expect(() => other.pin("x/1")).toThrow(/closed/);
  });
});
