/**
 * Backups and restores as the coordinator serves them (`jade.v1.admin.backup.*`,
 * `jade.v1.admin.restore`, `restore.list`): requests are checked, jobs are recorded in KV and run
 * in the background on the node that took them, each rewriting its record with its progress
 * every second. While this node leads, a sweep fails the jobs whose node stopped beating and
 * cleans up what they left: a backup's files, a restore's half-built collection.
 */
import { randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import path from "node:path";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { ListedKv } from "../../nats/kv-keys.ts";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Objm } from "@nats-io/obj";
import type { Catalog } from "../cluster/catalog.ts";
import type { Membership } from "../cluster/membership.ts";
import type { PlacementStore } from "../cluster/placement-store.ts";
import type { SnapshotStore } from "../../nats/snapshots.ts";
import { parse } from "../../runtime/checks.ts";
import { errorMessage, ErrorCode, invalidArgument, JadeError } from "../../runtime/errors.ts";
import type { Logger } from "../../runtime/log.ts";
import { EmptyRequest, type CollectionConfig } from "../../runtime/schemas.ts";
import { AdminOp, type BackupOp } from "../../runtime/subjects.ts";
import { BackupCreateRequest, BackupDeleteRequest, BackupListRequest, BackupVerifyRequest, RestoreRequest } from "../../runtime/backup-schemas.ts";
import { holdsOf, planBackup } from "./create.ts";
import type { CheckpointRef } from "../replica/checkpoints.ts";
import { takeBackupOnThread } from "./thread.ts";
import {
  BackupManifest,
  type BackupManifestSummary,
  BackupRecord,
  describeLocation,
  type BackupLocation,
  type Hold,
  type JobError,
  manifestSha256,
  newBackupId,
  type Progress,
  RestoreRecord,
} from "../../runtime/backup-schemas.ts";
import { beat, isStale, JobRecords } from "./records.ts";
import { restoreCollection, type RestoreDeps } from "./restore.ts";
import { chainSources, liveSources, type ChainLink, type RestoreTarget, type ShardSource } from "./sources.ts";
import type { NatsAuth } from "../../nats/auth.ts";
import { backupFiles, backupIdsAt, type BackupFiles } from "./store.ts";
import { loadChain, readManifest, verifyFiles } from "./chain.ts";

export interface BackupSettings {
  /** What a backup may read per second unless its request says otherwise (searches keep their speed). */
  bytesPerSecMax: number;
  /** Where backups go when the request names no place. */
  defaultBucket: string;
  /** The leader's sweep for dead jobs runs this often. */
  sweepIntervalMs: number;
}

/**
 * 16 MiB/s: a backup (copy, then read back for the digests) took 41 % of the search QPS of a
 * 2-core machine searching flat out at 64 MiB/s (Fashion-MNIST, `npm run bench -- --suite backup`);
 * its cost is linear in the rate, and the target is at most 10 %.
 */
export const defaultBackupSettings: BackupSettings = { bytesPerSecMax: 16 * 1024 * 1024, defaultBucket: "jade-backups", sweepIntervalMs: 5_000 };

export interface BackupsDeps {
  nodeId: string;
  /** For the backup threads' own connections (thread.ts). */
  servers: string[];
  /** How the backup threads' connections authenticate (the node's own credentials). */
  auth?: NatsAuth;
  /** This node's replicas take a restored shard's snapshot as their local checkpoint (restore.ts). */
  seedCheckpoint: RestoreDeps["seedCheckpoint"];
  unseedCheckpoints: RestoreDeps["unseedCheckpoints"];
  /** Pins this node's newest checkpoint of a shard into `dir` for a backup to copy (LocalCheckpoints.pin). */
  pinCheckpoint: (uid: string, shard: number, dir: string, accept: (seq: number) => boolean) => Promise<CheckpointRef | undefined>;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  objm: Objm;
  streamReplicas: number;
  backupsKv: ListedKv;
  restoresKv: ListedKv;
  catalog: Catalog;
  snapshots: SnapshotStore;
  membership: Membership;
  placements: PlacementStore;
  scratchDir: string;
  log: Logger;
  settings: BackupSettings;
}

const zeroProgress = (): Progress => ({ bytesDone: 0, bytesTotal: 0, shardsDone: 0, shardsTotal: 0 });

export class Backups {
  readonly backups: JobRecords<BackupRecord>;
  readonly restores: JobRecords<RestoreRecord>;
  readonly #deps: BackupsDeps;
  readonly #log: Logger;
  #sweeper: NodeJS.Timeout | undefined;
  /** Ends the backup threads when the node stops. */
  readonly #stopping = new AbortController();

