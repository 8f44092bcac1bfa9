/**
 * Where a restored shard's data comes from, as one shape (`ShardSource`) whatever the origin:
 * a backup chain (a full backup and the incremental ones on top of it, files in a directory or
 * bucket), or the live cluster's own snapshots and log within its point-in-time window. A source
 * starts from a snapshot (or from nothing) and replays log entries after it, up to a target:
 * the cut, a sequence, or the last entry at or before an instant.
 */
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { lastSeqAtOrBefore, readLogRange, type LogMessage } from "../../nats/log-range.ts";
import type { SnapshotStore } from "../../nats/snapshots.ts";
import type { ContentDigest } from "../../runtime/content-digest.ts";
import { ErrorCode, JadeError } from "../../runtime/errors.ts";
import type { CollectionConfig } from "../../runtime/schemas.ts";
import { names } from "../../runtime/subjects.ts";
import { decodeLogFile } from "./log-file.ts";
import type { BackupManifest, ShardBackup } from "../../runtime/backup-schemas.ts";
import type { BackupFiles } from "./store.ts";
import { outcomesAfter, type CutOutcomes, type StagedAtCut } from "./txn-cut.ts";
import { mkdir, rm } from "node:fs/promises";
import path from "node:path";

/** How far to restore: everything the source holds, up to a sequence per shard, or up to an instant. */
export type RestoreTarget = { kind: "latest" } | { kind: "seq"; seqs: ReadonlyMap<number, number> } | { kind: "time"; atMs: number };

export interface ShardSource {
  shard: number;
  /** The shard at `seq`: a snapshot, as a file on this machine or streamed. */
  snapshot?: { seq: number; bytes: number; local: (scratch: string) => Promise<{ path: string; release: () => Promise<void> }>; read: () => AsyncIterable<Uint8Array> };
  /** The entries after the snapshot (or from 1) up to at least `toSeq`, in order; the restore stops at the target. */
  entries: () => AsyncIterable<LogMessage>;
  /** The last sequence to restore (the target, or the cut when restoring to an instant). */
  toSeq: number;
  /** Restoring to an instant: entries appended after it are not restored. */
  toTimeMs?: number;
  /** The shard's digest at `toSeq` when the source recorded it (a backup restored to its cut). */
  expected?: ContentDigest;
  /** Bytes of log to read (an estimate, for progress). */
  logBytes: number;
  /** A live source: what retention must keep while it is read. */
  hold?: { seq: number; snapshot?: string };
  /**
   * The restore's instant, when it has one (a time, or a backup's cut): a transaction counts
   * as committed only if it committed at or before it (txn-cut.ts).
   */
  asOfMs?: number;
  /** How the transactions staged at the cut end: what the source holds after the cut (none: all abort). */
  outcomes?: (staged: readonly StagedAtCut[]) => Promise<CutOutcomes>;
}

/** One backup of a chain and where its files are. */
export interface ChainLink {
  manifest: BackupManifest;
  files: BackupFiles;
}

function outOfRange(message: string): JadeError {
  return new JadeError(ErrorCode.OutOfRange, message);
}

/** The shard's entry in each link that belongs to the same incarnation as the newest, oldest first (back to the chain's start). */
function shardHistory(chain: readonly ChainLink[], name: string, shard: number): { link: ChainLink; entry: ShardBackup }[] {
  const newest = chain.at(-1)!.manifest.collections.find((c) => c.config.name === name);
  if (!newest) throw new JadeError(ErrorCode.NotFound, `backup ${chain.at(-1)!.manifest.id} holds no collection ${JSON.stringify(name)}`);
  const out: { link: ChainLink; entry: ShardBackup }[] = [];
  for (let i = chain.length - 1; i >= 0; i--) {
    const link = chain[i]!;
    const collection = link.manifest.collections.find((c) => c.config.name === name && c.config.uid === newest.config.uid);
    const entry = collection?.shards.find((s) => s.shard === shard);
    if (!entry) break;
    out.unshift({ link, entry });
  }
  return out;
}

