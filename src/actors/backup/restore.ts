/**
 * Rebuilding a collection from shard sources (sources.ts), all shards in parallel. The name is
 * reserved first (the collection in its `loading` phase, seen by nothing else); each shard's
 * log is re-created starting right after its snapshot's sequence, so every entry keeps the
 * sequence it had (a point's version and usearch key derive from it), and the snapshot is
 * stored as the shard's shared snapshot: replicas start from it as from any other. The same
 * replay computes each shard's content digest, checked against the backup's before anything
 * serves. Then replicas start (`starting`: the API still refuses the collection), and once every
 * replica serves the restored sequence and reports the same digest, the collection serves.
 * Anything failing before that drops what was built: no half-restored collection is readable.
 */
import { createReadStream } from "node:fs";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Catalog } from "../cluster/catalog.ts";
import type { PlacementStore } from "../cluster/placement-store.ts";
import { requestReplica } from "../replica/protocol.ts";
import type { ShardDigest } from "../vector-index/api.ts";
import type { SnapshotStore } from "../../nats/snapshots.ts";
import { shardStreamConfig } from "../../nats/streams.ts";
import { pollUntil } from "../../runtime/async.ts";
import { sameDigest, type ContentDigest } from "../../runtime/content-digest.ts";
import { errorMessage, ErrorCode, JadeError } from "../../runtime/errors.ts";
import type { Logger } from "../../runtime/log.ts";
import { hostsOf } from "../../runtime/placement.ts";
import type { CollectionConfig } from "../../runtime/schemas.ts";
import { names, subjects } from "../../runtime/subjects.ts";
import type { Progress } from "../../runtime/backup-schemas.ts";
import { ShardReplay } from "./replay.ts";
import type { ShardSource } from "./sources.ts";
import { asOfInstant, closingMarkers } from "./txn-cut.ts";

export interface RestoreDeps {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  streamReplicas: number;
  snapshots: SnapshotStore;
  catalog: Catalog;
  placements: PlacementStore;
  scratchDir: string;
  log: Logger;
  /** Keeps a shard's stored snapshot file as this node's checkpoint of it, and drops those of shards placed elsewhere (ReplicaHost). */
  seedCheckpoint: (config: CollectionConfig, shard: number, seq: number, file: string) => Promise<void>;
  unseedCheckpoints: (config: CollectionConfig) => Promise<void>;
}

/**
 * Bytes of entries in flight per shard while its log is rebuilt: enough to keep JetStream busy,
 * few enough that acks come back within their deadline (an entry is up to 8 MiB).
 */
const publishWindowBytes = 16 * 1024 * 1024;
/** An entry's acknowledgement may take this long (a large entry behind others). */
const publishTimeoutMs = 60_000;
/** One digest request waits this long for its replica to reach the restored sequence; then it is asked again. */
const digestWaitMs = 5_000;
/** How long replicas may take to load and serve what was restored, per GiB restored (at least a minute). */
const servingMsPerGiB = 10 * 60_000;

export interface RestoredShard {
  shard: number;
  /** The last entry restored. */
  seq: number;
  digest: ContentDigest;
}

/** Restores `config` (reserved with `catalog.createRestoring`) from `sources`; on any failure the collection is dropped. */
export async function restoreCollection(deps: RestoreDeps, config: CollectionConfig, sources: readonly ShardSource[], progress: Progress, restoreId: string): Promise<RestoredShard[]> {
  try {
    const shards = await Promise.all(sources.map((source) => loadShard(deps, config, source, progress, restoreId)));
    await deps.catalog.setRestoring(config.name, config.uid, "starting");
    const bytes = sources.reduce((sum, s) => sum + (s.snapshot?.bytes ?? 0) + s.logBytes, 0);
    await waitServing(deps, config, shards, Math.max(60_000, (bytes / 2 ** 30) * servingMsPerGiB));
    await deps.unseedCheckpoints(config).catch((err: unknown) => deps.log.warn({ err: errorMessage(err), collection: config.name }, "could not drop the checkpoints of shards placed elsewhere; the next sweep does"));
    await deps.catalog.setRestoring(config.name, config.uid, undefined);
    return shards;
  } catch (err) {
    await deps.catalog.drop(config.name).catch((dropErr: unknown) => deps.log.warn({ err: dropErr, collection: config.name }, "could not drop a failed restore's collection"));
    throw err;
  }
}

