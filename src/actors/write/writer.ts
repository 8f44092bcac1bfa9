/**
 * The write path shared by the API gateway and ingestion: group the points (in columns) by
 * shard, append ONE log entry per shard (vectors as float32 bytes), and answer once
 * JetStream acknowledged every entry — plus, for consistency one|quorum|all, once that many
 * replicas applied it.
 *
 * Back-pressure (pace.ts): before appending, a write waits while this node's entries not yet
 * applied and the leading replica's fresh buffer exceed the shard's bound, so an ingest faster
 * than the index slows down instead of leaving acknowledged points unsearchable for long.
 */
import { randomUUID } from "node:crypto";
import { headers, type MsgHdrs } from "@nats-io/nats-core";
import type { NatsContext } from "../../nats/connect.ts";
import { publishDurable } from "../../nats/streams.ts";
import type { PointColumns } from "../../runtime/columns.ts";
import { ErrorCode, JadeError, unavailable } from "../../runtime/errors.ts";
import { limits } from "../../runtime/limits.ts";
import { encodeEntry, EntryKind, type UpsertEntry } from "../../runtime/log-entry.ts";
import type { CollectionConfig, Payload, SessionToken, WriteConsistency } from "../../runtime/schemas.ts";
import { resolveSharding } from "../../runtime/sharding/index.ts";
import { subjects } from "../../runtime/subjects.ts";
import { injectTrace, traced, tracingEnabled } from "../../runtime/tracing.ts";
import type { AppliedTracker } from "./applied-tracker.ts";
import { paceDefaults, ShardBacklog, type PaceSettings } from "./pace.ts";

export interface WriteOptions {
  consistency: WriteConsistency;
  /** Makes a retried request idempotent (JetStream dedup by msg id, per shard). */
  requestId?: string;
  timeoutMs?: number;
}

interface ShardEntry {
  shard: number;
  data: Uint8Array;
}

/**
 * Writes in progress on this node (waiting for back-pressure included) before more are refused
 * `rate_limited` at once: paced writes wait for the index, and must not take every one of the
 * gateway's request slots (512) from the reads.
 */
export const writesInFlightMax = 128;

export class Writer {
  readonly #nats: NatsContext;
  readonly #tracker: AppliedTracker;
  readonly #backlog: ShardBacklog;
  #inflight = 0;
  /** Points whose upsert or delete this node made durable (metrics: the ingest rate). */
  readonly written = { upserted: 0, deleted: 0 };

  constructor(nats: NatsContext, tracker: AppliedTracker, pace: PaceSettings = paceDefaults) {
    this.#nats = nats;
    this.#tracker = tracker;
    this.#backlog = new ShardBacklog(tracker, pace);
  }

  /** `points` were checked against the collection's space by the caller (the gateway, or ingestion). */
  async upsert(config: CollectionConfig, points: PointColumns, options: WriteOptions): Promise<{ upserted: number; token: SessionToken }> {
    // A bug check: a short column would otherwise leave zeros in the entry unseen.
    if (points.vectors.length !== points.ids.length * config.dimension) throw new Error("writer.upsert got vectors that were not checked");
    const entries = shardEntries(config, points);
    const token = await this.#append(config, entries, options);
    this.written.upserted += points.ids.length;
    return { upserted: points.ids.length, token };
  }

  async delete(config: CollectionConfig, ids: string[], options: WriteOptions): Promise<{ deleted: number; token: SessionToken }> {
    const sharding = resolveSharding(config);
    const unique = new Set(ids);
    const byShard = new Map<number, string[]>();
    for (const id of unique) {
      for (const shard of sharding.shardsForId(id)) {
        const shardIds = byShard.get(shard);
        if (shardIds) shardIds.push(id);
        else byShard.set(shard, [id]);
      }
    }
    const entries = [...byShard].map(([shard, shardIds]) => ({ shard, data: encodeEntry({ kind: EntryKind.Delete, ids: shardIds }) }));
    const token = await this.#append(config, entries, options);
    this.written.deleted += unique.size;
    // The log does not know which ids exist: `deleted` counts the distinct ids whose deletion is now durable.
    return { deleted: unique.size, token };
  }

