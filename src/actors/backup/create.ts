/**
 * Taking a backup (decision 008). The cut is one instant: per shard, the last entry appended at
 * or before it. Per shard the backup copies the newest shared snapshot at or below the cut (or
 * this node's own checkpoint of the shard, when that moves fewer bytes through nats-server:
 * hard-linked into a directory on the same filesystem, see BackupFiles.keep) and the log from
 * there to the cut; an incremental backup copies only the log after its base's
 * cut, or a newer snapshot when the log no longer reaches back that far. What it reads is held
 * (retention keeps it) from before the first byte is copied. Copies are paced by the backup
 * budget, so searches go on at full speed. Then each shard's content digest at the cut is
 * computed by replaying what was written, read back from where it was written (which also
 * proves the files readable), and the manifest is written last.
 */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { lastSeqAtOrBefore, readLogRange, type LogMessage } from "../../nats/log-range.ts";
import type { SnapshotStore, Throttle } from "../../nats/snapshots.ts";
import { ErrorCode, JadeError } from "../../runtime/errors.ts";
import type { Logger } from "../../runtime/log.ts";
import type { CollectionConfig } from "../../runtime/schemas.ts";
import { names } from "../../runtime/subjects.ts";
import { encodeLogFile } from "./log-file.ts";
import { type BackupFile, type BackupManifest, type CollectionBackup, type Hold, manifestFormat, type Progress, type ShardBackup } from "../../runtime/backup-schemas.ts";
import { ShardReplay } from "./replay.ts";
import { chainSources, type ChainLink } from "./sources.ts";
import { asOfInstant, closingMarkers, outcomesAfter } from "./txn-cut.ts";
import type { BackupFiles } from "./store.ts";
import type { CheckpointRef } from "../replica/checkpoints.ts";

export interface BackupDeps {
  js: JetStreamClient;
  jsm: JetStreamManager;
  snapshots: SnapshotStore;
  throttle: Throttle;
  scratchDir: string;
  log: Logger;
}

/**
 * The snapshot a shard's copy starts from: a bucket of the object store, or a checkpoint on
 * this node's disk, pinned by a hard link for the backup (see planCopy).
 */
export type SnapshotCopy = { seq: number } & ({ name: string } | { file: string });

/** What one shard's part of the backup copies. */
export interface ShardCopy {
  config: CollectionConfig;
  shard: number;
  cutSeq: number;
  snapshot?: SnapshotCopy;
  log?: { fromSeq: number; toSeq: number };
  bytes: number;
}

/** What a backup copies, shard by shard, as of its cut: planned before anything is copied (and held). */
export interface BackupPlan {
  cutAtMs: number;
  copies: ShardCopy[];
}

export interface BackupJob {
  id: string;
  configs: readonly CollectionConfig[];
  /** The base chain of an incremental backup, oldest first (empty for a full backup). */
  base: readonly ChainLink[];
  files: BackupFiles;
  progress: Progress;
}

/** Bytes per read of a local checkpoint. */
const localReadBytes = 1024 * 1024;

/** Shards copied at once: enough to overlap reads and writes, few enough to keep the budget meaningful. */
const shardsInParallel = 2;

/** Pins this node's newest checkpoint of a shard if `accept` takes its sequence (LocalCheckpoints.pin). */
export type PinCheckpoint = (uid: string, shard: number, accept: (seq: number) => boolean) => Promise<CheckpointRef | undefined>;

export interface PlanDeps {
  jsm: JetStreamManager;
  snapshots: SnapshotStore;
  pinCheckpoint: PinCheckpoint;
}

/** Plans every shard's copy as of now (the cut); `base` is the chain of an incremental backup. */
export async function planBackup(deps: PlanDeps, configs: readonly CollectionConfig[], base: readonly BackupManifest[]): Promise<BackupPlan> {
  const cutAtMs = Date.now();
  const copies: ShardCopy[] = [];
  for (const config of configs) {
    for (let shard = 0; shard < config.shards; shard++) copies.push(await planCopy(deps, base.at(-1), config, shard, cutAtMs));
  }
  return { cutAtMs, copies };
}

/** What the plan reads, for retention to keep until the backup ends. */
export function holdsOf(plan: BackupPlan, id: string): Hold[] {
  return plan.copies.map((c) => ({
    what: `backup ${id}`,
    collection: c.config.name,
    uid: c.config.uid,
    shard: c.shard,
    seq: (c.snapshot?.seq ?? c.log?.fromSeq ?? c.cutSeq + 1) - 1,
    ...(c.snapshot && "name" in c.snapshot ? { snapshot: c.snapshot.name } : {}),
  }));
}

/** A backup taken: its manifest, and how many of its files are hard links to the node's checkpoints (BackupFiles.keep). */
export interface TakenBackup {
  manifest: BackupManifest;
  linkedFiles: number;
}

