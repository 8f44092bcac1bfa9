/**
 * Where a replica (re)starts from: this node's own checkpoint, a serving peer's checkpoint,
 * the newest readable shared snapshot, or the whole log — the best valid one, loaded into a
 * fresh index.
 */
import { mkdir, rm, stat } from "node:fs/promises";
import path from "node:path";
import { errorMessage } from "../../runtime/errors.ts";
import { RestoreSource } from "../../runtime/status.ts";
import { names } from "../../runtime/subjects.ts";
import { noteIndex } from "./apply.ts";
import { copyCheckpoint } from "./peer-copy.ts";
import type { Throttle } from "../../nats/snapshots.ts";
import { indexConfigOf, type ReplicaParts } from "./types.ts";
import type { ApplyResult } from "../vector-index/api.ts";

/**
 * Loads the best valid starting state into a fresh index and returns its sequence: this
 * node's own checkpoint when the log still covers everything after it and either no shared
 * snapshot is more than a snapshot interval newer or the node is back from a clean stop whose
 * log retention kept for it; else (a learner) a serving peer's
 * checkpoint; else the newest readable shared snapshot; else nothing (replay the whole log).
 */
export async function restoreReplica(replica: ReplicaParts): Promise<number> {
  const { config, shard, deps, index, progress } = replica;
  await index.open(indexConfigOf(config));
  noteIndex(progress, { count: 0 });
  // Set again only if the local checkpoint is what this restore starts from (retention reads it).
  progress.checkpointSeq = 0;
  const shared = await deps.snapshots.list(config.name, config.uid, shard);
  const local = await deps.checkpoints.latest(config.uid, shard);
  // Back from a clean stop: the log was kept for exactly this checkpoint (a restart copies nothing).
  const announced = deps.departedAt(config.uid, shard);
  const returning = local !== undefined && announced !== undefined && local.seq >= announced;
  if (local && (returning || local.seq + config.snapshot.everyEntries >= (shared[0]?.seq ?? 0))) {
    const seq = await loadCheckpoint(replica, local.file, local.seq);
    if (seq !== undefined) {
      // Where the node and the store share a disk, a checkpoint of what a shared snapshot holds is
      // a second copy of it (a restore hands one over: ReplicaHost.seedCheckpoint).
      if (!deps.settings.keepUploadedCheckpoint && shared.some((s) => s.seq === seq)) {
        await deps.checkpoints.discard(config.uid, shard, seq);
        progress.checkpointSeq = 0;
      }
      return restoredFrom(replica, RestoreSource.Checkpoint, seq);
    }
  }
  await mkdir(deps.scratchDir, { recursive: true });
  if (replica.role().throttled) {
    const seq = await copyFromPeer(replica);
    if (seq !== undefined) return restoredFrom(replica, RestoreSource.Peer, seq);
  }
  for (const ref of shared) {
    const file = path.join(deps.scratchDir, `restore-${config.uid}-${shard}-${ref.seq}.snap`);
    try {
      const throttle: Throttle | undefined = replica.role().throttled ? (bytes) => deps.transfer.take(bytes) : undefined;
      const reading = {
        throttle,
        onSize: (bytes: number) => (progress.copyGoalBytes = progress.transferredBytes + bytes),
        onBytes: (bytes: number) => (progress.transferredBytes += bytes),
      };
      await deps.downloads.run(() => deps.snapshots.download(ref.name, file, reading));
      const loaded = await index.load(indexConfigOf(config), file);
      noteIndex(progress, loaded);
      replica.log.info({ snapshot: ref.name, appliedSeq: loaded.appliedSeq, count: loaded.count, unabsorbed: loaded.pendingRows }, "restored snapshot");
      return restoredFrom(replica, RestoreSource.Snapshot, loadedAt(replica, loaded));
    } catch (err) {
      replica.log.warn({ err, snapshot: ref.name }, "snapshot unreadable; trying an older one");
      await index.open(indexConfigOf(config));
    } finally {
      await rm(file, { force: true });
    }
  }
  replica.progress.consumedSeq = 0;
  return restoredFrom(replica, RestoreSource.Log, 0);
}

