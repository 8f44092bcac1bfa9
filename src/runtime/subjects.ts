/**
 * The one module that owns the subject grammar and the names of NATS objects.
 * Subjects and stream/bucket names are built and parsed here and nowhere else.
 */
import { limits } from "./limits.ts";

export const collectionNamePattern = /^[a-zA-Z0-9_-]{1,64}$/;

/**
 * The key of one shard in maps and in the index pool: `<collection name or uid>/<shard>`.
 * Names and uids never hold a "/" (collectionNamePattern, randomUUID), so keys never collide.
 */
export function shardKey(collection: string, shard: number): string {
  return `${collection}/${shard}`;
}

/** What every shard key of the collection starts with. */
export function shardKeyPrefix(collection: string): string {
  return `${collection}/`;
}

export function isCollectionName(name: string): boolean {
  return collectionNamePattern.test(name);
}

export const apiPrefix = "jade.v1";
export const apiQueueGroup = "jade-api";

/** Collection-scoped API operations: `jade.v1.<collection>.<op>`. */
export const CollectionOp = {
  Upsert: "upsert",
  Delete: "delete",
  Get: "get",
  Search: "search",
  Count: "count",
  Transaction: "transaction",
} as const;
export type CollectionOp = (typeof CollectionOp)[keyof typeof CollectionOp];

/** Collection management: `jade.v1.collections.<op>`. */
export const CatalogOp = {
  Create: "create",
  List: "list",
  Get: "get",
  Drop: "drop",
  Update: "update",
} as const;
export type CatalogOp = (typeof CatalogOp)[keyof typeof CatalogOp];

/** Cluster administration: `jade.v1.admin.<op>`, carried out by the coordinator. */
export const AdminOp = {
  Drain: "drain",
  Undrain: "undrain",
  Remove: "remove",
  Move: "move",
  Rebalance: "rebalance",
  Migrations: "migrations",
  Pause: "pause",
  Resume: "resume",
  Cancel: "cancel",
  BackupCreate: "backup.create",
  BackupList: "backup.list",
  BackupVerify: "backup.verify",
  BackupDelete: "backup.delete",
  Restore: "restore",
  RestoreList: "restore.list",
  KeysCreate: "keys.create",
  KeysList: "keys.list",
  KeysRevoke: "keys.revoke",
  ConfigGet: "config.get",
  ConfigSet: "config.set",
  ConfigHistory: "config.history",
  ConfigRollback: "config.rollback",
  TxnsList: "txns.list",
  TxnsGet: "txns.get",
  TxnsAbort: "txns.abort",
} as const;
export type AdminOp = (typeof AdminOp)[keyof typeof AdminOp];
const adminOps: ReadonlySet<string> = new Set(Object.values(AdminOp));

/** How long the leader may take to answer an admin request: verifying a backup re-reads all of it. */
export function adminTimeoutMs(op: AdminOp): number {
  return op === AdminOp.BackupVerify ? limits.backupVerifyMsMax : 30_000;
}

/** The admin ops of backups and restores (backup/service.ts serves them). */
export type BackupOp = (typeof AdminOp)["BackupCreate" | "BackupList" | "BackupVerify" | "BackupDelete" | "Restore" | "RestoreList"];
const backupOps: ReadonlySet<string> = new Set<BackupOp>([AdminOp.BackupCreate, AdminOp.BackupList, AdminOp.BackupVerify, AdminOp.BackupDelete, AdminOp.Restore, AdminOp.RestoreList]);

export function isBackupOp(op: AdminOp): op is BackupOp {
  return backupOps.has(op);
}

/** The admin ops of API keys: any gateway serves them from KV (actors/keys), no coordinator needed. */
export type KeyOp = (typeof AdminOp)["KeysCreate" | "KeysList" | "KeysRevoke"];
const keyOps: ReadonlySet<string> = new Set<KeyOp>([AdminOp.KeysCreate, AdminOp.KeysList, AdminOp.KeysRevoke]);

export function isKeyOp(op: AdminOp): op is KeyOp {
  return keyOps.has(op);
}

/** The admin ops of the cluster's settings: any gateway serves them from KV (actors/config). */
export type ConfigOp = (typeof AdminOp)["ConfigGet" | "ConfigSet" | "ConfigHistory" | "ConfigRollback"];
const configOps: ReadonlySet<string> = new Set<ConfigOp>([AdminOp.ConfigGet, AdminOp.ConfigSet, AdminOp.ConfigHistory, AdminOp.ConfigRollback]);

export function isConfigOp(op: AdminOp): op is ConfigOp {
  return configOps.has(op);
}

/** The admin ops of transaction records (`jade txns`): any gateway serves them from KV (actors/txn/admin.ts). */
export type TxnOp = (typeof AdminOp)["TxnsList" | "TxnsGet" | "TxnsAbort"];
const txnOps: ReadonlySet<string> = new Set<TxnOp>([AdminOp.TxnsList, AdminOp.TxnsGet, AdminOp.TxnsAbort]);

export function isTxnOp(op: AdminOp): op is TxnOp {
  return txnOps.has(op);
}

