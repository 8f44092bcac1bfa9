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
import type { ShardRead, ShardSearchRequest } from "../vector-index/api.ts";
import type { Membership } from "../cluster/membership.ts";
import type { PlacementStore } from "../cluster/placement-store.ts";
import type { ReplicaHost } from "../replica/host.ts";
import { readFromWire, requestReplica, type ReplicaReadRequest } from "../replica/protocol.ts";
import { TxnState, type TxnRecord } from "../../runtime/txn-schemas.ts";
import { mentioned, plan, recordsNeeded, shardsSeeing, type ShardAnswer } from "./txn-reads.ts";
import { float32Bytes } from "../../runtime/encoding.ts";
import type { ShardReplica } from "../replica/replica.ts";
import { mergeTopK } from "./merge.ts";
import { resolveSelection, type ReplicaSelection, type SelectionName } from "./selection/index.ts";
import { withDeadline } from "../../runtime/async.ts";
import { Hedger, type HedgeStats } from "../../runtime/hedge-budget.ts";
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
  /** How the shard was last asked, and what it saw of transactions (txn-reads.ts). */
  answer?: ShardAnswer;
}

/** One read, as it runs on a local replica and as it is sent to a remote one; `assume` as txn-overlay.ts. */
interface ReadOp<T> {
  op: ReplicaOp;
  local: (replica: ShardReplica, minSeq: number, timeoutMs: number, assume: string[] | undefined) => Promise<ShardRead<T>>;
  remote: (shard: number) => Pick<ReplicaReadRequest, "search" | "get" | "count">;
}

export interface RouterDeps {
  nodeId: string;
  nats: NatsContext;
  host: ReplicaHost;
  placements: PlacementStore;
  membership: Membership;
  selection: SelectionName;
  /** Transaction records: read for the few transactions whose shards' answers disagree (txn-reads.ts). */
  records: { get(id: string): Promise<TxnRecord | undefined> };
}