/** Loads the local checkpoint if it is still valid; otherwise deletes it and returns undefined. */
async function loadCheckpoint(replica: ReplicaParts, file: string, seq: number): Promise<number | undefined> {
  const { config, shard, deps, index, progress, log } = replica;
  // Failing to read the log's state fails the restore (the machine retries); it says nothing about the checkpoint.
  const info = await deps.nats.jsm.streams.info(names.logStream(config.name, shard));
  const { first_seq: firstSeq, last_seq: lastSeq } = info.state;
  // The log must hold every entry after the checkpoint, and must not be behind it (a log
  // that lost entries the checkpoint has seen would make this replica diverge).
  if (seq > lastSeq || (lastSeq > 0 && firstSeq > seq + 1)) {
    log.warn({ checkpointSeq: seq, firstSeq, lastSeq }, "local checkpoint no longer matches the log; discarding it");
    await deps.checkpoints.drop(config.uid, shard);
    return undefined;
  }
  try {
    const loaded = await index.load(indexConfigOf(config), file);
    noteIndex(progress, loaded);
    progress.checkpointSeq = loaded.appliedSeq;
    progress.transferredBytes += (await stat(file)).size;
    log.info({ appliedSeq: loaded.appliedSeq, count: loaded.count, unabsorbed: loaded.pendingRows, deltaEntries: lastSeq - loaded.appliedSeq }, "restored local checkpoint");
    return loadedAt(replica, loaded);
  } catch (err) {
    log.warn({ err, file }, "local checkpoint unreadable; discarding it");
    await deps.checkpoints.drop(config.uid, shard);
    await index.open(indexConfigOf(config));
    return undefined;
  }
}

/**
 * A joining replica copies a serving replica's checkpoint straight from it, chunk by chunk
 * within this node's transfer budget, and loads it: no rebuild from the log, and nothing
 * written to the replicated object store. Any failure falls back to the shared snapshot.
 */
async function copyFromPeer(replica: ReplicaParts): Promise<number | undefined> {
  const { config, shard, deps, index, progress, log } = replica;
  for (const peer of replica.role().peers) {
    const file = path.join(deps.scratchDir, `peer-${config.uid}-${shard}-${process.hrtime.bigint()}.snap`);
    try {
      const offer = await copyCheckpoint(
        {
          nc: deps.nats.nc,
          peer,
          collection: config.name,
          uid: config.uid,
          shard,
          take: (bytes) => deps.transfer.take(bytes),
          onOffer: (bytes) => (progress.copyGoalBytes = progress.transferredBytes + bytes),
          onBytes: (bytes) => (progress.transferredBytes += bytes),
        },
        file,
      );
      const loaded = await index.load(indexConfigOf(config), file);
      noteIndex(progress, loaded);
      log.info({ peer, appliedSeq: loaded.appliedSeq, count: loaded.count, unabsorbed: loaded.pendingRows, bytes: offer.bytes, wireBytes: offer.wireBytes }, "copied the shard from a serving replica");
      return loadedAt(replica, loaded);
    } catch (err) {
      log.warn({ err: errorMessage(err), peer }, "could not copy the shard from a serving replica; trying the next source");
      await index.open(indexConfigOf(config));
    } finally {
      await rm(file, { force: true });
    }
  }
  return undefined;
}

/**
 * What a loaded shard counts as applied for readers and writers: a snapshot taken while writes
 * waited for a transaction holds them unapplied (the follow re-reads them, and the index skips
 * what it has).
 */
function visibleOf(loaded: ApplyResult): number {
  return loaded.visibleSeq ?? loaded.appliedSeq;
}

/** Every load ends here: what the index has read is what the loaded shard covers. */
function loadedAt(replica: ReplicaParts, loaded: ApplyResult): number {
  replica.progress.consumedSeq = loaded.appliedSeq;
  return visibleOf(loaded);
}

function restoredFrom(replica: ReplicaParts, source: RestoreSource, seq: number): number {
  replica.progress.restored = { source, seq };
  return seq;
}