  constructor(deps: BackupsDeps) {
    this.#deps = deps;
    this.#log = deps.log.child({ actor: "backups" });
    this.backups = new JobRecords(deps.backupsKv, BackupRecord, this.#log);
    this.restores = new JobRecords(deps.restoresKv, RestoreRecord, this.#log);
  }

  /** Starts watching the job records; resolves once the current ones are cached. */
  async start(): Promise<void> {
    // Checkpoints pinned by backups this node ran before it stopped: none runs yet.
    await rm(this.#pinnedDir(), { recursive: true, force: true });
    await Promise.all([this.backups.start(), this.restores.start()]);
  }

  /** Where a backup's pinned checkpoints are linked (removed when it ends). */
  #pinnedDir(id?: string): string {
    return path.join(this.#deps.scratchDir, "pinned", ...(id ? [id] : []));
  }

  async stop(): Promise<void> {
    this.#stopping.abort();
    await Promise.all([this.backups.stop(), this.restores.stop()]);
  }

  /** While this node leads: sweeps for jobs whose node died. */
  lead(): () => void {
    this.#sweeper ??= setInterval(() => void this.sweep().catch((err: unknown) => this.#log.warn({ err: errorMessage(err) }, "job sweep failed; will retry")), this.#deps.settings.sweepIntervalMs);
    return () => {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    };
  }

  handle(op: BackupOp, body: unknown): Promise<unknown> {
    switch (op) {
      case AdminOp.BackupCreate:
        return this.create(body);
      case AdminOp.BackupList:
        return this.list(body);
      case AdminOp.BackupVerify:
        return this.verify(body);
      case AdminOp.BackupDelete:
        return this.delete(body);
      case AdminOp.Restore:
        return this.restore(body);
      case AdminOp.RestoreList:
        parse(EmptyRequest, body);
        return this.restores.list().then((restores) => ({ restores }));
    }
  }

  /** What running backups and restores read: retention keeps it. */
  async holds(): Promise<Hold[]> {
    const nowMs = Date.now();
    return [...this.backups.running(nowMs), ...this.restores.running(nowMs)].flatMap((r) => r.holds);
  }

  async create(raw: unknown): Promise<BackupRecord> {
    const request = parse(BackupCreateRequest, raw);
    let chain: ChainLink[] = [];
    let base: BackupRecord | undefined;
    if (request.incrementalFrom !== undefined) {
      base = await this.#record(request.incrementalFrom);
      if (base.state !== "complete") throw new JadeError(ErrorCode.Conflict, `backup ${base.id} is ${base.state}, not complete: it cannot be a base`);
      if (request.to && describeLocation(request.to) !== describeLocation(base.location)) {
        throw invalidArgument(`an incremental backup is kept beside its base, in ${describeLocation(base.location)}`);
      }
      const { location } = base;
      chain = await loadChain((link) => this.#files(location, link), base.id, base.manifestSha256);
    }
    const configs = request.collections
      ? await Promise.all(request.collections.map((name) => this.#deps.catalog.require(name)))
      : this.#deps.catalog.cached().filter((c) => c.restoring === undefined);
    if (configs.length === 0) throw invalidArgument("there is no collection to back up");
    const record: BackupRecord = {
      id: newBackupId(Date.now(), randomBytes(3).toString("hex")),
      state: "running",
      location: request.to ?? base?.location ?? { bucket: this.#deps.settings.defaultBucket },
      ...(base ? { base: base.id } : {}),
      collections: configs.map((c) => c.name),
      node: this.#deps.nodeId,
      startedAt: new Date().toISOString(),
      heartbeatAtMs: Date.now(),
      progress: zeroProgress(),
      holds: [],
    };
    await this.backups.put(record);
    // Runs in the background; it records its own failure.
    void this.#runBackup(record, configs, chain, request.bytesPerSecMax ?? this.#deps.settings.bytesPerSecMax);
    return record;
  }

  async #runBackup(record: BackupRecord, configs: CollectionConfig[], chain: ChainLink[], bytesPerSec: number): Promise<void> {
    const deps = this.#deps;
    const files = this.#files(record.location, record.id);
    let current = record;
    const stopBeat = beat(this.backups, () => current, this.#log);
    const log = this.#log.child({ backup: record.id });
    log.info({ collections: record.collections, location: describeLocation(record.location), base: record.base }, "backup started");
    try {
      const base = chain.map((link) => link.manifest);
      const pinned = this.#pinnedDir(record.id);
      const plan = await planBackup({ ...deps, pinCheckpoint: (uid, shard, accept) => deps.pinCheckpoint(uid, shard, pinned, accept) }, configs, base);
      const fromCheckpoints = plan.copies.filter((c) => c.snapshot && "file" in c.snapshot).length;
      log.info({ shards: plan.copies.length, fromCheckpoints, fromStore: plan.copies.filter((c) => c.snapshot && "name" in c.snapshot).length }, "backup planned");
      // Held before the first byte is copied: retention keeps what the plan reads.
      current = { ...current, holds: holdsOf(plan, record.id) };
      await this.backups.put({ ...current, heartbeatAtMs: Date.now() });
      const { manifest, linkedFiles } = await takeBackupOnThread(
        { servers: deps.servers, ...(deps.auth ? { auth: deps.auth } : {}), streamReplicas: deps.streamReplicas, id: record.id, configs, plan, location: record.location, base, bytesPerSec, scratchDir: deps.scratchDir },
        { progress: (progress) => void Object.assign(current.progress, progress) },
        this.#stopping.signal,
      );
      const sha256 = manifestSha256(manifest);
      await files.write("manifest.json", [Buffer.from(JSON.stringify({ manifest, sha256 }))]);
      const bytes = manifest.files.reduce((sum, f) => sum + f.bytes, 0);
      const points = manifest.collections.reduce((sum, c) => sum + c.shards.reduce((n, s) => n + s.digest.count, 0), 0);
      current = { ...current, state: "complete", finishedAt: new Date().toISOString(), cutAtMs: manifest.cutAtMs, manifestSha256: sha256, bytes, points, holds: [] };
      log.info({ bytes, points, linkedFiles, ms: Date.now() - Date.parse(record.startedAt) }, "backup complete");
    } catch (err) {
      log.warn({ err: errorMessage(err) }, "backup failed; removing its files");
      await files.remove().catch((removeErr: unknown) => log.warn({ err: errorMessage(removeErr) }, "could not remove a failed backup's files"));
      current = { ...current, state: "failed", finishedAt: new Date().toISOString(), error: jobErrorOf(err), holds: [] };
    } finally {
      await stopBeat();
      await rm(this.#pinnedDir(record.id), { recursive: true, force: true }).catch((err: unknown) => log.warn({ err: errorMessage(err) }, "could not unpin the checkpoints the backup copied; the node's next start does"));
      await this.backups.put({ ...current, heartbeatAtMs: Date.now() }).catch((err: unknown) => log.error({ err: errorMessage(err) }, "could not record how the backup ended"));
    }
  }

  async list(raw: unknown): Promise<{ backups: BackupRecord[] } | { manifests: BackupManifestSummary[] }> {
    const { from } = parse(BackupListRequest, raw);
    if (!from) return { backups: await this.backups.list() };
    // Backups the catalog may not know: whatever has a manifest there.
    const manifests: BackupManifestSummary[] = [];
    for (const id of await backupIdsAt(from, this.#deps.objm)) {
      const manifest = await readManifest(this.#files(from, id), id).catch(() => undefined);
      if (manifest) manifests.push(summaryOf(manifest));
    }
    return { manifests };
  }

  /** Re-reads every file of the backup and its bases against the manifest's checksums; `deep` also restores it and compares digests. */
  async verify(raw: unknown): Promise<{ id: string; files: number; bytes: number; deep?: { collection: string; points: number }[] }> {
    const { id, from, deep } = parse(BackupVerifyRequest, raw);
    const record = from ? undefined : await this.#record(id);
    const location = from ?? record!.location;
    const chain = await loadChain((link) => this.#files(location, link), id, record?.manifestSha256);
    const checked = await verifyFiles(chain);
    if (!deep) return { id, ...checked };
    const restored: { collection: string; points: number }[] = [];
    for (const collection of chain.at(-1)!.manifest.collections) {
      const scratch = `verify-${randomBytes(4).toString("hex")}`;
      const { config, sources } = chainSources(chain, collection.config.name, { kind: "latest" });
      const reserved = await this.#deps.catalog.createRestoring(config, scratch, `verify-${id}`);
      try {
        const shards = await restoreCollection(this.#restoreDeps(this.#log), reserved, sources, zeroProgress(), `verify-${id}`);
        restored.push({ collection: collection.config.name, points: shards.reduce((n, s) => n + s.digest.count, 0) });
      } finally {
        await this.#deps.catalog.drop(scratch).catch(() => undefined);
      }
    }
    return { id, ...checked, deep: restored };
  }

  async delete(raw: unknown): Promise<{ deleted: string }> {
    const { id, force } = parse(BackupDeleteRequest, raw);
    const record = await this.#record(id);
    if (record.state === "running") throw new JadeError(ErrorCode.Conflict, `backup ${id} is still running`);
    const dependents = (await this.backups.list()).filter((b) => b.base === id && b.state !== "failed").map((b) => b.id);
    if (dependents.length > 0 && !force) {
      throw new JadeError(ErrorCode.Conflict, `backup ${id} is the base of ${dependents.join(", ")}: delete those first, or force (they can no longer be restored)`);
    }
    await this.#files(record.location, id).remove();
    await this.backups.delete(id);
    this.#log.info({ backup: id, force: force ?? false }, "backup deleted");
    return { deleted: id };
  }

  async restore(raw: unknown): Promise<RestoreRecord> {
    const request = parse(RestoreRequest, raw);
    const target: RestoreTarget = request.toTime
      ? { kind: "time", atMs: Date.parse(request.toTime) }
      : request.toSeq
        ? { kind: "seq", seqs: new Map(request.toSeq.map((t) => [t.shard, t.seq])) }
        : { kind: "latest" };
    const plans = request.backup !== undefined ? await this.#backupPlans(request, target) : await this.#livePlans(request, target);
    const id = newBackupId(Date.now(), randomBytes(3).toString("hex"));
    // Every name is reserved before anything is written; one taken already fails the whole restore.
    const reserved: CollectionConfig[] = [];
    try {
      for (const plan of plans) reserved.push(await this.#deps.catalog.createRestoring(plan.config, plan.to, id));
    } catch (err) {
      for (const config of reserved) await this.#deps.catalog.drop(config.name).catch(() => undefined);
      throw err;
    }
    const record: RestoreRecord = {
      id,
      state: "running",
      source: request.backup !== undefined ? { backup: request.backup } : { live: request.live! },
      collections: plans.map((p) => ({ from: p.config.name, to: p.to })),
      node: this.#deps.nodeId,
      startedAt: new Date().toISOString(),
      heartbeatAtMs: Date.now(),
      progress: { ...zeroProgress(), shardsTotal: plans.reduce((n, p) => n + p.sources.length, 0), bytesTotal: plans.reduce((n, p) => n + p.sources.reduce((b, s) => b + (s.snapshot?.bytes ?? 0) + s.logBytes, 0), 0) },
      holds: plans.flatMap((p) =>
        p.sources.flatMap((s) => (s.hold ? [{ what: `restore ${id}`, collection: p.config.name, uid: p.config.uid, shard: s.shard, seq: s.hold.seq, ...(s.hold.snapshot ? { snapshot: s.hold.snapshot } : {}) }] : [])),
      ),
    };
    await this.restores.put(record);
    void this.#runRestore(record, plans.map((p, i) => ({ ...p, reserved: reserved[i]! })));
    return record;
  }

  async #backupPlans(request: RestoreRequest, target: RestoreTarget): Promise<RestorePlan[]> {
    const id = request.backup!;
    const record = request.from ? undefined : await this.#record(id);
    if (record && record.state !== "complete") throw new JadeError(ErrorCode.Conflict, `backup ${id} is ${record.state}, not complete`);
    const location = request.from ?? record!.location;
    const chain = await loadChain((link) => this.#files(location, link), id, record?.manifestSha256);
    // A corrupt or missing file refuses the restore before anything is created.
    await verifyFiles(chain);
    const names = request.collections ?? chain.at(-1)!.manifest.collections.map((c) => c.config.name);
    // Two collections restored under one name would be one collection's data over the other's.
    if (request.as !== undefined && names.length > 1) {
      throw invalidArgument(`backup ${id} holds ${names.length} collections (${names.join(", ")}): name the one to restore as ${request.as} in collections`);
    }
    return names.map((name) => {
      const { config, sources } = chainSources(chain, name, target);
      return { config, to: request.as ?? name, sources };
    });
  }

  async #livePlans(request: RestoreRequest, target: RestoreTarget): Promise<RestorePlan[]> {
    const config = await this.#deps.catalog.require(request.live!);
    const sources = await liveSources({ js: this.#deps.js, jsm: this.#deps.jsm, snapshots: this.#deps.snapshots }, config, target);
    return [{ config, to: request.as!, sources }];
  }

  async #runRestore(record: RestoreRecord, plans: (RestorePlan & { reserved: CollectionConfig })[]): Promise<void> {
    let current = record;
    const stopBeat = beat(this.restores, () => current, this.#log);
    const log = this.#log.child({ restore: record.id });
    log.info({ source: record.source, collections: record.collections }, "restore started");
    const remaining = [...plans];
    try {
      let points = 0;
      while (remaining.length > 0) {
        const plan = remaining[0]!;
        const shards = await restoreCollection(this.#restoreDeps(log), plan.reserved, plan.sources, current.progress, record.id);
        remaining.shift();
        points += shards.reduce((n, s) => n + s.digest.count, 0);
      }
      current = { ...current, state: "complete", finishedAt: new Date().toISOString(), points, holds: [] };
      log.info({ points, ms: Date.now() - Date.parse(record.startedAt) }, "restore complete");
    } catch (err) {
      log.warn({ err: errorMessage(err) }, "restore failed; its collections were dropped");
      // The one that failed dropped itself; those not started yet are still reserved.
      for (const plan of remaining.slice(1)) await this.#deps.catalog.drop(plan.to).catch(() => undefined);
      current = { ...current, state: "failed", finishedAt: new Date().toISOString(), error: jobErrorOf(err), holds: [] };
    } finally {
      await stopBeat();
      await this.restores.put({ ...current, heartbeatAtMs: Date.now() }).catch((err: unknown) => log.error({ err: errorMessage(err) }, "could not record how the restore ended"));
    }
  }

  /** Fails the running jobs whose node stopped beating, and cleans up after them. */
  async sweep(): Promise<void> {
    const nowMs = Date.now();
    for (const record of await this.backups.list()) {
      if (!isStale(record, nowMs)) continue;
      await this.#files(record.location, record.id).remove().catch(() => undefined);
      await this.backups.put({ ...record, state: "failed", finishedAt: new Date().toISOString(), error: { code: ErrorCode.Unavailable, message: `its node ${record.node} stopped while it ran` }, holds: [] });
      this.#log.warn({ backup: record.id, node: record.node }, "backup failed: its node stopped; its files were removed");
    }
    for (const record of await this.restores.list()) {
      if (!isStale(record, nowMs)) continue;
      for (const { to } of record.collections) {
        const config = this.#deps.catalog.stored().find((c) => c.name === to);
        if (config?.restoring?.id === record.id) await this.#deps.catalog.drop(to).catch(() => undefined);
      }
      await this.restores.put({ ...record, state: "failed", finishedAt: new Date().toISOString(), error: { code: ErrorCode.Unavailable, message: `its node ${record.node} stopped while it ran` }, holds: [] });
      this.#log.warn({ restore: record.id, node: record.node }, "restore failed: its node stopped; its collections were dropped");
    }
  }

  #restoreDeps(log: Logger): RestoreDeps {
    const d = this.#deps;
    return { nc: d.nc, js: d.js, jsm: d.jsm, streamReplicas: d.streamReplicas, snapshots: d.snapshots, catalog: d.catalog, placements: d.placements, scratchDir: d.scratchDir, log, seedCheckpoint: d.seedCheckpoint, unseedCheckpoints: d.unseedCheckpoints };
  }

  #files(location: BackupLocation, id: string): BackupFiles {
    return backupFiles(location, id, this.#deps.objm, this.#deps.streamReplicas);
  }

  async #record(id: string): Promise<BackupRecord> {
    const record = await this.backups.get(id);
    if (!record) throw new JadeError(ErrorCode.NotFound, `no backup ${id} in the catalog (for one taken elsewhere, name where it is: from)`);
    return record;
  }
}

interface RestorePlan {
  config: CollectionConfig;
  to: string;
  sources: ShardSource[];
}


/** A job's failure as recorded: a JadeError keeps its code; anything else (NATS, disk) is the cluster being unavailable. */
function jobErrorOf(err: unknown): JobError {
  return err instanceof JadeError ? { code: err.code, message: err.message } : { code: ErrorCode.Unavailable, message: errorMessage(err) };
}

function summaryOf(manifest: BackupManifest): BackupManifestSummary {
  return {
    id: manifest.id,
    createdAt: manifest.createdAt,
    cutAtMs: manifest.cutAtMs,
    ...(manifest.base ? { base: manifest.base } : {}),
    collections: manifest.collections.map((c) => c.config.name),
    bytes: manifest.files.reduce((sum, f) => sum + f.bytes, 0),
  };
}