/** Reserved first tokens after `jade.v1.`: no collection may use them as its name. */
export const reservedNames: ReadonlySet<string> = new Set(["collections", "cluster", "admin"]);

export const subjects = {
  apiWildcard: `${apiPrefix}.>`,
  catalog: (op: CatalogOp) => `${apiPrefix}.collections.${op}`,
  collection: (collection: string, op: CollectionOp) => `${apiPrefix}.${collection}.${op}`,
  clusterStatus: `${apiPrefix}.cluster.status`,
  admin: (op: AdminOp) => `${apiPrefix}.admin.${op}`,
  /** Admin requests forwarded by any gateway to the current coordinator (only the leader subscribes). */
  coordinator: (op: AdminOp) => `jade.coordinator.${op}`,
  coordinatorWildcard: "jade.coordinator.>",

  log: (collection: string, shard: number) => `jade.log.${collection}.${shard}`,
  ingest: (collection: string) => `jade.ingest.${collection}`,
  ingestWildcard: "jade.ingest.>",
  dlq: (collection: string) => `jade.dlq.${collection}`,
  dlqWildcard: "jade.dlq.>",
  /** Each node's own log lines (JSON), kept a while in the stream `JADE_LOGS` (actors/logs). */
  logs: (nodeId: string) => `jade.logs.${nodeId}`,
  logsWildcard: "jade.logs.>",
  /** A node's diagnostics (`info`, `metrics`), answered by that node alone: `jade diag` (actors/logs/diag.ts). */
  diag: (nodeId: string, op: DiagOp) => `jade.diag.${nodeId}.${op}`,
  diagWildcard: (nodeId: string) => `jade.diag.${nodeId}.*`,
  /** Dead letters whose subject names no valid collection (`$` cannot start a collection name). */
  dlqUnroutable: "jade.dlq.$unroutable",
  applied: (collection: string, shard: number) => `jade.applied.${collection}.${shard}`,
  appliedWildcard: "jade.applied.>",
  /** Requests to one node's replica of a shard: `jade.replica.<node>.<collection>.<shard>.<op>`. */
  replica: (nodeId: string, collection: string, shard: number, op: ReplicaOp) => `jade.replica.${nodeId}.${collection}.${shard}.${op}`,
  replicaWildcard: (nodeId: string) => `jade.replica.${nodeId}.>`,
} as const;

export const DiagOp = { Info: "info", Metrics: "metrics" } as const;
export type DiagOp = (typeof DiagOp)[keyof typeof DiagOp];

export const ReplicaOp = { Search: "search", Get: "get", Count: "count", Checkpoint: "checkpoint", Chunk: "chunk", Digest: "digest", Vote: "vote" } as const;
export type ReplicaOp = (typeof ReplicaOp)[keyof typeof ReplicaOp];
const replicaOps: ReadonlySet<string> = new Set(Object.values(ReplicaOp));

export function parseReplicaSubject(subject: string): { nodeId: string; collection: string; shard: number; op: ReplicaOp } | undefined {
  const parts = subject.split(".");
  if (parts.length !== 6 || parts[0] !== "jade" || parts[1] !== "replica") return undefined;
  const shard = Number(parts[4]);
  if (!Number.isInteger(shard) || shard < 0 || !replicaOps.has(parts[5]!)) return undefined;
  return { nodeId: parts[2]!, collection: parts[3]!, shard, op: parts[5] as ReplicaOp };
}

/** Node ids become subject tokens. */
export const nodeIdPattern = /^[a-zA-Z0-9_-]{1,64}$/;

export type ApiRoute =
  | { kind: "catalog"; op: CatalogOp }
  | { kind: "collection"; collection: string; op: CollectionOp }
  | { kind: "cluster"; op: "status" }
  | { kind: "admin"; op: AdminOp }
  | { kind: "unknown"; subject: string };

const catalogOps: ReadonlySet<string> = new Set(Object.values(CatalogOp));
const collectionOps: ReadonlySet<string> = new Set(Object.values(CollectionOp));

/**
 * The same API addressed to one node: `jade.n.<nodeId>.v1.…`. Clients that track
 * heartbeats use it to avoid a hung node, which a queue group would keep feeding.
 */
export function nodeApiSubject(nodeId: string, apiSubject: string): string {
  return `jade.n.${nodeId}.${apiSubject.slice("jade.".length)}`;
}

export function nodeApiWildcard(nodeId: string): string {
  return `jade.n.${nodeId}.v1.>`;
}

export function parseApiSubject(subject: string): ApiRoute {
  if (subject.startsWith("jade.n.")) {
    const rest = subject.split(".").slice(3).join(".");
    return parseApiSubject(`jade.${rest}`);
  }
  const parts = subject.split(".");
  // Admin ops may have two tokens (`backup.create`).
  if (parts[0] === "jade" && parts[1] === "v1" && parts[2] === "admin" && parts.length <= 5) {
    const op = parts.slice(3).join(".");
    return adminOps.has(op) ? { kind: "admin", op: op as AdminOp } : { kind: "unknown", subject };
  }
  if (parts.length !== 4 || parts[0] !== "jade" || parts[1] !== "v1") return { kind: "unknown", subject };
  const [, , scope, op] = parts as [string, string, string, string];
  if (scope === "collections" && catalogOps.has(op)) return { kind: "catalog", op: op as CatalogOp };
  if (scope === "cluster" && op === "status") return { kind: "cluster", op: "status" };
  if (!reservedNames.has(scope) && collectionOps.has(op)) {
    return { kind: "collection", collection: scope, op: op as CollectionOp };
  }
  return { kind: "unknown", subject };
}

