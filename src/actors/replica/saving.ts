/**
 * A replica's saves: the local checkpoint (with the shared snapshot when this replica is the
 * designated one), the checkpoint at shutdown, and the checkpoint offered to a joining peer.
 * The caller runs each inside the replica's save lock: they share checkpoint files.
 */
import { rm, stat } from "node:fs/promises";
import { withDeadline } from "../../runtime/async.ts";
import { unavailable } from "../../runtime/errors.ts";
import type { SavedSnapshot as SavedShard } from "../vector-index/api.ts";
import type { CheckpointOffer } from "./protocol.ts";
import type { ReplicaParts } from "./types.ts";

/** A shutdown checkpoint gives up after this long so a stopping node never hangs on a slow disk. */
const shutdownCheckpointTimeoutMs = 30_000;

export interface SavedSnapshot {
  /** The log sequence the checkpoint covers. */
  seq: number;
  /**
   * How long the local save took: what the replica pays for each save (its next save waits a
   * multiple of it). Not counted: the upload, paced by the node's upload budget (counting a
   * 38 s upload of a 250,000-point shard held that shard's next save back for 13 minutes), and
   * a compaction of the graph before the write, which deletes call for and the next save does
   * not repeat (counting the 3.5 s compaction of a 10,000-point shard after deleting half of
   * it, on a loaded machine, held the next save back for 70 s).
   */
  saveMs: number;
  /** Points saved, and how many of them the saved graph did not hold. */
  points: number;
  unabsorbed: number;
}

/**
 * Saves the index as this replica's local checkpoint; if this is the shard's designated
 * replica (and `upload` allows it) it then uploads that file as the shared snapshot new
 * replicas start from. Local first, so a crash in between never leaves this node's
 * checkpoint older than the shared snapshot. The local save waits its turn among the node's
 * (`deps.saves`); `timeoutMs` bounds the save once it has its turn, not the wait.
 */
export async function saveSnapshot(replica: ReplicaParts, options: { upload: "ifDesignated" | "never"; timeoutMs?: number }): Promise<SavedSnapshot> {
  const { config, shard, deps, progress } = replica;
  const queuedMs = performance.now();
  const { saved, file, startedMs, tookMs } = await deps.saves.run(() => {
    const saving = saveLocal(replica);
    if (options.timeoutMs === undefined) return saving;
    return withDeadline(saving, options.timeoutMs, () => new Error(`save took over ${options.timeoutMs} ms`));
  });
  progress.checkpointSeq = Math.max(progress.checkpointSeq, saved.appliedSeq);
  const saveMs = Math.max(0, tookMs - saved.compactionMs);
  replica.log.info(
    {
      appliedSeq: saved.appliedSeq,
      bytes: saved.bytes,
      points: saved.points,
      unabsorbed: saved.unabsorbed,
      ms: Math.round(tookMs),
      compactionMs: Math.round(saved.compactionMs),
      waitedMs: Math.round(startedMs - queuedMs),
    },
    "checkpoint saved",
  );
  if (options.upload === "ifDesignated" && replica.role().designated) {
    // Older snapshots are deleted by the coordinator's retention pass, which knows what point-in-time restores still need.
    const ref = await deps.uploader.upload({ collection: config.name, uid: config.uid, shard, seq: saved.appliedSeq, file });
    replica.log.info({ snapshot: ref.name, bytes: saved.bytes, ms: Math.round(performance.now() - startedMs) }, "snapshot saved");
    if (!deps.settings.keepUploadedCheckpoint) {
      await deps.checkpoints.discard(config.uid, shard, saved.appliedSeq);
      progress.checkpointSeq = 0;
    }
  }
  return { seq: saved.appliedSeq, saveMs, points: saved.points, unabsorbed: saved.unabsorbed };
}

/** The local save, in its turn: the index written to a scratch file, committed as the checkpoint. */
async function saveLocal(replica: ReplicaParts): Promise<{ saved: SavedShard; file: string; startedMs: number; tookMs: number }> {
  const { config, shard, deps, index } = replica;
  const startedMs = performance.now();
  const scratch = await deps.checkpoints.scratchFile(config.uid, shard);
  let saved: SavedShard;
  try {
    saved = await index.save(scratch);
  } catch (err) {
    await rm(scratch, { force: true });
    throw err;
  }
  const checkpoint = await deps.checkpoints.commit(config.uid, shard, scratch, saved.appliedSeq);
  return { saved, file: checkpoint.file, startedMs, tookMs: performance.now() - startedMs };
}

/** The node is stopping and keeps the shard: save a checkpoint so the restart replays only the delta. Never throws. */
export async function shutdownCheckpoint(replica: ReplicaParts): Promise<void> {
  try {
    // The node's shards stop together and save in turns: each gets the whole timeout once its turn comes.
    const { seq } = await saveSnapshot(replica, { upload: "never", timeoutMs: shutdownCheckpointTimeoutMs });
    replica.log.info({ appliedSeq: seq }, "checkpoint saved at shutdown");
  } catch (err) {
    replica.log.warn({ err }, "no checkpoint at shutdown; the restart restores from the shared snapshot");
  }
}

/**
 * The serving side of a peer copy: makes sure the local checkpoint covers `appliedSeq`
 * (saving one if not — local only: the copy goes peer to peer, not through the replicated
 * object store) and offers it to be read in chunks.
 */
export async function offerCheckpoint(replica: ReplicaParts, appliedSeq: number): Promise<CheckpointOffer> {
  const { config, shard, deps } = replica;
  const latest = await deps.checkpoints.latest(config.uid, shard);
  if (!latest || latest.seq < appliedSeq) await saveSnapshot(replica, { upload: "never" });
  const offer = await deps.checkpoints.offer(config.uid, shard);
  if (!offer) throw unavailable(`shard ${shard} of ${config.name} has no checkpoint to offer`);
  return { seq: offer.seq, bytes: (await stat(offer.file)).size };
}