export class ReadRouter {
  readonly #deps: RouterDeps;
  readonly #nc: NatsConnection;
  readonly #selection: ReplicaSelection;
  readonly #hedger = new Hedger();
  /** Transaction records that cannot change any more, oldest first: decided ones, and null for one that is gone (txn-reads.ts). */
  readonly #settled = new Map<string, TxnRecord | null>();

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
      local: (replica, minSeq, timeoutMs, assume) => replica.search(assume ? { ...request, assume } : request, minSeq, timeoutMs),
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
      local: (replica, minSeq, timeoutMs, assume) => replica.get(byShard.get(replica.shard)!, withVectors, minSeq, timeoutMs, assume),
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
      local: (replica, minSeq, timeoutMs, assume) => replica.count(filter, minSeq, timeoutMs, assume),
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
    const outcomes = await Promise.all(
      shards.map(async (shard): Promise<ShardOutcome<T>> => {
        try {
          return this.#askShard(config, shard, await this.#minSeq(config, shard, options), undefined, deadline, read);
        } catch (err) {
          return { shard, error: asJadeError(err) };
        }
      }),
    );
    return this.#settleTxns(config, outcomes, deadline, read);
  }

  async #askShard<T>(config: CollectionConfig, shard: number, minSeq: number, assume: string[] | undefined, deadline: number, read: ReadOp<T>): Promise<ShardOutcome<T>> {
    try {
      const { value, txns } = await this.#readShard(config, shard, minSeq, assume, deadline, read);
      return { shard, value, answer: { shard, minSeq, assumed: assume ?? [], ...(txns ? { txns } : {}) } };
    } catch (err) {
      return { shard, error: asJadeError(err) };
    }
  }

  /**
   * Makes the read see all of each transaction or none (txn-reads.ts): asks again the shards
   * whose answers do not reflect a transaction that another shard applied, reading records
   * only where the answers alone cannot tell. Nothing to do, and nothing read, when no shard
   * saw a transaction. A shard a transaction leaves in doubt (its record unreadable, or
   * transactions still landing after the last round) is reported unanswered, `partial`,
   * rather than answered with half a transaction.
   */
  async #settleTxns<T>(config: CollectionConfig, outcomes: ShardOutcome<T>[], deadline: number, read: ReadOp<T>): Promise<ShardOutcome<T>[]> {
    for (let round = 0; ; round++) {
      const answers = outcomes.flatMap((o) => (o.answer ? [o.answer] : []));
      if (!answers.some((a) => a.txns)) return outcomes;
      const { known, failed } = await this.#records(answers);
      if (failed.length > 0) return failShards(outcomes, shardsSeeing(answers, failed), `the records of transactions ${failed.join(", ")} could not be read`);
      const reasks = plan(answers, known);
      if (reasks.size === 0) return outcomes;
      if (round >= limits.txnReadRoundsMax) return failShards(outcomes, [...reasks.keys()], "transactions kept landing during the read; try again");
      const again = await Promise.all([...reasks].map(([shard, r]) => this.#askShard(config, shard, r.minSeq, r.assume, deadline, read)));
      const byShard = new Map(again.map((o) => [o.shard, o]));
      outcomes = outcomes.map((o) => byShard.get(o.shard) ?? o);
    }
  }

  /** The records the answers need: decided or missing ones from the cache (neither changes), the rest read; `failed`: those that could not be. */
  async #records(answers: readonly ShardAnswer[]): Promise<{ known: Map<string, TxnRecord | undefined>; failed: string[] }> {
    const known = new Map<string, TxnRecord | undefined>();
    for (const txn of mentioned(answers)) {
      const cached = this.#settled.get(txn);
      if (cached !== undefined) known.set(txn, cached ?? undefined);
    }
    const failed: string[] = [];
    await Promise.all(
      recordsNeeded(answers, known).map(async (txn) => {
        try {
          const record = await this.#deps.records.get(txn);
          known.set(txn, record);
          if (record?.state !== TxnState.Preparing) this.#remember(txn, record ?? null);
        } catch {
          failed.push(txn);
        }
      }),
    );
    return { known, failed };
  }

  #remember(txn: string, record: TxnRecord | null): void {
    this.#settled.set(txn, record);
    if (this.#settled.size > settledRecordsKept) this.#settled.delete(this.#settled.keys().next().value!);
  }

  /**
   * Tries the shard's candidate replicas in the selection order until one answers or the
   * deadline passes. One that has not answered after `shardHedgeMs` is not waited out: the next
   * is asked too (hedges rationed by `HedgeBudget`), and the first answer wins.
   */
  async #readShard<T>(config: CollectionConfig, shard: number, minSeq: number, assume: string[] | undefined, deadline: number, read: ReadOp<T>): Promise<ShardRead<T>> {
    const candidates = this.#candidates(config, shard);
    if (candidates.length === 0) throw new JadeError(ErrorCode.Unavailable, `no live replica of shard ${shard}`);
    this.#hedger.read();
    const ask = (node: string, timeoutMs: number) => this.#readOn(node, config, shard, minSeq, assume, timeoutMs, read);
    let lastError: JadeError | undefined;
    let i = 0;
    while (i < candidates.length) {
      const remaining = deadline - performance.now();
      if (remaining <= 1) break;
      const next = candidates[i + 1];
      // Leave time for the next candidate: a hung node must not eat the whole deadline.
      const attemptMs = next === undefined ? remaining : Math.max(remaining / 2, Math.min(remaining, 250));
      const first = ask(candidates[i++]!, attemptMs);
      const hedge = () => {
        i++;
        return ask(next!, Math.max(1, deadline - performance.now()));
      };
      try {
        return await (next === undefined ? first : this.#hedger.race(first, hedge, shardHedgeMs, firstFulfilled));
      } catch (err) {
        lastError = err instanceof JadeError ? err : new JadeError(ErrorCode.Unavailable, errorMessage(err));
      }
    }
    throw lastError ?? new JadeError(ErrorCode.Timeout, `shard ${shard} did not answer in time`);
  }

  /** Counts of this router's shard reads and hedges (a copy). */
  get hedgeStats(): HedgeStats {
    return this.#hedger.stats;
  }

  #readOn<T>(node: string, config: CollectionConfig, shard: number, minSeq: number, assume: string[] | undefined, timeoutMs: number, read: ReadOp<T>): Promise<ShardRead<T>> {
    const run = () => this.#readReplica(node, config, shard, minSeq, assume, timeoutMs, read);
    if (!tracingEnabled()) return run();
    const local = node === this.#deps.nodeId;
    const attributes = { "jade.node": this.#deps.nodeId, "jade.replica.node": node, "jade.collection": config.name, "jade.shard": shard, "jade.replica.local": local };
    return traced(`jade.router.${read.op} ${local ? "local" : "remote"}`, attributes, run, { kind: local ? SpanKind.INTERNAL : SpanKind.CLIENT });
  }

  async #readReplica<T>(node: string, config: CollectionConfig, shard: number, minSeq: number, assume: string[] | undefined, timeoutMs: number, read: ReadOp<T>): Promise<ShardRead<T>> {
    if (node === this.#deps.nodeId) {
      const replica = this.#deps.host.replicas(config.name)[shard];
      if (!replica || replica.config.uid !== config.uid) throw new JadeError(ErrorCode.Unavailable, `replica of shard ${shard} not hosted here`);
      return withDeadline(
        read.local(replica, minSeq, timeoutMs, assume),
        timeoutMs,
        () => new JadeError(ErrorCode.Timeout, `shard ${shard} did not answer within ${Math.round(timeoutMs)} ms`),
      );
    }
    const request: ReplicaReadRequest = { uid: config.uid, minSeq, timeoutMs: Math.max(1, Math.floor(timeoutMs - 5)), ...read.remote(shard), ...(assume ? { assume } : {}) };
    return readFromWire(await requestReplica<T | ShardRead<T>>(this.#nc, { node, collection: config.name, shard, op: read.op }, request, timeoutMs));
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
    const context = { key: shardKey(config.uid, shard), loadOf: (node: string) => membership.member(node)?.heartbeat.load ?? 0, self: nodeId };
    // The others last, not left out: a heartbeat a second old may not show a replica that
    // caught up since, and with the readable one hung it is the read's only way (it waits for
    // the read's sequence itself).
    const others = live.filter((n) => !readable.includes(n));
    return [...this.#selection.order(readable, context), ...(others.length > 0 ? this.#selection.order(others, context) : [])];
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

/**
 * How long a shard read waits on one replica before asking the next too. A replica answers in
 * milliseconds (a search's p95 during a 1M import was 78 ms); one silent for this long is most
 * likely paused, or its worker is saving a snapshot (160 ms and more at 250,000 points). A paused
 * node's heartbeats take 3 s to stop, and until now a read waited out half its deadline on it:
 * about a second for a 2 s search.
 */
const shardHedgeMs = 250;

/** The first of two reads to succeed; the first one's error when both fail. */
function firstFulfilled<T>(first: Promise<T>, second: Promise<T>): Promise<T> {
  return Promise.any([first, second]).catch((err: AggregateError) => {
    throw err.errors[0];
  });
}

/** Settled transaction records a router keeps: more than a read window's worth of transactions at any rate measured here. */
const settledRecordsKept = 4_096;

function asJadeError(err: unknown): JadeError {
  return err instanceof JadeError ? err : new JadeError(ErrorCode.Internal, errorMessage(err), { cause: err });
}

function failShards<T>(outcomes: ShardOutcome<T>[], shards: readonly number[], reason: string): ShardOutcome<T>[] {
  return outcomes.map((o) => (shards.includes(o.shard) ? { shard: o.shard, error: new JadeError(ErrorCode.Unavailable, `shard ${o.shard}: ${reason}`) } : o));
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
