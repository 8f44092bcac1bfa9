/**
 * The pure parts of backups: log files round-trip whatever the chunking and refuse a torn
 * one; the digest a backup computes by replaying a snapshot and log entries equals the one the
 * replica's index reports for the same entries (invalid entries, overwrites, deletes, moved
 * ids included); a chain of backups is planned from the right snapshot for each target.
 */
import { createReadStream } from "node:fs";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeLogFile, encodeLogFile, LogFileError } from "../src/actors/backup/log-file.ts";
import { ShardReplay } from "../src/actors/backup/replay.ts";
import { chainSources, type ChainLink } from "../src/actors/backup/sources.ts";
import { backupFiles, type BackupFiles } from "../src/actors/backup/store.ts";
import type { LogRecord, ShardIndexConfig } from "../src/actors/vector-index/api.ts";
import { ShardIndex } from "../src/actors/vector-index/shard-index.ts";
import type { LogMessage } from "../src/nats/log-range.ts";
import type { BackupManifest, ShardBackup } from "../src/runtime/backup-schemas.ts";
import { ErrorCode } from "../src/runtime/errors.ts";
import { encodeEntry, EntryKind } from "../src/runtime/log-entry.ts";
import { CollectionConfig } from "../src/runtime/schemas.ts";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "jade-backup-unit-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function* chunked(bytes: Uint8Array, cuts: number[]): AsyncGenerator<Uint8Array> {
  let at = 0;
  for (const cut of [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)) {
    yield bytes.subarray(at, cut);
    at = cut;
  }
  yield bytes.subarray(at);
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

async function encoded(entries: LogMessage[]): Promise<Uint8Array> {
  const parts = await collect(encodeLogFile((async function* () { yield* entries; })()));
  return Buffer.concat(parts);
}

describe("a directory keeping a checkpoint", () => {
  const content = Buffer.from(Array.from({ length: 300_000 }, (_, i) => i % 251));
  const sha256 = createHash("sha256").update(content).digest("hex");
  const readPath = (file: string) => createReadStream(file);

  it("hard-links it on the same filesystem, and the backup outlives the checkpoint", async () => {
    const source = path.join(dir, "keep-source.snap");
    await writeFile(source, content);
    const files = backupFiles({ dir: path.join(dir, "keep-same") }, "b1", undefined as never, 1);
    expect(await files.keep("c/0/snapshot-7.snap", source, readPath)).toEqual({ bytes: content.byteLength, sha256, linked: true });
    const kept = path.join(dir, "keep-same", "b1", "c/0/snapshot-7.snap");
    expect((await stat(kept)).ino).toBe((await stat(source)).ino);
    await rm(source);
    expect(Buffer.concat(await collect(files.read("c/0/snapshot-7.snap")))).toEqual(content);
  });

  it("copies it from another filesystem", async () => {
    // /dev/shm is a tmpfs: link(2) across filesystems fails with EXDEV.
    expect((await stat("/dev/shm")).dev).not.toBe((await stat(dir)).dev);
    const shm = await mkdtemp("/dev/shm/jade-backup-unit-");
    try {
      const source = path.join(shm, "keep-source.snap");
      await writeFile(source, content);
      const files = backupFiles({ dir: path.join(dir, "keep-other") }, "b1", undefined as never, 1);
      expect(await files.keep("c/0/snapshot-7.snap", source, readPath)).toEqual({ bytes: content.byteLength, sha256, linked: false });
      expect((await stat(path.join(dir, "keep-other", "b1", "c/0/snapshot-7.snap"))).ino).not.toBe((await stat(source)).ino);
    } finally {
      await rm(shm, { recursive: true, force: true });
    }
  });
});

describe("log files", () => {
  it("round-trip entries whatever the chunks they are read in", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ seq: fc.integer({ min: 1, max: 2 ** 40 }), timeNs: fc.bigInt({ min: 0n, max: 2n ** 63n }), data: fc.uint8Array({ maxLength: 300 }) }), { maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        async (entries, cuts) => {
          const bytes = await encoded(entries);
          const decoded = await collect(decodeLogFile(chunked(bytes, cuts), "f"));
          expect(decoded.map((e) => ({ ...e, data: Uint8Array.from(e.data) }))).toEqual(entries.map((e) => ({ ...e, data: Uint8Array.from(e.data) })));
        },
      ),
      { numRuns: 100 },
    );
  });

  it("refuse a file torn inside an entry, or one that is not a log file", async () => {
    const bytes = await encoded([{ seq: 1, timeNs: 5n, data: new Uint8Array([1, 2, 3]) }]);
    await expect(collect(decodeLogFile(chunked(bytes.subarray(0, bytes.length - 1), []), "torn"))).rejects.toBeInstanceOf(LogFileError);
    await expect(collect(decodeLogFile(chunked(Buffer.from("JADESNAP and more"), []), "other"))).rejects.toThrow(/not a log file/);
  });
});