/** Chooses, for each shard of `name`, the newest snapshot in the chain at or before the target, and the log files after it. */
export function chainSources(chain: readonly ChainLink[], name: string, target: RestoreTarget): { config: CollectionConfig; sources: ShardSource[] } {
  const config = chain.at(-1)!.manifest.collections.find((c) => c.config.name === name)?.config;
  if (!config) throw new JadeError(ErrorCode.NotFound, `backup ${chain.at(-1)!.manifest.id} holds no collection ${JSON.stringify(name)}`);
  const sources: ShardSource[] = [];
  for (let shard = 0; shard < config.shards; shard++) {
    const history = shardHistory(chain, name, shard);
    const cut = history.at(-1)!.entry;
    // To an instant: no entry after the cut of the first backup taken at or after it can be needed.
    const toSeq =
      target.kind === "seq" ? (target.seqs.get(shard) ?? cut.seq) : target.kind === "time" ? (history.find((h) => h.link.manifest.cutAtMs >= target.atMs)?.entry.seq ?? cut.seq) : cut.seq;
    if (toSeq > cut.seq) throw outOfRange(`shard ${shard} of ${name}: sequence ${toSeq} is past the backup's cut (${cut.seq})`);
    // The newest start (snapshot, or nothing when the oldest link logs from 1) at or before the target.
    let start = -1;
    for (let i = history.length - 1; i >= 0 && start < 0; i--) {
      const { link, entry } = history[i]!;
      if (startsAt(link, entry, i === 0, target, toSeq)) start = i;
    }
    if (start < 0) {
      const oldest = history[0]!.entry;
      throw outOfRange(
        target.kind === "time"
          ? `shard ${shard} of ${name}: the backup reaches back to ${new Date(oldest.log?.firstTimeMs ?? chain[0]!.manifest.cutAtMs).toISOString()}, not to ${new Date(target.atMs).toISOString()}`
          : `shard ${shard} of ${name}: the backup reaches back to sequence ${oldest.snapshot?.seq ?? oldest.log?.fromSeq ?? oldest.seq}, not to ${toSeq}`,
      );
    }
    const used = history.slice(start);
    const first = used[0]!;
    const logs = used.flatMap(({ link, entry }) => (entry.log && entry.log.fromSeq <= toSeq ? [{ link, log: entry.log }] : []));
    let next = (first.entry.snapshot?.seq ?? 0) + 1;
    for (const { log } of logs) {
      if (log.fromSeq > next) throw missing(used, shard, name, next, log.fromSeq - 1);
      next = Math.max(next, log.toSeq + 1);
    }
    if (next <= toSeq) throw missing(used, shard, name, next, toSeq);
    const snapshot = first.entry.snapshot;
    sources.push({
      shard,
      ...(snapshot
        ? {
            snapshot: {
              seq: snapshot.seq,
              bytes: fileBytes(first.link, snapshot.file),
              local: (scratch: string) => first.link.files.local(snapshot.file, scratch),
              read: () => first.link.files.read(snapshot.file),
            },
          }
        : {}),
      entries: async function* () {
        for (const { link, log } of logs) yield* decodeLogFile(link.files.read(log.file), log.file);
      },
      toSeq,
      ...(target.kind === "time" ? { toTimeMs: target.atMs } : {}),
      ...(target.kind === "latest" ? { expected: cut.digest } : {}),
      ...chainOutcomes(used, target, toSeq),
      logBytes: logs.reduce((sum, { link, log }) => sum + fileBytes(link, log.file), 0),
    });
  }
  return { config, sources };
}

/**
 * How a chain source closes the transactions staged at its cut. To a backup's cut: as the
 * backup recorded it (its files end at the cut). To an instant: from the chain's entries after
 * the instant's cut, then what the newest backup recorded.
 */
function chainOutcomes(used: readonly { link: ChainLink; entry: ShardBackup }[], target: RestoreTarget, toSeq: number): Pick<ShardSource, "asOfMs" | "outcomes"> {
  const newest = used.at(-1)!;
  const recorded = (): CutOutcomes => new Map((newest.entry.closing ?? []).flatMap((c) => (c.committedAtMs === undefined ? [] : [[c.txn, c.committedAtMs] as const])));
  if (target.kind === "latest") return { asOfMs: newest.link.manifest.cutAtMs, outcomes: async () => recorded() };
  if (target.kind !== "time") return {};
  const after = async function* () {
    for (const { link, entry } of used) {
      if (!entry.log || entry.log.toSeq <= toSeq) continue;
      for await (const message of decodeLogFile(link.files.read(entry.log.file), entry.log.file)) if (message.seq > toSeq) yield message;
    }
  };
  return {
    asOfMs: target.atMs,
    outcomes: async (staged) => {
      const found = await outcomesAfter(after(), staged, target.atMs);
      // Staged at the newest cut as well: the backup recorded how they ended.
      for (const [txn, committedAtMs] of recorded()) if (committedAtMs <= target.atMs && staged.some((s) => s.txn === txn)) found.set(txn, committedAtMs);
      return found;
    },
  };
}

