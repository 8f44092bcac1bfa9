/**
 * The write path shared by the API gateway and ingestion: validate against the
 * collection, group points by shard, append ONE log entry per shard (vectors as
 * float32 bytes), and answer once JetStream acknowledged every entry — plus,
 * for consistency one|quorum|all, once that many replicas applied it.
 */
import { randomUUID } from "node:crypto";
import { limits } from "../../runtime/limits.ts";
import { encodeEntry, EntryKind, type UpsertEntry } from "../../runtime/log-entry.ts";
import type { NatsContext } from "../../nats/connect.ts";
import { publishDurable } from "../../nats/streams.ts";
import {
  type CollectionConfig,
  type Payload,
  type Point,
  type SessionToken,
  type WriteConsistency,
} from "../../runtime/schemas.ts";
import { resolveSharding } from "../../runtime/sharding/index.ts";
import { subjects } from "../../runtime/subjects.ts";
import { unavailable } from "../../runtime/errors.ts";
import type { AppliedTracker } from "./applied-tracker.ts";

export interface WriteOptions {
  consistency: WriteConsistency;
  /** Makes a retried request idempotent (JetStream dedup by msg id, per shard). */
  requestId?: string;
  timeoutMs?: number;
}

interface ShardBatch {
  ids: string[];
  payloads: (Payload | null)[];
  vectors: number[][];
}

export class Writer {
  readonly #nats: NatsContext;
  readonly #tracker: AppliedTracker;

  constructor(nats: NatsContext, tracker: AppliedTracker) {
    this.#nats = nats;
    this.#tracker = tracker;
  }

  /** `points` were checked against the collection's space by the caller (the gateway, or ingestion point by point). */
  async upsert(config: CollectionConfig, points: Point[], options: WriteOptions): Promise<{ upserted: number; token: SessionToken }> {
    // A bug check: a short vector would otherwise leave zeros in the entry unseen.
    if (points.some((p) => p.vector.length !== config.dimension)) throw new Error("writer.upsert got a point that was not checked");
    const sharding = resolveSharding(config);
    const batches = new Map<number, ShardBatch>();
    // A strategy that is not id-stable places a point by its vector: an id written twice in one
    // request could land on two shards, so only its last occurrence is placed (what a shard keeps anyway).
    const placed = sharding.idStable ? points : lastOccurrences(points);
    const shardOfPlaced = placed.map((p) => sharding.shardOf(p));
    placed.forEach((p, i) => {
      const shard = shardOfPlaced[i]!;
      let batch = batches.get(shard);
      if (!batch) batches.set(shard, (batch = { ids: [], payloads: [], vectors: [] }));
      batch.ids.push(p.id);
      batch.payloads.push(p.payload ?? null);
      batch.vectors.push(p.vector);
    });
    if (!sharding.idStable) {
      // Every shard gets an entry: its points, after deleting the request's ids placed elsewhere
      // (an earlier version of a point may sit on any shard). A shard without points gets a pure delete.
      for (let shard = 0; shard < config.shards; shard++) {
        if (!batches.has(shard)) batches.set(shard, { ids: [], payloads: [], vectors: [] });
      }
    }
    const entries = [...batches].map(([shard, b]) => {
      const vectors = new Float32Array(b.ids.length * config.dimension);
      b.vectors.forEach((v, i) => vectors.set(v, i * config.dimension));
      const entry: UpsertEntry = { kind: EntryKind.Upsert, ids: b.ids, payloads: b.payloads, dimension: config.dimension, vectors };
      if (!sharding.idStable) {
        const deleteIds = placed.filter((_, i) => shardOfPlaced[i] !== shard).map((p) => p.id);
        if (deleteIds.length > 0) entry.deleteIds = deleteIds;
      }
      return { shard, data: encodeEntry(entry) };
    });
    const token = await this.#append(config, entries, options);
    return { upserted: points.length, token };
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
    // The log does not know which ids exist: `deleted` counts the distinct ids whose deletion is now durable.
    return { deleted: unique.size, token };
  }

  async #append(config: CollectionConfig, entries: { shard: number; data: Uint8Array }[], options: WriteOptions): Promise<SessionToken> {
    const requestId = options.requestId ?? randomUUID();
    const timeoutMs = options.timeoutMs ?? limits.writeTimeoutMsDefault;
    // One deadline for the log ack and the replicas together: timeoutMs bounds the whole write.
    const deadline = performance.now() + timeoutMs;
    const acks = await Promise.all(
      entries.map(async ({ shard, data }) => {
        try {
          const ack = await publishDurable(this.#nats.js, subjects.log(config.name, shard), data, {
            msgID: `${config.uid}:${requestId}:${shard}`,
            deadlineMs: timeoutMs,
          });
          return [shard, ack.seq] as const;
        } catch (err) {
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

/** Each id's last occurrence, in request order of those occurrences. */
function lastOccurrences(points: Point[]): Point[] {
  const last = new Map<string, number>();
  points.forEach((p, i) => last.set(p.id, i));
  return last.size === points.length ? points : points.filter((p, i) => last.get(p.id) === i);
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