const dimension = 3;
const shardConfig: ShardIndexConfig = { dimension, metric: "cosine", index: { connectivity: 8, expansionAdd: 32, expansionSearch: 32, quantization: "f32" } };

/** A random log: upserts (overwrites, payloads or none, moved ids), deletes, and entries replicas skip. */
const entryArb = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("upsert" as const), ids: fc.array(fc.integer({ min: 0, max: 15 }), { minLength: 1, maxLength: 6 }), payload: fc.boolean(), moved: fc.array(fc.integer({ min: 0, max: 15 }), { maxLength: 2 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("delete" as const), ids: fc.array(fc.integer({ min: 0, max: 15 }), { minLength: 1, maxLength: 4 }) }) },
  { weight: 1, arbitrary: fc.constantFrom("nan" as const, "dimension" as const, "garbage" as const).map((kind) => ({ kind })) },
);
type EntrySpec = typeof entryArb extends fc.Arbitrary<infer T> ? T : never;

function recordOf(spec: EntrySpec, seq: number): LogRecord {
  switch (spec.kind) {
    case "upsert": {
      const ids = spec.ids.map((i) => `p${i}`);
      const vectors = Float32Array.from(ids.flatMap((_, p) => [seq + p + 1, (seq * 7 + p) % 5, -p - 1]));
      const payloads = spec.payload ? ids.map((id, p) => ({ seq, p, id })) : undefined;
      return { seq, data: encodeEntry({ kind: EntryKind.Upsert, ids, dimension, vectors, ...(payloads ? { payloads } : {}), ...(spec.moved.length ? { deleteIds: spec.moved.map((i) => `p${i}`) } : {}) }) };
    }
    case "delete":
      return { seq, data: encodeEntry({ kind: EntryKind.Delete, ids: spec.ids.map((i) => `p${i}`) }) };
    case "nan":
      return { seq, data: encodeEntry({ kind: EntryKind.Upsert, ids: ["p1"], dimension, vectors: Float32Array.from([Number.NaN, 1, 1]) }) };
    case "dimension":
      return { seq, data: encodeEntry({ kind: EntryKind.Upsert, ids: ["p2"], dimension: 2, vectors: Float32Array.from([1, 1]) }) };
    case "garbage":
      return { seq, data: Uint8Array.from([0xc1, 0, 1]) };
  }
}

describe("a backup's digest", () => {
  it("is the replica's: replaying the same entries, from the start or from a snapshot of the index, gives the index's content digest", async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(entryArb, { minLength: 1, maxLength: 25 }), fc.nat(), async (specs, at) => {
        const records = specs.map((spec, i) => recordOf(spec, i + 1));
        const split = at % (records.length + 1);
        const index = new ShardIndex(shardConfig);
        index.apply(records.slice(0, split));
        const file = path.join(dir, `snap-${run++}.snap`);
        await index.save(file);
        index.apply(records.slice(split));

        const whole = new ShardReplay(shardConfig);
        for (const r of records) whole.apply(r.seq, r.data);
        const fromSnapshot = new ShardReplay(shardConfig);
        await fromSnapshot.loadSnapshot(createReadStream(file, { highWaterMark: 7_919 }), file);
        expect(fromSnapshot.seq).toBe(split);
        for (const r of records) fromSnapshot.apply(r.seq, r.data); // the overlap is skipped
        expect(whole.digest()).toEqual(index.contentDigest());
        expect(fromSnapshot.digest()).toEqual(index.contentDigest());
        index.close();
      }),
      { numRuns: 40 },
    );
  });

  it("refuses a snapshot stream that is torn or has a flipped byte", async () => {
    const index = new ShardIndex(shardConfig);
    index.apply([recordOf({ kind: "upsert", ids: [1, 2, 3], payload: true, moved: [] }, 1)]);
    const file = path.join(dir, "whole.snap");
    await index.save(file);
    index.close();
    const bytes = await readFile(file);
    const flipped = Buffer.from(bytes);
    flipped[flipped.length - 10]! ^= 1;
    const replay = new ShardReplay(shardConfig);
    await expect(replay.loadSnapshot(chunked(bytes.subarray(0, bytes.length - 1), [100]), "torn")).rejects.toThrow(/early/);
    await expect(replay.loadSnapshot(chunked(flipped, [100, 5_000]), "flipped")).rejects.toThrow(/checksum mismatch/);
    await replay.loadSnapshot(chunked(bytes, [1, 2, 71, 72, 73]), "whole");
    expect(replay.digest().count).toBe(3);
  });

  it("refuses a gap in the entries", () => {
    const replay = new ShardReplay(shardConfig);
    replay.apply(1, recordOf({ kind: "delete", ids: [1] }, 1).data);
    expect(() => replay.apply(3, recordOf({ kind: "delete", ids: [1] }, 3).data)).toThrow(/2–2 are missing/);
  });
});

