/**
 * Reads: fan a request out to one readable replica per shard, each with the
 * request's deadline, and merge. A shard that cannot answer in time makes the
 * result `partial` instead of failing or hanging the whole request.
 */
import { ErrorCode, JadeError } from "../runtime/errors.ts";
import type { Filter } from "../runtime/filter.ts";
import { limits } from "../runtime/limits.ts";
import type { NatsContext } from "../runtime/nats.ts";
import type { CollectionConfig, Hit, ReadConsistency, SearchResult, SessionToken, StoredPoint } from "../runtime/schemas.ts";
import { resolveSharding } from "../runtime/sharding/index.ts";
import { names } from "../runtime/subjects.ts";
import type { ShardSearchRequest } from "./index/api.ts";
import type { ReplicaHost } from "./replica/host.ts";
import type { ShardReplica } from "./replica/replica.ts";

export interface ReadOptions {
  consistency: ReadConsistency;
  token?: SessionToken;
  timeoutMs?: number;
}

interface ShardOutcome<T> {
  shard: number;
  value?: T;
  error?: JadeError;
}

export class ReadRouter {
  readonly #host: ReplicaHost;
  readonly #nats: NatsContext;

  constructor(host: ReplicaHost, nats: NatsContext) {
    this.#host = host;
    this.#nats = nats;
  }

  async search(config: CollectionConfig, request: ShardSearchRequest, options: ReadOptions): Promise<SearchResult> {
    const shards = Array.from({ length: config.shards }, (_, s) => s);
    const outcomes = await this.#fanOut(config, shards, options, (replica, minSeq, timeoutMs) =>
      replica.search(request, minSeq, timeoutMs),
    );
    const hits: Hit[] = outcomes.flatMap((o) => o.value ?? []);
    hits.sort((a, b) => a.distance - b.distance || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return { hits: hits.slice(0, request.k), ...this.#coverage(outcomes) };
  }

  async get(config: CollectionConfig, ids: string[], withVectors: boolean, options: ReadOptions) {
    const sharding = resolveSharding(config);
    const byShard = new Map<number, string[]>();
    for (const id of ids) {
      const shard = sharding.shardOf(id);
      byShard.set(shard, [...(byShard.get(shard) ?? []), id]);
    }
    const outcomes = await this.#fanOut(config, [...byShard.keys()], options, (replica, minSeq, timeoutMs) =>
      replica.get(byShard.get(replica.shard)!, withVectors, minSeq, timeoutMs),
    );
    const found = new Map<string, StoredPoint>();
    for (const o of outcomes) for (const p of o.value ?? []) found.set(p.id, p);
    const points = ids.filter((id, i) => ids.indexOf(id) === i && found.has(id)).map((id) => found.get(id)!);
    return { points, ...this.#coverage(outcomes) };
  }

  async count(config: CollectionConfig, filter: Filter | undefined, options: ReadOptions) {
    const shards = Array.from({ length: config.shards }, (_, s) => s);
    const outcomes = await this.#fanOut(config, shards, options, (replica, minSeq, timeoutMs) =>
      replica.count(filter, minSeq, timeoutMs),
    );
    return { count: outcomes.reduce((sum, o) => sum + (o.value ?? 0), 0), ...this.#coverage(outcomes) };
  }

  #coverage(outcomes: ShardOutcome<unknown>[]) {
    const answered = outcomes.filter((o) => o.error === undefined).length;
    const result: { partial: boolean; shards: { total: number; answered: number }; errors?: { shard: number; code: string; message: string }[] } = {
      partial: answered < outcomes.length,
      shards: { total: outcomes.length, answered },
    };
    const errors = outcomes.filter((o) => o.error).map((o) => ({ shard: o.shard, code: o.error!.code, message: o.error!.message }));
    if (errors.length > 0) result.errors = errors;
    return result;
  }

  async #fanOut<T>(
    config: CollectionConfig,
    shards: number[],
    options: ReadOptions,
    call: (replica: ShardReplica, minSeq: number, timeoutMs: number) => Promise<T>,
  ): Promise<ShardOutcome<T>[]> {
    const timeoutMs = options.timeoutMs ?? limits.searchTimeoutMsDefault;
    const deadline = performance.now() + timeoutMs;
    const replicas = this.#host.replicas(config.name);
    return Promise.all(
      shards.map(async (shard): Promise<ShardOutcome<T>> => {
        const replica = replicas[shard];
        if (!replica || replica.config.uid !== config.uid) {
          return { shard, error: new JadeError(ErrorCode.Unavailable, `no replica of shard ${shard} is hosted`) };
        }
        try {
          const minSeq = await this.#minSeq(config, shard, options);
          const remaining = Math.max(1, deadline - performance.now());
          const value = await withDeadline(call(replica, minSeq, remaining), remaining, shard);
          return { shard, value };
        } catch (err) {
          if (err instanceof JadeError) return { shard, error: err };
          return { shard, error: new JadeError(ErrorCode.Internal, String((err as Error)?.message ?? err), { cause: err }) };
        }
      }),
    );
  }

  async #minSeq(config: CollectionConfig, shard: number, options: ReadOptions): Promise<number> {
    switch (options.consistency) {
      case "eventual":
        return 0;
      case "session":
        return options.token?.[String(shard)] ?? 0;
      case "strong":
        return this.streamLastSeq(config, shard);
    }
  }

  /** The shard log's last sequence now: what a strong read must see, and what lag is measured against. */
  async streamLastSeq(config: CollectionConfig, shard: number): Promise<number> {
    const info = await this.#nats.jsm.streams.info(names.logStream(config.name, shard));
    return info.state.last_seq;
  }
}

function withDeadline<T>(promise: Promise<T>, timeoutMs: number, shard: number): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new JadeError(ErrorCode.Timeout, `shard ${shard} did not answer within ${Math.round(timeoutMs)} ms`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