  async #append(config: CollectionConfig, entries: ShardEntry[], options: WriteOptions): Promise<SessionToken> {
    if (this.#inflight >= writesInFlightMax) throw new JadeError(ErrorCode.RateLimited, `more than ${writesInFlightMax} writes in progress on this node`);
    this.#inflight++;
    try {
      if (!tracingEnabled()) return await this.#appendEntries(config, entries, options);
      const attributes = { "jade.collection": config.name, "jade.shards": entries.length, "jade.consistency": options.consistency ?? "log" };
      return await traced("jade.writer.append", attributes, () => this.#appendEntries(config, entries, options));
    } finally {
      this.#inflight--;
    }
  }

  async #appendEntries(config: CollectionConfig, entries: ShardEntry[], options: WriteOptions): Promise<SessionToken> {
    const requestId = options.requestId ?? randomUUID();
    const timeoutMs = options.timeoutMs ?? limits.writeTimeoutMsDefault;
    // One deadline for the pacing, the log ack and the replicas together: timeoutMs bounds the whole write.
    const deadline = performance.now() + timeoutMs;
    const acks = await Promise.all(
      entries.map(async ({ shard, data }) => {
        const release = await this.#backlog.reserve(config, shard, data.byteLength, deadline);
        try {
          const publish = (traceHeaders?: MsgHdrs) =>
            publishDurable(this.#nats.js, subjects.log(config.name, shard), data, {
              msgID: `${config.uid}:${requestId}:${shard}`,
              deadlineMs: Math.max(1, deadline - performance.now()),
              headers: traceHeaders,
            });
          // A traced write's entries carry its traceparent: the replicas' apply continues the trace.
          const ack = tracingEnabled()
            ? await traced("jade.log.publish", { "jade.collection": config.name, "jade.shard": shard, "jade.bytes": data.byteLength }, () => {
                const h = headers();
                return publish(injectTrace(h) ? h : undefined);
              })
            : await publish();
          release(ack.seq);
          return [shard, ack.seq] as const;
        } catch (err) {
          release(undefined);
          throw unavailable(`shard ${shard} log of ${config.name} did not acknowledge the write`, err);
        }
      }),
    );
    const token: SessionToken = Object.fromEntries(acks.map(([shard, seq]) => [String(shard), seq]));
    const replicas = requiredReplicas(options.consistency, config.replicas);
    if (replicas > 0) {
      const remainingMs = Math.max(1, Math.round(deadline - performance.now()));
      await Promise.all(acks.map(([shard, seq]) => this.#tracker.wait(config.name, shard, seq, replicas, remainingMs)));
    }
    return token;
  }
}

/**
 * One log entry per shard the points go to. With one shard and an id-stable strategy the
 * request's own column is the entry's (no copy); otherwise rows are copied shard by shard.
 */
function shardEntries(config: CollectionConfig, points: PointColumns): ShardEntry[] {
  const sharding = resolveSharding(config);
  const dim = config.dimension;
  const n = points.ids.length;
  // A strategy that is not id-stable places a point by its vector: an id written twice in one
  // request could land on two shards, so only its last occurrence is placed (what a shard keeps anyway).
  const placed = sharding.idStable ? undefined : lastOccurrences(points.ids);
  if (config.shards === 1 && placed === undefined) {
    return [{ shard: 0, data: encodeEntry({ kind: EntryKind.Upsert, ids: points.ids, payloads: points.payloads, dimension: dim, vectors: points.vectors }) }];
  }
  const shardOf = new Int32Array(n).fill(-1);
  const counts = new Int32Array(config.shards);
  for (let i = 0; i < n; i++) {
    if (placed !== undefined && placed[i] === 0) continue;
    const shard = sharding.shardOf(points.ids[i]!, points.vectors, i * dim);
    shardOf[i] = shard;
    counts[shard]!++;
  }
  const entries: ShardEntry[] = [];
  for (let shard = 0; shard < config.shards; shard++) {
    // Vector sharding: every shard gets an entry that deletes the request's ids placed elsewhere
    // (an earlier version of a point may sit on any shard); a shard without points gets only that.
    if (counts[shard] === 0 && placed === undefined) continue;
    const entry = entryOf(points, shardOf, shard, counts[shard]!, dim);
    if (placed !== undefined) {
      const elsewhere = points.ids.filter((_, i) => shardOf[i]! >= 0 && shardOf[i] !== shard);
      if (elsewhere.length > 0) entry.deleteIds = elsewhere;
    }
    entries.push({ shard, data: encodeEntry(entry) });
  }
  return entries;
}

/** The rows of `points` placed on `shard`, copied into the entry's own columns. */
function entryOf(points: PointColumns, shardOf: Int32Array, shard: number, count: number, dim: number): UpsertEntry {
  const ids = new Array<string>(count);
  const vectors = new Float32Array(count * dim);
  const payloads = points.payloads === undefined ? undefined : new Array<Payload | null>(count);
  const source = points.vectors;
  for (let i = 0, row = 0; row < count; i++) {
    if (shardOf[i] !== shard) continue;
    ids[row] = points.ids[i]!;
    if (payloads !== undefined) payloads[row] = points.payloads![i] ?? null;
    const from = i * dim;
    const to = row * dim;
    for (let j = 0; j < dim; j++) vectors[to + j] = source[from + j]!;
    row++;
  }
  return { kind: EntryKind.Upsert, ids, payloads, dimension: dim, vectors };
}

/** 1 at each id's last occurrence, 0 at its earlier ones. */
function lastOccurrences(ids: string[]): Uint8Array {
  const last = new Map<string, number>();
  ids.forEach((id, i) => last.set(id, i));
  const keep = new Uint8Array(ids.length);
  for (const i of last.values()) keep[i] = 1;
  return keep;
}

export function requiredReplicas(consistency: WriteConsistency, replicationFactor: number): number {
  switch (consistency) {
    case "log":
      return 0;
    case "one":
      return 1;
    case "quorum":
      return Math.floor(replicationFactor / 2) + 1;
    case "all":
      return replicationFactor;
  }
}
