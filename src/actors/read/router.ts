/**
 * Reads: fan a request out to one readable replica per shard — on this node
 * in-process, elsewhere over `jade.replica.<node>.…` — each with the request's
 * deadline, retrying another replica on timeout or error, and merge. A shard no
 * replica can answer in time makes the result `partial`; it never hangs.
 * No master on the read path: every node's router does this.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { errorMessage, ErrorCode, invalidArgument, JadeError } from "../../runtime/errors.ts";
import type { Filter } from "../../runtime/filter.ts";
import { limits } from "../../runtime/limits.ts";
import type { NatsContext } from "../../nats/connect.ts";
import type { CollectionConfig, Hit, ReadConsistency, SearchResult, SessionToken, StoredPoint } from "../../runtime/schemas.ts";
import { allShards, resolveSharding } from "../../runtime/sharding/index.ts";
import { names, type ReplicaOp, shardKey } from "../../runtime/subjects.ts";
import { isReadable, type ReplicaState } from "../../machines/replica.ts";
import type { ShardSearchRequest } from "../vector-index/api.ts";
import type { Membership } from "../cluster/membership.ts";
import type { PlacementStore } from "../cluster/placement-store.ts";
import type { ReplicaHost } from "../replica/host.ts";
import { requestReplica, type ReplicaReadRequest } from "../replica/protocol.ts";
import { float32Bytes } from "../../runtime/encoding.ts";
import type { ShardReplica } from "../replica/replica.ts";
import { mergeTopK } from "./merge.ts";
import { resolveSelection, type ReplicaSelection, type SelectionName } from "./selection/index.ts";
import { withDeadline } from "../../runtime/async.ts";
import { SpanKind, traced, tracingEnabled } from "../../runtime/tracing.ts";

export interface ReadOptions {
  consistency: ReadConsistency;
  token?: SessionToken;
  timeoutMs?: number;
  /** Vector sharding: probe only the shards of the nprobe nearest centroids. */
  nprobe?: number;
}

interface ShardOutcome<T> {
  shard: number;
  value?: T;
  error?: JadeError;
}

/** One read, as it runs on a local replica and as it is sent to a remote one. */
interface ReadOp<T> {
  op: ReplicaOp;
  local: (replica: ShardReplica, minSeq: number, timeoutMs: number) => Promise<T>;
  remote: (shard: number) => Pick<ReplicaReadRequest, "search" | "get" | "count">;
}

export interface RouterDeps {
  nodeId: string;
  nats: NatsContext;
  host: ReplicaHost;
  placements: PlacementStore;
  membership: Membership;
  selection: SelectionName;
}

export class ReadRouter {
  readonly #deps: RouterDeps;
  readonly #nc: NatsConnection;
  readonly #selection: ReplicaSelection;

  constructor(deps: RouterDeps) {
    this.#deps = deps;
    this.#nc = deps.nats.nc;
    this.#selection = resolveSelection(deps.selection);
  }