/** `jade.coordinator.<op>` → op, or undefined for anything else. */
export function parseCoordinatorSubject(subject: string): AdminOp | undefined {
  const parts = subject.split(".");
  if (parts.length < 3 || parts[0] !== "jade" || parts[1] !== "coordinator") return undefined;
  const op = parts.slice(2).join(".");
  return adminOps.has(op) ? (op as AdminOp) : undefined;
}

/** `jade.ingest.<collection>` → collection, or undefined for anything else. */
export function parseIngestSubject(subject: string): string | undefined {
  const parts = subject.split(".");
  if (parts.length !== 3 || parts[0] !== "jade" || parts[1] !== "ingest") return undefined;
  return parts[2];
}

export function parseAppliedSubject(subject: string): { collection: string; shard: number } | undefined {
  const parts = subject.split(".");
  if (parts.length !== 4 || parts[0] !== "jade" || parts[1] !== "applied") return undefined;
  const shard = Number(parts[3]);
  if (!Number.isInteger(shard) || shard < 0) return undefined;
  return { collection: parts[2]!, shard };
}

/** JetStream and KV / object store names. */
export const names = {
  logStream: (collection: string, shard: number) => `jade-log-${collection}-${shard}`,
  ingestStream: "JADE_INGEST",
  ingestConsumer: "jade-ingest",
  dlqStream: "JADE_DLQ",
  logsStream: "JADE_LOGS",
  collectionsBucket: "jade_collections",
  nodesBucket: "jade_nodes",
  leasesBucket: "jade_leases",
  coordinatorLease: "coordinator",
  placementBucket: "jade_placement",
  migrationsBucket: "jade_migrations",
  configBucket: "jade_config",
  /** Per collection: each shard log's state and purge floor, written by the coordinator (retention). */
  retentionBucket: "jade_retention",
  /** The backup catalog: backup id → where it is, its cut, its base, its state (decision 008). */
  backupsBucket: "jade_backups",
  /** Restores: id → source, target collections, state and progress. */
  restoresBucket: "jade_restores",
  /** API keys for HTTP (actors/keys): sha256 of each secret, never the secret. */
  keysBucket: "jade_keys",
  /** Transaction locks: one key per locked point, `<collection uid>.<hash of the id>` → `{txn, expiresAtMs}` (decision 013). */
  locksBucket: "jade_locks",
  /** Transaction records: the log of decisions; `committed` written by CAS is the commit point (decision 013). */
  txnsBucket: "jade_txns",
  cordonedKey: "cordoned",
  removedKey: "removed",
  /** KV `jade_config`: the cluster's settings patch (actors/config). */
  settingsKey: "settings",
  /** KV `jade_config`: the formats the cluster's logs and messages are written in (runtime/formats.ts). */
  formatsKey: "formats",
  /** KV `jade_config`: a node that stopped on purpose and is expected back (actors/cluster/departures.ts). */
  departedKey: (node: string) => `departed.${node}`,
  isDepartedKey: (key: string) => key.startsWith("departed."),
  nodeOfDepartedKey: (key: string) => key.slice("departed.".length),
  /**
   * One object-store bucket per shard snapshot: deleting a snapshot deletes its stream, the one
   * way nats-server 2.9 gives the disk back (objects deleted from a shared bucket left their
   * 8 MiB blocks behind: 39 MB on disk for 14 MB of live snapshots, decision 007). The
   * revision (the upload's start, in ms) tells apart two snapshots of one sequence: a replica
   * saves again once its graph absorbed what a save left out, and a newly designated replica
   * may save at the sequence its predecessor did. With one name, the second upload opened the
   * first's sealed bucket, failed to write, and deleted it.
   */
  snapshotBucket: (collection: string, shard: number, seq: number, revision: number) => `${snapshotBucketPrefix}${collection}_${shard}_${seq}_r${revision}`,
  /** The object inside a snapshot bucket. */
  snapshotObject: "snapshot",
} as const;

const snapshotBucketPrefix = "jadesnap_";

/**
 * Parses a snapshot bucket's name back (collection names may hold `_`: shard, seq and the
 * revision are the last parts; names without a revision were written before it existed).
 */
export function parseSnapshotBucket(bucket: string): { collection: string; shard: number; seq: number } | undefined {
  if (!bucket.startsWith(snapshotBucketPrefix)) return undefined;
  const match = /^(.+)_(\d+)_(\d+)(?:_r\d+)?$/.exec(bucket.slice(snapshotBucketPrefix.length));
  if (!match || !isCollectionName(match[1]!)) return undefined;
  return { collection: match[1]!, shard: Number(match[2]), seq: Number(match[3]) };
}