/** Copies what `plan` names (held already), then digests what was written. */
export async function takeBackup(deps: BackupDeps, job: BackupJob, plan: BackupPlan): Promise<TakenBackup> {
  const { cutAtMs, copies } = plan;
  // Copied, then read back for the digests (the base's files too, for an incremental backup: an estimate).
  job.progress.bytesTotal = 2 * copies.reduce((sum, c) => sum + c.bytes, 0);
  job.progress.shardsTotal = copies.length;
  const files: BackupFile[] = [];
  const linked = new Set<string>();
  const written = new Map<ShardCopy, Omit<ShardBackup, "digest">>();
  await eachLimited(copies, shardsInParallel, async (copy) => {
    written.set(copy, await copyShard(deps, job, copy, files, linked));
  });
  const collections: CollectionBackup[] = job.configs.map((config) => ({
    config,
    // Digests are filled in by digestShards, which reads the files this manifest lists.
    shards: copies.filter((c) => c.config.uid === config.uid).map((c) => ({ ...written.get(c)!, digest: { count: 0, hash: "0".repeat(16) } })),
  }));
  const manifest: BackupManifest = {
    format: manifestFormat,
    id: job.id,
    createdAt: new Date().toISOString(),
    cutAtMs,
    ...(job.base.length > 0 ? { base: job.base.at(-1)!.manifest.id } : {}),
    collections,
    files,
  };
  await digestShards(deps, [...job.base, { manifest, files: job.files }], job.progress);
  return { manifest, linkedFiles: linked.size };
}

/**
 * Chooses what one shard's part copies (see the header), checking the log still holds it.
 *
 * A checkpoint of this node is taken over the shared snapshot when copying it and the log
 * after it moves fewer bytes through nats-server: at 500,000 × 128-d, c = 8, another process
 * reading 16 MiB/s of snapshot chunks out of the object store cost searches 15–23 % of their
 * QPS (direct gets and plain NATS messages of the same size 11–21 %), reading the same bytes
 * from disk 2–5 % (20 s windows against the idle ones around them). Searches cross that
 * nats-server twice each.
 */
async function planCopy(deps: PlanDeps, baseManifest: BackupManifest | undefined, config: CollectionConfig, shard: number, cutAtMs: number): Promise<ShardCopy> {
  const stream = names.logStream(config.name, shard);
  const { state } = await deps.jsm.streams.info(stream);
  const lastMs = Date.parse(state.last_ts);
  const cutSeq = state.messages === 0 || lastMs <= cutAtMs ? state.last_seq : await lastSeqAtOrBefore(deps.jsm, stream, state, cutAtMs);
  const base = baseManifest?.collections.find((c) => c.config.name === config.name && c.config.uid === config.uid)?.shards.find((s) => s.shard === shard);
  const averageEntryBytes = state.messages > 0 ? state.bytes / state.messages : 0;
  const logCopy = (fromSeq: number) => (cutSeq >= fromSeq ? { log: { fromSeq, toSeq: cutSeq } } : {});
  const logBytes = (fromSeq: number) => Math.round(averageEntryBytes * Math.max(0, cutSeq - fromSeq + 1));
  const holds = (fromSeq: number) => cutSeq < fromSeq || state.first_seq <= fromSeq;
  if (base && holds(base.seq + 1)) return { config, shard, cutSeq, ...logCopy(base.seq + 1), bytes: logBytes(base.seq + 1) };
  const newest = (await deps.snapshots.list(config.name, config.uid, shard)).find((s) => s.seq <= cutSeq);
  const shared = newest && holds(newest.seq + 1) ? { ...newest, bytes: await deps.snapshots.size(newest.name) } : undefined;
  const local = await deps.pinCheckpoint(config.uid, shard, (seq) => seq <= cutSeq && holds(seq + 1) && (!shared || seq >= shared.seq || logBytes(seq + 1) - logBytes(shared.seq + 1) < shared.bytes));
  if (local) return { config, shard, cutSeq, snapshot: local, ...logCopy(local.seq + 1), bytes: (await stat(local.file)).size + logBytes(local.seq + 1) };
  if (shared) return { config, shard, cutSeq, snapshot: { name: shared.name, seq: shared.seq }, ...logCopy(shared.seq + 1), bytes: shared.bytes + logBytes(shared.seq + 1) };
  if (holds(1)) return { config, shard, cutSeq, ...logCopy(1), bytes: logBytes(1) };
  throw new JadeError(ErrorCode.Unavailable, `shard ${shard} of ${config.name}: its log starts at ${state.first_seq} and no snapshot covers what comes before; retry once a snapshot was saved`);
}