describe("planning a restore from a chain", () => {
  const config = CollectionConfig.parse({
    name: "c",
    dimension,
    metric: "l2",
    shards: 1,
    replicas: 1,
    sharding: "hash",
    index: {},
    snapshot: {},
    createdAt: "2026-12-05T00:00:00Z",
    uid: "u1",
  });
  const files: BackupFiles = {
    where: "memory",
    write: () => Promise.reject(new Error("read only")),
    keep: () => Promise.reject(new Error("read only")),
    read: () => (async function* () {})(),
    local: () => Promise.reject(new Error("not used")),
    exists: () => Promise.resolve(true),
    remove: () => Promise.resolve(),
  };
  const digest = { count: 0, hash: "0".repeat(16) };
  const link = (id: string, cutAtMs: number, shard: Omit<ShardBackup, "shard" | "digest">, base?: string): ChainLink => {
    const manifest: BackupManifest = {
      format: 1,
      id,
      createdAt: new Date(cutAtMs).toISOString(),
      cutAtMs,
      ...(base ? { base } : {}),
      collections: [{ config, shards: [{ shard: 0, digest, ...shard }] }],
      files: [],
    };
    return { manifest, files };
  };
  // Full at 1000 (snapshot 10, log 11–20), incremental at 2000 (log 21–30), incremental at 3000 (snapshot 35, log 36–40).
  const chain = [
    link("20261205T000001Z-000001", 1_000, { seq: 20, snapshot: { seq: 10, file: "s10" }, log: { fromSeq: 11, toSeq: 20, firstTimeMs: 900, file: "l11" } }),
    link("20261205T000002Z-000002", 2_000, { seq: 30, log: { fromSeq: 21, toSeq: 30, firstTimeMs: 1_500, file: "l21" } }, "20261205T000001Z-000001"),
    link("20261205T000003Z-000003", 3_000, { seq: 40, snapshot: { seq: 35, file: "s35" }, log: { fromSeq: 36, toSeq: 40, firstTimeMs: 2_900, file: "l36" } }, "20261205T000002Z-000002"),
  ];
  const plan = (target: Parameters<typeof chainSources>[2], upTo = chain.length) => chainSources(chain.slice(0, upTo), "c", target).sources[0]!;

  it("starts from the newest snapshot at or before the target", () => {
    expect(plan({ kind: "latest" })).toMatchObject({ snapshot: { seq: 35 }, toSeq: 40, expected: digest });
    expect(plan({ kind: "latest" }, 2)).toMatchObject({ snapshot: { seq: 10 }, toSeq: 30 });
    expect(plan({ kind: "seq", seqs: new Map([[0, 28]]) })).toMatchObject({ snapshot: { seq: 10 }, toSeq: 28 });
    expect(plan({ kind: "seq", seqs: new Map([[0, 28]]) }).expected).toBeUndefined();
    expect(plan({ kind: "seq", seqs: new Map([[0, 37]]) })).toMatchObject({ snapshot: { seq: 35 }, toSeq: 37 });
    expect(plan({ kind: "time", atMs: 2_950 })).toMatchObject({ snapshot: { seq: 35 }, toSeq: 40, toTimeMs: 2_950 });
    // Before the second backup's cut: nothing after entry 30 can be needed.
    expect(plan({ kind: "time", atMs: 1_800 })).toMatchObject({ snapshot: { seq: 10 }, toSeq: 30, toTimeMs: 1_800 });
  });

  it("refuses a target the chain does not reach, and a chain with a hole", () => {
    expect(() => plan({ kind: "seq", seqs: new Map([[0, 5]]) })).toThrow(expect.objectContaining({ code: ErrorCode.OutOfRange }));
    expect(() => plan({ kind: "seq", seqs: new Map([[0, 41]]) })).toThrow(expect.objectContaining({ code: ErrorCode.OutOfRange }));
    expect(() => plan({ kind: "time", atMs: 800 })).toThrow(expect.objectContaining({ code: ErrorCode.OutOfRange }));
    // Entries 31–35 are only inside the third backup's snapshot: sequence 33, or an instant that may fall among them, is out of reach.
    expect(() => plan({ kind: "seq", seqs: new Map([[0, 33]]) })).toThrow(expect.objectContaining({ code: ErrorCode.OutOfRange }));
    expect(() => plan({ kind: "time", atMs: 2_800 })).toThrow(expect.objectContaining({ code: ErrorCode.OutOfRange }));
    const holed = [chain[0]!, link("20261205T000002Z-000002", 2_000, { seq: 30, log: { fromSeq: 25, toSeq: 30, firstTimeMs: 1_500, file: "l25" } }, chain[0]!.manifest.id)];
    expect(() => chainSources(holed, "c", { kind: "latest" })).toThrow(expect.objectContaining({ code: ErrorCode.Corrupt }));
  });
});
