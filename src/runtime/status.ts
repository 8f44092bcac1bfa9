/**
 * What the status reports: replicas, shard logs, jobs and the cluster view. Shapes only
 * (readers import them without the message schemas).
 */
import { z } from "zod";

/**
 * Where a replica's index came from when it (re)started: its own checkpoint, a copy of a
 * serving replica's checkpoint (joining a shard), a shared snapshot, or the log alone.
 */
export const RestoreSource = {
  Checkpoint: "checkpoint",
  Peer: "peer",
  Snapshot: "snapshot",
  Log: "log",
} as const;
export type RestoreSource = (typeof RestoreSource)[keyof typeof RestoreSource];

export const RestoreInfo = z.object({
  source: z.enum(RestoreSource),
  /** The log sequence the loaded state covers; replay started after it. */
  seq: z.number().int(),
});
export type RestoreInfo = z.infer<typeof RestoreInfo>;

/**
 * How a transaction a gateway ran ended: committed; refused (`conflict`: a condition failed, a
 * point was locked or staged by another transaction); aborted otherwise (its deadline, a failed
 * step, recovery or an operator deciding first); or in doubt (its record could not be read).
 */
export const TxnOutcome = { Committed: "committed", Conflict: "conflict", Aborted: "aborted", InDoubt: "in_doubt" } as const;
export type TxnOutcome = (typeof TxnOutcome)[keyof typeof TxnOutcome];

const count = z.number().int().min(0);

/** A node's transactions since it started, as its heartbeat carries them (and its metrics read them). */
export const TxnFigures = z.object({
  /** Running on this node's gateway now. */
  running: count,
  /** Ended on this node's gateway, by outcome. */
  committed: count,
  conflicts: count,
  aborted: count,
  inDoubt: count,
  /** Finished on this node from their records (recovery's sweep while it leads, an operator's abort), by outcome. */
  recovered: z.object({ committed: count, aborted: count }),
  /** Start to decision of the last transactions its gateway ran (up to 1,024): median, 99th percentile; absent before the first. */
  recentMs: z.object({ count, p50: z.number().min(0), p99: z.number().min(0) }).optional(),
});
export type TxnFigures = z.infer<typeof TxnFigures>;

export interface ReplicaStatus {
  node: string;
  state: string;
  appliedSeq: number;
  lastSeq: number;
  lag: number;
  count?: number;
  /** Points applied and searchable (scanned exactly) that the HNSW graph has not absorbed yet. */
  pending?: number;
  /** Points of the replica's newest snapshot that its graph did not hold when saved: a restart indexes them again (a re-save comes once absorbed). */
  snapshotUnabsorbed?: number;
  restored?: RestoreInfo;
}

export interface ShardLogStatus {
  firstSeq: number;
  lastSeq: number;
  messages: number;
  bytes: number;
  /** Entries at or below this sequence were purged (or may be). */
  floor: number;
  /** What holds the floor: the newest snapshot, a replica, the point-in-time window, a backup. */
  heldBy: string;
}

/** A backup or restore running now, as the status shows it. */
export interface JobStatus {
  id: string;
  kind: "backup" | "restore";
  node: string;
  collections: string[];
  bytesDone: number;
  bytesTotal: number;
  shardsDone: number;
  shardsTotal: number;
}

export interface ClusterStatus {
  /** `drained`: the node takes no new replicas (`jade nodes drain`); `txns`: its transactions (absent from a build without them). */
  nodes: { id: string; self: boolean; live: boolean; drained: boolean; load: number; rssBytes: number; lastSeenMs: number; configRevision: number; version: string; txns?: TxnFigures }[];
  /** Nodes that stopped on purpose and are expected back: their replicas stay placed until the restart delay passes. */
  departed: { node: string; at: string }[];
  /** The revision of the cluster's settings stored now (`jade config`): a node whose configRevision is lower runs an older one. */
  configRevision: number;
  coordinator: string | null;
  /** Backups and restores running now (their history: `backup.list`, `restore.list`). */
  jobs: JobStatus[];
  collections: {
    name: string;
    dimension: number;
    metric: string;
    replicas: number;
    /** Placement epoch: bumped on every placement change. */
    epoch: number;
    /**
     * `learners`: replicas a migration is building (they serve nothing until its cutover);
     * `log`: the shard log and its purge floor, as the coordinator's last retention pass saw them.
     */
    shards: { shard: number; replicas: ReplicaStatus[]; learners: ReplicaStatus[]; log?: ShardLogStatus }[];
  }[];
}