/**
 * Entries the chain does not hold: normal before a later backup's snapshot (an incremental
 * backup that found them purged copied a snapshot instead), so the target is out of reach; a
 * corrupt chain otherwise.
 */
function missing(used: readonly { entry: ShardBackup }[], shard: number, name: string, from: number, to: number): JadeError {
  const skipped = used.some(({ entry }) => entry.snapshot !== undefined && entry.snapshot.seq >= from);
  const text = `shard ${shard} of ${name}: the backup chain does not hold entries ${from}–${to}`;
  return skipped ? outOfRange(`${text} (a later backup holds a snapshot instead): restore to a point before or after them`) : new JadeError(ErrorCode.Corrupt, text);
}

/**
 * Can a restore to the target start from this link's snapshot (or, for the oldest link
 * without one, from nothing)? To an instant, a snapshot is known to be no later than it when
 * the first entry logged after it is (its own entry's time is not kept), or when it is the
 * whole backup and the cut came before the instant.
 */
function startsAt(link: ChainLink, entry: ShardBackup, oldest: boolean, target: RestoreTarget, toSeq: number): boolean {
  if (!entry.snapshot) return oldest && (entry.log?.fromSeq ?? 1) === 1;
  if (entry.snapshot.seq > toSeq) return false;
  if (target.kind !== "time") return true;
  return entry.log ? entry.log.firstTimeMs <= target.atMs : link.manifest.cutAtMs <= target.atMs;
}

function fileBytes(link: ChainLink, file: string): number {
  return link.manifest.files.find((f) => f.path === file)?.bytes ?? 0;
}

export interface LiveDeps {
  js: JetStreamClient;
  jsm: JetStreamManager;
  snapshots: SnapshotStore;
}

/**
 * Sources from the live collection: its shared snapshots and its log, as far back as its
 * point-in-time window keeps them. `holdAt` is told what each shard will read before any of
 * it is read, so retention keeps it (the caller records it as a hold).
 */
export async function liveSources(deps: LiveDeps, config: CollectionConfig, target: RestoreTarget): Promise<ShardSource[]> {
  const sources: ShardSource[] = [];
  for (let shard = 0; shard < config.shards; shard++) {
    const stream = names.logStream(config.name, shard);
    const { state } = await deps.jsm.streams.info(stream);
    const toSeq = target.kind === "seq" ? (target.seqs.get(shard) ?? state.last_seq) : target.kind === "time" ? await lastSeqAtOrBefore(deps.jsm, stream, state, target.atMs) : state.last_seq;
    if (toSeq > state.last_seq) throw outOfRange(`shard ${shard} of ${config.name}: sequence ${toSeq} is past the log's end (${state.last_seq})`);
    const snapshots = await deps.snapshots.list(config.name, config.uid, shard);
    // The newest snapshot at or before the target whose following entries the log still holds.
    const snapshot = snapshots.find((s) => s.seq <= toSeq && (state.first_seq <= s.seq + 1 || s.seq === toSeq));
    if (!snapshot && state.first_seq > 1 && toSeq > 0) {
      throw outOfRange(`shard ${shard} of ${config.name}: its log starts at ${state.first_seq} and no snapshot at or before ${toSeq} is kept: the point-in-time window does not reach that far`);
    }
    const fromSeq = (snapshot?.seq ?? 0) + 1;
    const average = state.messages > 0 ? state.bytes / state.messages : 0;
    sources.push({
      shard,
      ...(snapshot
        ? {
            snapshot: {
              seq: snapshot.seq,
              bytes: await deps.snapshots.size(snapshot.name),
              read: () => deps.snapshots.read(snapshot.name),
              local: async (scratch: string) => {
                await mkdir(scratch, { recursive: true });
                const file = path.join(scratch, `${process.hrtime.bigint()}-${snapshot.name}.snap`);
                await deps.snapshots.download(snapshot.name, file);
                return { path: file, release: () => rm(file, { force: true }) };
              },
            },
          }
        : {}),
      entries: () => readLogRange(deps.js, stream, fromSeq, toSeq),
      toSeq,
      // To an instant: what the live log holds after the cut says how its staged transactions end.
      ...(target.kind === "time"
        ? { asOfMs: target.atMs, outcomes: (staged: readonly StagedAtCut[]) => outcomesAfter(readLogRange(deps.js, stream, toSeq + 1, state.last_seq), staged, target.atMs) }
        : {}),
      hold: { seq: fromSeq - 1, ...(snapshot ? { snapshot: snapshot.name } : {}) },
      logBytes: Math.round(average * Math.max(0, toSeq - fromSeq + 1)),
    });
  }
  return sources;
}
