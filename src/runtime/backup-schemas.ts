/**
 * Backups and restores on the wire (decision 008): the requests of `jade.v1.admin.backup.*` and
 * `jade.v1.admin.restore`, the records of KV `jade_backups` and `jade_restores`, and the
 * manifest written last beside a backup's files. One zod schema each; types derived from them.
 *
 * A backup is a consistent cut of some collections: per shard, the sequence every entry up to
 * which (and none after) is in the backup, with the files that rebuild the shard at that
 * sequence: a snapshot at or below the cut and the log range from the snapshot (or from the
 * base backup's cut, for an incremental backup) up to it.
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import { canonicalJson } from "./content-digest.ts";
import { limits } from "./limits.ts";
import { CollectionConfig, CollectionName } from "./schemas.ts";

/** The manifest format this code writes and reads. */
export const manifestFormat = 1;

/** Backup ids: `<UTC time>-<random>`, sortable by when they were taken, a KV key and a path component. */
export const BackupId = z.string().regex(/^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$/, "must be a backup id such as 20261205T081500Z-3fa9c1");
export type BackupId = z.infer<typeof BackupId>;

/** An object-store bucket name (nats.js allows these characters). */
export const BucketName = z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, "must match ^[a-zA-Z0-9_-]{1,64}$ (an object store bucket)");

/** Where backups are kept: a directory on the node that runs the backup, or an object-store bucket of this NATS. */
export const BackupLocation = z.union([
  z.object({ dir: z.string().min(2).max(4_096).startsWith("/", "must be an absolute path") }).strict(),
  z.object({ bucket: BucketName }).strict(),
]);
export type BackupLocation = z.infer<typeof BackupLocation>;

export function describeLocation(location: BackupLocation): string {
  return "dir" in location ? location.dir : `bucket ${location.bucket}`;
}

export const ContentDigestSchema = z.object({ count: z.number().int().min(0), hash: z.string().regex(/^[0-9a-f]{16}$/) }).strict();

export const ShardBackup = z
  .object({
    shard: z.number().int().min(0),
    /** The cut: the shard as it was after this entry (0: before any). */
    seq: z.number().int().min(0),
    /** The shard at `snapshot.seq` (≤ seq); absent in an incremental backup whose base covers the start. */
    snapshot: z.object({ seq: z.number().int().min(1), file: z.string() }).strict().optional(),
    /** The entries fromSeq..toSeq (toSeq = seq), when there are any, and when the first was appended (ms). */
    log: z
      .object({ fromSeq: z.number().int().min(1), toSeq: z.number().int().min(1), firstTimeMs: z.number(), file: z.string() })
      .strict()
      .optional(),
    /**
     * Transactions staged at the cut, and their commit time when they committed at or before
     * the backup's instant (decision 013): a restore to the cut appends their markers after it.
     */
    closing: z
      .array(z.object({ txn: z.string().min(1).max(64), prepareSeq: z.number().int().min(1), committedAtMs: z.number().optional() }).strict())
      .max(limits.txnsStagedMax)
      .optional(),
    /** The shard's content at the cut (with `closing` applied). */
    digest: ContentDigestSchema,
  })
  .strict();
export type ShardBackup = z.infer<typeof ShardBackup>;

export const CollectionBackup = z.object({ config: CollectionConfig, shards: z.array(ShardBackup) }).strict();
export type CollectionBackup = z.infer<typeof CollectionBackup>;

export const BackupFile = z.object({ path: z.string(), bytes: z.number().int().min(0), sha256: z.string().regex(/^[0-9a-f]{64}$/) }).strict();
export type BackupFile = z.infer<typeof BackupFile>;

export const BackupManifest = z
  .object({
    format: z.literal(manifestFormat),
    id: BackupId,
    createdAt: z.string(),
    /** The instant of the cut (ms since the epoch, the stream leaders' clocks). */
    cutAtMs: z.number(),
    /** The backup this one adds to (an incremental backup), stored in the same place. */
    base: BackupId.optional(),
    collections: z.array(CollectionBackup),
    files: z.array(BackupFile),
  })
  .strict();
export type BackupManifest = z.infer<typeof BackupManifest>;

/** The manifest as stored: with the sha256 of its canonical JSON, so a changed byte in it is caught too. */
export const StoredManifest = z.object({ manifest: z.unknown(), sha256: z.string() }).strict();

export function manifestSha256(manifest: BackupManifest): string {
  return createHash("sha256").update(canonicalJson(manifest)).digest("hex");
}

/** Something a running backup or restore still reads: retention keeps the log after `seq` and the snapshot named. */
export const Hold = z
  .object({ what: z.string(), collection: z.string(), uid: z.string(), shard: z.number().int(), seq: z.number().int().min(0), snapshot: z.string().optional() })
  .strict();
export type Hold = z.infer<typeof Hold>;

export const JobState = z.enum(["running", "complete", "failed"]);

/** Why a job failed, with the error code its request would have answered. */
export const JobError = z.object({ code: z.string(), message: z.string() }).strict();
export type JobError = z.infer<typeof JobError>;
export type JobState = z.infer<typeof JobState>;