  async search(config: CollectionConfig, request: ShardSearchRequest, options: ReadOptions): Promise<SearchResult> {
    const shards = resolveSharding(config).searchShards(request.vector, options.nprobe);
    const { vector, ...rest } = request;
    const outcomes = await this.#fanOut(config, shards, options, {
      op: "search",
      local: (replica, minSeq, timeoutMs) => replica.search(request, minSeq, timeoutMs),
      remote: () => ({ search: { ...rest, vector: float32Bytes(vector) } }),
    });
    const lists = outcomes.map((o) => (o.value as Hit[] | undefined) ?? []);
    return { hits: mergeTopK(lists, request.k), ...coverage(outcomes) };
  }

  async get(config: CollectionConfig, ids: string[], withVectors: boolean, options: ReadOptions) {
    const sharding = resolveSharding(config);
    const byShard = new Map<number, string[]>();
    for (const id of new Set(ids)) {
      for (const shard of sharding.shardsForId(id)) byShard.set(shard, [...(byShard.get(shard) ?? []), id]);
    }
    const outcomes = await this.#fanOut<StoredPoint[]>(config, [...byShard.keys()], options, {
      op: "get",
      local: (replica, minSeq, timeoutMs) => replica.get(byShard.get(replica.shard)!, withVectors, minSeq, timeoutMs),
      remote: (shard) => ({ get: { ids: byShard.get(shard)!, withVectors } }),
    });
    const found = new Map<string, StoredPoint>();
    for (const o of outcomes) for (const p of o.value ?? []) found.set(p.id, p);
    const points = [...new Set(ids)].filter((id) => found.has(id)).map((id) => found.get(id)!);
    return { points, ...coverage(outcomes) };
  }

  async count(config: CollectionConfig, filter: Filter | undefined, options: ReadOptions) {
    const outcomes = await this.#fanOut<number>(config, allShards(config), options, {
      op: "count",
      local: (replica, minSeq, timeoutMs) => replica.count(filter, minSeq, timeoutMs),
      remote: () => ({ count: { filter } }),
    });
    return { count: outcomes.reduce((sum, o) => sum + (o.value ?? 0), 0), ...coverage(outcomes) };
  }

  /** The shard log's last sequence now: what a strong read must see, and what lag is measured against. */
  async streamLastSeq(config: CollectionConfig, shard: number): Promise<number> {
    const info = await this.#deps.nats.jsm.streams.info(names.logStream(config.name, shard));
    return info.state.last_seq;
  }

  async #fanOut<T>(config: CollectionConfig, shards: number[], options: ReadOptions, read: ReadOp<T>): Promise<ShardOutcome<T>[]> {
    const timeoutMs = options.timeoutMs ?? limits.searchTimeoutMsDefault;
    const deadline = performance.now() + timeoutMs;
    if (options.consistency === "session") await this.#checkToken(config, shards, options.token);
    return Promise.all(
      shards.map(async (shard): Promise<ShardOutcome<T>> => {
        try {
          const minSeq = await this.#minSeq(config, shard, options);
          return { shard, value: await this.#readShard(config, shard, minSeq, deadline, read) };
        } catch (err) {
          if (err instanceof JadeError) return { shard, error: err };
          return { shard, error: new JadeError(ErrorCode.Internal, errorMessage(err), { cause: err }) };
        }
      }),
    );
  }

  /** Tries the shard's candidate replicas in the selection order until one answers or the deadline passes. */
  async #readShard<T>(config: CollectionConfig, shard: number, minSeq: number, deadline: number, read: ReadOp<T>): Promise<T> {
    const candidates = this.#candidates(config, shard);
    if (candidates.length === 0) throw new JadeError(ErrorCode.Unavailable, `no live replica of shard ${shard}`);
    let lastError: JadeError | undefined;
    for (let i = 0; i < candidates.length; i++) {
      const remaining = deadline - performance.now();
      if (remaining <= 1) break;
      // Leave time for the next candidate: a hung node must not eat the whole deadline.
      const attemptMs = i === candidates.length - 1 ? remaining : Math.max(remaining / 2, Math.min(remaining, 250));
      const node = candidates[i]!;
      try {
        return await this.#readOn(node, config, shard, minSeq, attemptMs, read);
      } catch (err) {
        lastError = err instanceof JadeError ? err : new JadeError(ErrorCode.Unavailable, errorMessage(err));
      }
    }
    throw lastError ?? new JadeError(ErrorCode.Timeout, `shard ${shard} did not answer in time`);
  }

  #readOn<T>(node: string, config: CollectionConfig, shard: number, minSeq: number, timeoutMs: number, read: ReadOp<T>): Promise<T> {
    const run = () => this.#readReplica(node, config, shard, minSeq, timeoutMs, read);
    if (!tracingEnabled()) return run();
    const local = node === this.#deps.nodeId;
    const attributes = { "jade.node": this.#deps.nodeId, "jade.replica.node": node, "jade.collection": config.name, "jade.shard": shard, "jade.replica.local": local };
    return traced(`jade.router.${read.op} ${local ? "local" : "remote"}`, attributes, run, { kind: local ? SpanKind.INTERNAL : SpanKind.CLIENT });
  }

  async #readReplica<T>(node: string, config: CollectionConfig, shard: number, minSeq: number, timeoutMs: number, read: ReadOp<T>): Promise<T> {
    if (node === this.#deps.nodeId) {
      const replica = this.#deps.host.replicas(config.name)[shard];
      if (!replica || replica.config.uid !== config.uid) throw new JadeError(ErrorCode.Unavailable, `replica of shard ${shard} not hosted here`);
      return withDeadline(
        read.local(replica, minSeq, timeoutMs),
        timeoutMs,
        () => new JadeError(ErrorCode.Timeout, `shard ${shard} did not answer within ${Math.round(timeoutMs)} ms`),
      );
    }
    const request: ReplicaReadRequest = { uid: config.uid, minSeq, timeoutMs: Math.max(1, Math.floor(timeoutMs - 5)), ...read.remote(shard) };
    return requestReplica<T>(this.#nc, { node, collection: config.name, shard, op: read.op }, request, timeoutMs);
  }

  /** Nodes holding a replica of the shard, live and readable ones first, in the selection strategy's order. */
  #candidates(config: CollectionConfig, shard: number): string[] {
    const { placements, membership, host, nodeId } = this.#deps;
    const stored = placements.get(config.name);
    const placed = stored && stored.record.uid === config.uid ? (stored.record.shards[shard]?.replicas ?? []) : [];
    const live = placed.filter((n) => membership.isLive(n));
    const stateOf = (node: string): ReplicaState | undefined => {
      if (node === nodeId) return host.replicas(config.name)[shard]?.state;
      return membership.replicaBeat(node, config.uid, shard)?.state;
    };
    const readable = live.filter((n) => {
      const state = stateOf(n);
      return state !== undefined && isReadable(state);
    });
    const ordered = this.#selection.order(readable.length > 0 ? readable : live, {
      key: shardKey(config.uid, shard),
      loadOf: (node) => membership.member(node)?.heartbeat.load ?? 0,
      self: nodeId,
    });
    return ordered;
  }

  /**
   * A token's sequence beyond the end of its shard's log can only be a token of another
   * collection (or incarnation), or made up: refused at once instead of waited on for the
   * whole deadline. The log is asked only when no replica has reported reaching the
   * sequence, which is rare outside a read that follows its write within milliseconds.
   */
  async #checkToken(config: CollectionConfig, shards: number[], token: SessionToken | undefined): Promise<void> {
    if (token === undefined) return;
    await Promise.all(
      shards.map(async (shard) => {
        const seq = token[String(shard)] ?? 0;
        if (seq <= this.#reachedSeq(config, shard)) return;
        const last = await this.streamLastSeq(config, shard).catch((err: unknown) => {
          throw new JadeError(ErrorCode.Unavailable, `shard ${shard} log of ${config.name} did not answer`, { cause: err });
        });
        if (seq > last) {
          throw invalidArgument(`token: shard ${shard} is at sequence ${seq}, past the end of its log (${last}): the token is not from this collection`);
        }
      }),
    );
  }

  /** The highest sequence any replica of the shard is known to have reached (from this node's replica and heartbeats). */
  #reachedSeq(config: CollectionConfig, shard: number): number {
    const { host, membership, nodeId } = this.#deps;
    const local = host.replicas(config.name)[shard];
    let reached = local && local.config.uid === config.uid ? Math.max(local.lastSeq, local.appliedSeq) : 0;
    for (const member of membership.members()) {
      if (member.heartbeat.nodeId === nodeId) continue;
      const beat = membership.replicaBeat(member.heartbeat.nodeId, config.uid, shard);
      if (beat && beat.appliedSeq > reached) reached = beat.appliedSeq;
    }
    return reached;
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
}

function coverage(outcomes: ShardOutcome<unknown>[]) {
  const answered = outcomes.filter((o) => o.error === undefined).length;
  const result: { partial: boolean; shards: { total: number; answered: number }; errors?: { shard: number; code: string; message: string }[] } = {
    partial: answered < outcomes.length,
    shards: { total: outcomes.length, answered },
  };
  const errors = outcomes.filter((o) => o.error).map((o) => ({ shard: o.shard, code: o.error!.code, message: o.error!.message }));
  if (errors.length > 0) result.errors = errors;
  return result;
}