/** Copies one shard's files, adding them to `files` (and to `linked`, those kept as hard links). */
async function copyShard(deps: BackupDeps, job: BackupJob, copy: ShardCopy, files: BackupFile[], linked: Set<string>): Promise<Omit<ShardBackup, "digest">> {
  const { config, shard } = copy;
  const dir = `${config.name}/${shard}`;
  const out: Omit<ShardBackup, "digest"> = { shard, seq: copy.cutSeq };
  const pace = pacer(deps.throttle, job.progress);
  if (copy.snapshot) {
    const file = `${dir}/snapshot-${copy.snapshot.seq}.snap`;
    const { snapshot } = copy;
    if ("file" in snapshot) {
      const { linked: kept, ...result } = await job.files.keep(file, snapshot.file, (local) => paced(createReadStream(local, { highWaterMark: localReadBytes }), pace));
      files.push({ path: file, ...result });
      if (kept) linked.add(file);
    } else {
      const result = await job.files.write(file, deps.snapshots.read(snapshot.name, { throttle: deps.throttle, onBytes: (bytes) => (job.progress.bytesDone += bytes) }));
      files.push({ path: file, ...result });
    }
    out.snapshot = { seq: copy.snapshot.seq, file };
  }
  if (copy.log) {
    const { fromSeq, toSeq } = copy.log;
    const file = `${dir}/log-${fromSeq}-${toSeq}.jlog`;
    let firstTimeMs: number | undefined;
    const entries = async function* (): AsyncGenerator<LogMessage> {
      for await (const entry of readLogRange(deps.js, names.logStream(config.name, shard), fromSeq, toSeq)) {
        firstTimeMs ??= Number(entry.timeNs / 1_000_000n);
        await pace(entry.data.byteLength);
        yield entry;
      }
    };
    const result = await job.files.write(file, encodeLogFile(entries()));
    files.push({ path: file, ...result });
    out.log = { fromSeq, toSeq, firstTimeMs: firstTimeMs!, file };
  }
  job.progress.shardsDone++;
  return out;
}

/**
 * Sets each shard's digest in the newest link's manifest, from its files and its base's, read
 * back from where they were written (so a backup is known readable before it is complete), paced
 * by the same budget as the copy: hashing every point is the backup's largest CPU cost.
 */
async function digestShards(deps: BackupDeps, chain: ChainLink[], progress: Progress): Promise<void> {
  const { manifest } = chain.at(-1)!;
  const pace = pacer(deps.throttle, progress);
  for (const collection of manifest.collections) {
    const { sources } = chainSources(chain, collection.config.name, { kind: "latest" });
    for (const source of sources) {
      const replay = new ShardReplay(collection.config);
      if (source.snapshot) await replay.loadSnapshot(paced(source.snapshot.read(), pace), `snapshot ${source.snapshot.seq} of shard ${source.shard}`);
      for await (const entry of source.entries()) {
        await pace(entry.data.byteLength);
        replay.apply(entry.seq, asOfInstant(entry.data, manifest.cutAtMs));
      }
      const shard = collection.shards.find((s) => s.shard === source.shard)!;
      if (replay.seq !== shard.seq) throw new Error(`backup ${manifest.id}: shard ${source.shard} of ${collection.config.name} replays to ${replay.seq}, its cut is ${shard.seq}`);
      await closeStaged(deps, collection.config, shard, replay, manifest.cutAtMs);
      shard.digest = replay.digest();
    }
  }
}

/**
 * Transactions staged at the cut: how they end in a restore to it, from the live log after the
 * cut (decision 013). One whose commit marker is not in the log yet counts as not committed at
 * the backup's instant: the marker follows the commit point by milliseconds, and the cut was
 * planned before this digest pass began.
 */
async function closeStaged(deps: BackupDeps, config: CollectionConfig, shard: ShardBackup, replay: ShardReplay, cutAtMs: number): Promise<void> {
  const staged = replay.staged();
  if (staged.length === 0) return;
  const stream = names.logStream(config.name, shard.shard);
  const { state } = await deps.jsm.streams.info(stream);
  const committed = await outcomesAfter(readLogRange(deps.js, stream, shard.seq + 1, state.last_seq), staged, cutAtMs);
  closingMarkers(staged, committed).forEach((data) => replay.apply(replay.seq + 1, data));
  shard.closing = staged.map(({ txn, prepareSeq }) => ({ txn, prepareSeq, ...(committed.has(txn) ? { committedAtMs: committed.get(txn)! } : {}) }));
}

/** Lets `bytes` through the backup's budget, then counts them done. */
function pacer(throttle: Throttle, progress: Progress): (bytes: number) => Promise<void> {
  return async (bytes) => {
    await throttle(bytes);
    progress.bytesDone += bytes;
  };
}

async function* paced(chunks: AsyncIterable<Uint8Array>, pace: (bytes: number) => Promise<void>): AsyncGenerator<Uint8Array> {
  for await (const chunk of chunks) {
    await pace(chunk.byteLength);
    yield chunk;
  }
}

/** Runs `work` over `items`, at most `limit` at a time; the first failure fails the whole (the rest are not started). */
async function eachLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}
