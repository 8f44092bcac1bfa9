/**
 * What a shard replica is made of, shared by its jobs (lifecycle and reads in replica.ts,
 * restore.ts, saving.ts, apply.ts): settings, effects, its role in the placement, and the
 * counters its heartbeats report.
 */
import type { Logger } from "../../runtime/log.ts";
import type { NatsContext } from "../../nats/connect.ts";
import type { Mutex } from "../../runtime/mutex.ts";
import type { RateLimiter } from "../../runtime/rate-limit.ts";
import type { CollectionConfig } from "../../runtime/schemas.ts";
import type { RestoreInfo } from "../../runtime/status.ts";
import type { IndexPool, ShardIndexClient } from "../vector-index/pool.ts";
import type { ShardIndexConfig } from "../vector-index/api.ts";
import type { LocalCheckpoints } from "./checkpoints.ts";
import type { SnapshotStore } from "../../nats/snapshots.ts";
import type { SnapshotUploader } from "./upload-thread.ts";

export interface ReplicaSettings {
  lagThresholdEntries: number;
  retryDelayMs: number;
  retryDelayMaxMs: number;
  /**
   * Bytes per second this node spends on copying shards it is joining while another replica
   * already serves them (rebalancing moves, RF top-ups): snapshot download plus log replay,
   * shared by all such replicas. 0 = unlimited. A shard with no serving replica is always
   * restored at full speed: there, every second counts.
   */
  transferBytesPerSecMax: number;
  /** A throttled catch-up hands the index actor at most this much log per call, so searches of other shards on the same worker never queue behind a long apply. */
  transferChunkBytesMax: number;
  /**
   * Bytes per second a designated replica streams a snapshot into the object store; 0 =
   * unlimited. Unpaced, a 170 MB shard's upload took the node's main thread and the NATS
   * server's disk for seconds, and every search with them (docs/performance.md).
   */
  snapshotUploadBytesPerSecMax: number;
  /**
   * Keep the local checkpoint a designated replica uploaded as the shared snapshot. `jade dev`
   * turns it off: there the data directory holds the object store too, and the two were the
   * same bytes twice (bench --suite storage: 4.2 × the live vectors on disk, 2.3 × with one copy).
   * Without it, a restart after a crash restores the snapshot from the local store (a clean
   * stop still saves a checkpoint).
   */
  keepUploadedCheckpoint: boolean;
}

export const defaultReplicaSettings: ReplicaSettings = {
  lagThresholdEntries: 64,
  retryDelayMs: 500,
  retryDelayMaxMs: 30_000,
  // Sized for small nodes: on 2 saturated cores, moving shards at 2 MiB/s kept QPS within 10 % in
  // three runs (p95 in two), 4 MiB/s cost 15–28 % of QPS (docs/decisions/003). Raise it where cores are spare.
  transferBytesPerSecMax: 2 * 1024 * 1024,
  transferChunkBytesMax: 256 * 1024,
  snapshotUploadBytesPerSecMax: 32 * 1024 * 1024,
  keepUploadedCheckpoint: true,
};

/** How this node holds a shard right now (from the placement). */
export interface ReplicaRole {
  /** Write snapshots for the shard (the first replica listed). */
  designated: boolean;
  /** A learner of a shard that another replica already serves: its copy is throttled. */
  throttled: boolean;
  /** The shard's other replicas, in placement order: where a joining replica copies from. */
  peers: string[];
}

export interface ReplicaDeps {
  nats: NatsContext;
  pool: IndexPool;
  snapshots: SnapshotStore;
  nodeId: string;
  /** Scratch space for downloaded snapshot files. */
  scratchDir: string;
  checkpoints: LocalCheckpoints;
  log: Logger;
  settings: ReplicaSettings;
  /** The snapshot interval of collections without their own: the cluster's setting now (actors/config). */
  snapshotIntervalMs: () => number;
  /**
   * The sequence this node announced for a replica when it last stopped cleanly (departures.ts),
   * as read at start: retention kept the log after it, so a checkpoint covering it is replayed
   * from, never replaced by a copy.
   */
  departedAt: (uid: string, shard: number) => number | undefined;
  /** The node's transfer budget (see `transferBytesPerSecMax`). */
  transfer: RateLimiter;
  /** Uploads shared snapshots, off the main thread, within the node's budget (see `snapshotUploadBytesPerSecMax`). */
  uploader: SnapshotUploader;
  /**
   * One shared-snapshot download at a time per node. Four at once (a restored collection's
   * shards starting together) overran the node's NATS connection: nats-server dropped it as a
   * slow consumer, heartbeats and the coordinator's lease renewal timed out, and 386 MB took
   * 34 s to arrive; one at a time, each moves at full speed (~100 MB/s here).
   */
  downloads: Mutex;
  /**
   * One local snapshot save at a time per node, whatever its number of shards: side by side,
   * each takes a thread of libuv's pool of four (on which every file operation of the process
   * queues) and writes to the same disk. A 1M import's four shards fall due together: side by
   * side they took 4.8–5.1 s each, in turn 1.0–1.9 s each, about as long in all (decision 006).
   */
  saves: Mutex;
}

/** The counters a replica reports in heartbeats and status; written by whichever job changes them. */
export interface ReplicaProgress {
  /** Points in the index after the last apply or restore. */
  count: number;
  /** The sequence of this replica's local checkpoint (0: none yet). */
  checkpointSeq: number;
  /** Bytes copied into this replica since it started: snapshot or checkpoint loaded, then log replayed. */
  transferredBytes: number;
  /**
   * What `transferredBytes` will read once the copy under way (a peer's checkpoint or a shared
   * snapshot) is in: the copy's progress and ETA. 0 when no copy has started.
   */
  copyGoalBytes: number;
  /** How the current index was restored; undefined until the first restore finished. */
  restored: RestoreInfo | undefined;
  /** Points applied (and searched exactly) that the graph has not absorbed yet. */
  pendingRows: number;
  /** Bytes of vectors the fresh buffer holds: in the applied notices, which the writers pace on. */
  freshBytes: number;
  /**
   * The last log entry the index has read, beyond the machine's `appliedSeq` while a write waits
   * for a transaction (decision 013): a transaction's vote is known once its prepare is read.
   */
  consumedSeq: number;
}

/** One replica as its jobs see it. */
export interface ReplicaParts {
  readonly config: CollectionConfig;
  readonly shard: number;
  readonly deps: ReplicaDeps;
  readonly index: ShardIndexClient;
  readonly log: Logger;
  /** How this node holds the shard, read from the current placement at each call. */
  readonly role: () => ReplicaRole;
  readonly progress: ReplicaProgress;
}

export function indexConfigOf(config: CollectionConfig): ShardIndexConfig {
  return { dimension: config.dimension, metric: config.metric, index: config.index };
}