async function loadShard(deps: RestoreDeps, config: CollectionConfig, source: ShardSource, progress: Progress, restoreId: string): Promise<RestoredShard> {
  const { shard } = source;
  const stream = names.logStream(config.name, shard);
  // The name is ours (reserved): a log under it is a leftover of an interrupted restore.
  await deps.jsm.streams.delete(stream).catch(() => false);
  await deps.jsm.streams.add(shardStreamConfig(config.name, shard, deps.streamReplicas));
  const replay = new ShardReplay(config);
  if (source.snapshot) {
    const local = await source.snapshot.local(deps.scratchDir);
    try {
      // Replayed (for the digest) and stored as the shard's snapshot at once: both only read the
      // file. A snapshot stored and then found corrupt goes with the collection the failure drops.
      const [replayed, uploaded] = await Promise.allSettled([
        replay.loadSnapshot(createReadStream(local.path), `snapshot ${source.snapshot.seq} of shard ${shard}`),
        deps.snapshots.upload(config.name, config.uid, shard, source.snapshot.seq, local.path),
      ]);
      if (replayed.status === "rejected") throw new JadeError(ErrorCode.Corrupt, `shard ${shard}: the snapshot is unreadable: ${String(replayed.reason)}`, { cause: replayed.reason });
      if (uploaded.status === "rejected") throw uploaded.reason;
      if (replay.seq !== source.snapshot.seq) throw new JadeError(ErrorCode.Corrupt, `shard ${shard}: the snapshot covers ${replay.seq}, the backup says ${source.snapshot.seq}`);
      // Only a shortcut: a replica here without it downloads the snapshot as any other does.
      await deps.seedCheckpoint(config, shard, replay.seq, local.path).catch((err: unknown) => deps.log.warn({ err: errorMessage(err), collection: config.name, shard }, "could not hand the snapshot to this node's replica; it downloads it"));
      progress.bytesDone += source.snapshot.bytes;
    } finally {
      await local.release();
    }
    // The log goes on where the snapshot ends (nats-server sets an empty stream's next sequence so).
    if (replay.seq > 0) await deps.jsm.streams.purge(stream, { seq: replay.seq + 1 });
  }
  await republish(deps, config, source, replay, progress, restoreId);
  if (source.toTimeMs === undefined && replay.seq < source.toSeq) {
    throw new JadeError(ErrorCode.Corrupt, `shard ${shard}: the source ended at ${replay.seq}, before ${source.toSeq}`);
  }
  const digest = replay.digest();
  if (source.expected && !sameDigest(digest, source.expected)) {
    throw new JadeError(ErrorCode.Corrupt, `shard ${shard}: the restored content (${digest.count} points, ${digest.hash}) differs from the backup's (${source.expected.count}, ${source.expected.hash})`);
  }
  progress.shardsDone++;
  deps.log.info({ collection: config.name, shard, seq: replay.seq, points: digest.count }, "shard restored; waiting for its replicas");
  return { shard, seq: replay.seq, digest };
}

/** Appends the source's entries after the snapshot, each at the sequence it had, and replays them into the digest. */
async function republish(deps: RestoreDeps, config: CollectionConfig, source: ShardSource, replay: ShardReplay, progress: Progress, restoreId: string): Promise<void> {
  const subject = subjects.log(config.name, source.shard);
  const inflight: { acked: Promise<void>; bytes: number }[] = [];
  let inflightBytes = 0;
  const toTimeNs = source.toTimeMs === undefined ? undefined : BigInt(source.toTimeMs) * 1_000_000n + 999_999n;
  const publish = (seq: number, data: Uint8Array) => {
    replay.apply(seq, data);
    const acked = deps.js.publish(subject, data, { msgID: `${restoreId}-${source.shard}-${seq}`, timeout: publishTimeoutMs }).then((ack) => {
      if (ack.seq !== seq) throw new Error(`shard ${source.shard}: entry ${seq} was stored at ${ack.seq}`);
    });
    // Awaited in order below; a failure meanwhile must not count as unhandled (it is, once awaited).
    acked.catch(() => undefined);
    inflight.push({ acked, bytes: data.byteLength });
    inflightBytes += data.byteLength;
    progress.bytesDone += data.byteLength;
  };
  for await (const entry of source.entries()) {
    if (entry.seq <= replay.seq) continue;
    if (entry.seq > source.toSeq || (toTimeNs !== undefined && entry.timeNs > toTimeNs)) break;
    publish(entry.seq, asOfInstant(entry.data, source.asOfMs));
    while (inflightBytes > publishWindowBytes) {
      const oldest = inflight.shift()!;
      await oldest.acked;
      inflightBytes -= oldest.bytes;
    }
  }
  // Transactions staged at the cut end here, as their fate at the restore's instant says.
  const staged = replay.staged();
  if (staged.length > 0) {
    const committed = source.outcomes ? await source.outcomes(staged) : new Map<string, number>();
    for (const data of closingMarkers(staged, committed)) publish(replay.seq + 1, data);
  }
  for (const { acked } of inflight) await acked;
}

/**
 * Waits until every placed replica of every shard serves the restored sequence with the
 * restore's digest. Asks the replicas themselves, all at once, until each answered: waiting
 * for their heartbeats to say "serving" and then asking one after the other added 1.5–2.5 s
 * to a 60,000-point restore (a heartbeat a second, then four digests of 47 MB in a row).
 */
async function waitServing(deps: RestoreDeps, config: CollectionConfig, shards: readonly RestoredShard[], timeoutMs: number): Promise<void> {
  const checked = new Set<string>();
  await pollUntil(
    async () => {
      const placed = deps.placements.get(config.name)?.record;
      if (placed?.uid !== config.uid) return undefined;
      const pending = shards.flatMap((s) => hostsOf(placed.shards[s.shard]!).map((node) => ({ shard: s, node, key: `${s.shard}@${node}` }))).filter((p) => !checked.has(p.key));
      await Promise.all(
        pending.map(async ({ shard: s, node, key }) => {
          const found = await requestReplica<ShardDigest>(deps.nc, { node, collection: config.name, shard: s.shard, op: "digest" }, { uid: config.uid, minSeq: s.seq, timeoutMs: digestWaitMs, digest: {} }, digestWaitMs).catch((err: unknown) => {
            // Not there yet (restoring, not placed on that node yet, still applying): asked again.
            if (err instanceof JadeError && err.retryable) return undefined;
            throw err;
          });
          if (found === undefined) return;
          if (!sameDigest(found, s.digest)) {
            throw new JadeError(ErrorCode.Internal, `shard ${s.shard} on ${node} holds ${found.count} points (${found.hash}) at ${found.appliedSeq}, the restore wrote ${s.digest.count} (${s.digest.hash})`);
          }
          checked.add(key);
        }),
      );
      return pending.every((p) => checked.has(p.key)) ? true : undefined;
    },
    { timeoutMs, intervalMs: 100, onTimeout: () => new JadeError(ErrorCode.Timeout, `the replicas of ${config.name} did not all serve the restored data within ${Math.round(timeoutMs / 1000)} s`) },
  );
}