export const Progress = z.object({ bytesDone: z.number(), bytesTotal: z.number(), shardsDone: z.number().int(), shardsTotal: z.number().int() }).strict();
export type Progress = z.infer<typeof Progress>;

/** A backup's entry in KV `jade_backups`. */
export const BackupRecord = z
  .object({
    id: BackupId,
    state: JobState,
    location: BackupLocation,
    base: BackupId.optional(),
    collections: z.array(z.string()),
    /** The node running it; a running backup whose node stops beating is failed by the next leader. */
    node: z.string(),
    startedAt: z.string(),
    finishedAt: z.string().optional(),
    heartbeatAtMs: z.number(),
    progress: Progress,
    holds: z.array(Hold),
    cutAtMs: z.number().optional(),
    /** Once complete: the manifest's checksum, its size and what it holds. */
    manifestSha256: z.string().optional(),
    bytes: z.number().int().optional(),
    points: z.number().int().optional(),
    error: JobError.optional(),
  })
  .strict();
export type BackupRecord = z.infer<typeof BackupRecord>;

export const RestoreFrom = z.union([z.object({ backup: BackupId }).strict(), z.object({ live: z.string() }).strict()]);
export type RestoreFrom = z.infer<typeof RestoreFrom>;

/** A restore's entry in KV `jade_restores`. */
export const RestoreRecord = z
  .object({
    id: z.string(),
    state: JobState,
    source: RestoreFrom,
    /** Source collection → restored collection. */
    collections: z.array(z.object({ from: z.string(), to: z.string() }).strict()),
    node: z.string(),
    startedAt: z.string(),
    finishedAt: z.string().optional(),
    heartbeatAtMs: z.number(),
    progress: Progress,
    holds: z.array(Hold),
    points: z.number().int().optional(),
    error: JobError.optional(),
  })
  .strict();
export type RestoreRecord = z.infer<typeof RestoreRecord>;

export function newBackupId(nowMs: number, random: string): BackupId {
  const stamp = new Date(nowMs).toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
  return `${stamp}-${random}`;
}

/** What `backup.list` tells of a backup found at a location (its manifest). */
export interface BackupManifestSummary {
  id: string;
  createdAt: string;
  cutAtMs: number;
  base?: string;
  collections: string[];
  bytes: number;
}

// ───────────── requests ─────────────

const Collections = z.array(CollectionName).min(1).max(limits.shardsMax);
/** Bytes per second a backup may read: from 1 MiB/s to 1 GiB/s. */
const BytesPerSec = z.number().int().min(1 << 20).max(1 << 30);

export const BackupCreateRequest = z
  .object({
    /** Default: every collection. */
    collections: Collections.optional(),
    /** Default: the base's location for an incremental backup, else the bucket `jade-backups`. */
    to: BackupLocation.optional(),
    incrementalFrom: BackupId.optional(),
    bytesPerSecMax: BytesPerSec.optional(),
  })
  .strict();
export type BackupCreateRequest = z.infer<typeof BackupCreateRequest>;

export const BackupListRequest = z.object({ from: BackupLocation.optional() }).strict();

export const BackupVerifyRequest = z
  .object({
    id: BackupId,
    /** A backup the catalog does not know (taken on another cluster): read it from there. */
    from: BackupLocation.optional(),
    /** Also restore it into a scratch collection and compare every shard's digest. */
    deep: z.boolean().optional(),
  })
  .strict();
export type BackupVerifyRequest = z.infer<typeof BackupVerifyRequest>;

export const BackupDeleteRequest = z.object({ id: BackupId, force: z.boolean().optional() }).strict();

const SeqTarget = z.array(z.object({ shard: z.number().int().min(0).max(limits.shardsMax - 1), seq: z.number().int().min(0) }).strict()).min(1).max(limits.shardsMax);

export const RestoreRequest = z
  .object({
    /** Restore a backup… */
    backup: BackupId.optional(),
    from: BackupLocation.optional(),
    /** …or the live cluster's own snapshots and logs (within the collection's point-in-time window). */
    live: CollectionName.optional(),
    /** Of a backup: which of its collections (default all). */
    collections: Collections.optional(),
    /** Restore under this name (one collection only). */
    as: CollectionName.optional(),
    /** To the last entry at or before this instant (ISO 8601)… */
    toTime: z.iso.datetime({ offset: true }).optional(),
    /** …or to these sequences (shards not named: the backup's cut, or the log's end). */
    toSeq: SeqTarget.optional(),
  })
  .strict()
  .superRefine((r, ctx) => {
    const issue = (message: string) => ctx.addIssue({ code: "custom", message });
    if ((r.backup === undefined) === (r.live === undefined)) issue("name exactly one of backup and live");
    if (r.live !== undefined && (r.from !== undefined || r.collections !== undefined)) issue("from and collections go with backup, not live");
    if (r.toTime !== undefined && r.toSeq !== undefined) issue("give toTime or toSeq, not both");
    if (r.live !== undefined && r.as === undefined) issue("a live restore needs as (the live collection keeps its name)");
    if (r.as !== undefined && r.collections !== undefined && r.collections.length > 1) issue("as renames one collection: name one in collections");
  });
export type RestoreRequest = z.infer<typeof RestoreRequest>;
