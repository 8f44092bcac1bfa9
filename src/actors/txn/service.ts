/**
 * The gateway side of a transaction (`jade.v1.<collection>.transaction`, decision 013): plans
 * the request, then runs `transactionMachine` with its effects bound here: locks (locks.ts), the
 * record (records.ts), prepares and markers appended to the shard logs, votes asked of one
 * serving replica per shard. Answers once the commit is durable (and, for consistency one,
 * quorum or all, applied by that many replicas of each shard), or with `conflict` and the reason.
 */
import { randomBytes } from "node:crypto";
import type { KV } from "@nats-io/kv";
import { createActor, fromPromise, type Actor } from "xstate";
import { transactionMachine, transactionOutput, Outcome, InDoubt, type TransactionOutput } from "../../machines/transaction.ts";
import type { NatsContext } from "../../nats/connect.ts";
import { publishDurable } from "../../nats/streams.ts";
import { parse } from "../../runtime/checks.ts";
import type { PointColumns, WriteRequestOptions } from "../../runtime/columns.ts";
import { float32Bytes } from "../../runtime/encoding.ts";
import { ErrorCode, JadeError, unavailable } from "../../runtime/errors.ts";
import { failpoint, Failpoint } from "../../runtime/failpoints.ts";
import { FormatsInUse } from "../../runtime/formats.ts";
import { encodeEntry, EntryKind, txnEntryFormat } from "../../runtime/log-entry.ts";
import { limits } from "../../runtime/limits.ts";
import type { Logger } from "../../runtime/log.ts";
import type { CollectionConfig, SessionToken } from "../../runtime/schemas.ts";
import { TxnOutcome } from "../../runtime/status.ts";
import { names, subjects } from "../../runtime/subjects.ts";
import { TransactionRequest, TxnState } from "../../runtime/txn-schemas.ts";
import type { Membership } from "../cluster/membership.ts";
import type { PlacementStore } from "../cluster/placement-store.ts";
import { requestReplica, type TxnVoteReply } from "../replica/protocol.ts";
import type { AppliedTracker } from "../write/applied-tracker.ts";
import { requiredReplicas } from "../write/writer.ts";
import { LockTable, lockKeys } from "./locks.ts";
import { planTransaction, prepareEntry } from "./plan.ts";
import { TxnRecords } from "./records.ts";
import type { TxnStats } from "./stats.ts";

export interface TxnServiceDeps {
  nodeId: string;
  nats: Pick<NatsContext, "js" | "nc" | "locks">;
  records: TxnRecords;
  /** The coordinator's recovery leaves a transaction to its gateway this long past its deadline. */
  recoveryGraceMs: number;
  /** KV `jade_config`: the formats the cluster writes. */
  config: KV;
  placements: PlacementStore;
  membership: Membership;
  tracker: AppliedTracker;
  /** Counts each transaction's outcome and duration. */
  stats: TxnStats;
  log: Logger;
}


export interface TransactionReply {
  id: string;
  upserted: number;
  deleted: number;
  token: SessionToken;
}

export class TransactionService {
  readonly #deps: TxnServiceDeps;
  readonly #locks: LockTable;
  readonly records: TxnRecords;
  #formatWritten = false;

  constructor(deps: TxnServiceDeps) {
    this.#deps = deps;
    this.#locks = new LockTable(deps.nats.locks);
    this.records = deps.records;
  }

  /**
   * An upsert with `atomic: true`: a transaction of that one op, answered as an upsert is. Its
   * `requestId` is not needed: a repeated upsert of the same points changes nothing but versions.
   */
  async upsertAtomic(config: CollectionConfig, columns: PointColumns, options: WriteRequestOptions): Promise<{ upserted: number; token: SessionToken }> {
    const { dimension } = config;
    const points = columns.ids.map((id, i) => {
      const payload = columns.payloads?.[i];
      return { id, vector: float32Bytes(columns.vectors.subarray(i * dimension, (i + 1) * dimension)), ...(payload ? { payload } : {}) };
    });
    const timeoutMs = Math.min(options.timeoutMs ?? limits.txnTimeoutMsDefault, limits.txnTimeoutMsMax);
    const { upserted, token } = await this.run(config, { ops: [{ op: "upsert", points }], consistency: options.consistency, timeoutMs });
    return { upserted, token };
  }

  async run(config: CollectionConfig, body: unknown): Promise<TransactionReply> {
    const request = parse(TransactionRequest, body);
    const plan = planTransaction(config, request);
    await this.#requireFormat();
    const id = `t${Date.now().toString(36)}${randomBytes(6).toString("hex")}`;
    const startedMs = performance.now();
    const createdAtMs = Date.now();
    const deadlineAtMs = createdAtMs + request.timeoutMs;
    const shards = [...plan.parts.keys()];
    const txn = { id, collection: config.name, uid: config.uid, shards };
    /** The lock acquisition, once started: the release waits for it to settle, so a lock it takes late is not left behind. */
    let acquiring: Promise<unknown> | undefined;
    let decidedAtMs = 0;
    /** A condition failed, or a point was locked or staged by another transaction: the outcome is a conflict. */
    let refused = false;
    /** The record's reason when recovery or an operator aborted it before our commit: what the client is told. */
    let lostTo: string | undefined;
    const { js } = this.#deps.nats;
    const append = (shard: number, data: Uint8Array, kind: string) =>
      publishDurable(js, subjects.log(config.name, shard), data, { msgID: `${config.uid}:${id}:${kind}:${shard}`, deadlineMs: Math.max(1_000, deadlineAtMs - Date.now()) }).then((ack) => ack.seq);
    const bySeqs = async (each: (shard: number) => Promise<number>) => Object.fromEntries(await Promise.all(shards.map(async (s) => [s, await each(s)] as const)));
    const machine = transactionMachine.provide({
      actors: {
        acquireLocks: fromPromise(async () => {
          // Locks outlive the deadline until recovery has had its turn (it releases them), and then some, should it be down.
          acquiring = this.#locks.acquire(config.uid, plan.lockIds, id, deadlineAtMs + 2 * this.#deps.recoveryGraceMs, deadlineAtMs);
          await acquiring.catch((err: unknown) => {
            refused = err instanceof JadeError && err.code === ErrorCode.Conflict;
            throw err;
          });
        }),
        writeRecord: fromPromise(() =>
          this.records.create({ id, collection: config.name, uid: config.uid, node: this.#deps.nodeId, state: TxnState.Preparing, done: false, shards, prepareSeqs: {}, createdAtMs, deadlineAtMs }),
        ),
        prepare: fromPromise(async () => {
          const prepareSeqs = await bySeqs((s) => append(s, encodeEntry(prepareEntry(id, plan.parts.get(s)!, deadlineAtMs)), "p"));
          return { prepareSeqs };
        }),
        collectVotes: fromPromise(async ({ input }) => {
          // Noted for recovery while the shards vote (before any decision); recovery finds the prepares without it too.
          const noted = this.records.notePrepared(id, Object.fromEntries(Object.entries(input.prepareSeqs).map(([s, seq]) => [String(s), seq])));
          const [votes] = await Promise.all([Promise.all(shards.map(async (shard) => ({ shard, ...(await this.#vote(config, shard, id, input.prepareSeqs[shard]!, deadlineAtMs)) }))), noted]);
          refused = votes.some((v) => v.replied && !v.yes);
          return { votes: votes.map(({ replied: _, ...vote }) => vote) };
        }),
        decide: fromPromise(async ({ input }) => {
          await failpoint(Failpoint.TxnBeforeDecide);
          decidedAtMs = Date.now();
          const prepareSeqs = Object.fromEntries(Object.entries(input.prepareSeqs).map(([s, seq]) => [String(s), seq]));
          // No record: its create never landed, so nothing reached a log (prepares follow it). Aborted, and the locks let go.
          const state = await this.records.decide(id, input.outcome, { prepareSeqs, ...(input.reason !== undefined ? { reason: input.reason.slice(0, 1024) } : {}) }, decidedAtMs).catch((err: unknown) => {
            if (err instanceof JadeError && err.code === ErrorCode.NotFound) return TxnState.Aborted;
            throw err;
          });
          if (input.outcome === Outcome.Committed && state === TxnState.Aborted) lostTo = (await this.records.get(id))?.reason;
          return { outcome: state === TxnState.Committed ? Outcome.Committed : Outcome.Aborted };
        }),
        appendMarkers: fromPromise(async ({ input }) => {
          await failpoint(Failpoint.TxnBeforeMarkers);
          const prepareSeqs = actor.getSnapshot().context.prepareSeqs;
          const commit = input.outcome === Outcome.Committed;
          const marker = (shard: number) =>
            commit
              ? encodeEntry({ kind: EntryKind.TxnCommit, txn: id, prepareSeq: prepareSeqs[shard]!, committedAtMs: decidedAtMs, shards })
              : encodeEntry({ kind: EntryKind.TxnAbort, txn: id, prepareSeq: prepareSeqs[shard] ?? 1 });
          // An abort goes to every shard: a prepare whose append failed may have landed all the same, and the abort makes it void.
          const ending = commit ? shards.filter((s) => prepareSeqs[s] !== undefined) : shards;
          const seqs = await Promise.all(ending.map(async (s) => [s, await append(s, marker(s), commit ? "c" : "a")] as const));
          return { markerSeqs: Object.fromEntries(seqs) };
        }),
        release: fromPromise(async () => {
          await acquiring?.catch(() => undefined);
          await this.#locks.release(lockKeys(config.uid, plan.lockIds), id);
          await this.records.markDone(id);
        }),
      },
      actions: {
        reportError: (_, params) => this.#deps.log.warn({ txn: id, ...params }, "transaction step failed"),
      },
    });
    const actor = createActor(machine, { input: { txn, timeoutMs: request.timeoutMs } });
    const end = this.#deps.stats.started();
    let output: TransactionOutput | undefined;
    try {
      output = await answerable(actor, deadlineAtMs + answerMarginMs);
    } finally {
      // A machine that failed outright told no outcome: in doubt, as only its record knows.
      end(output ? outcomeOf(output, refused) : TxnOutcome.InDoubt, performance.now() - startedMs);
    }
    return this.#reply(config, { ...output, reason: lostTo ?? output.reason }, request, plan, id, startedMs);
  }

  async #reply(config: CollectionConfig, output: TransactionOutput, request: ReturnType<typeof TransactionRequest.parse>, plan: { upserted: number; deleted: number }, id: string, startedMs: number): Promise<TransactionReply> {
    if (output.outcome === InDoubt) throw unavailable(`transaction ${id}: its outcome was not known by its deadline; recovery decides it (jade txns get ${id})`);
    if (output.outcome === Outcome.Aborted) throw new JadeError(ErrorCode.Conflict, `transaction ${id} aborted: ${output.reason ?? "no reason given"}`, { details: { txn: id, reason: output.reason } });
    const replicas = requiredReplicas(request.consistency, config.replicas);
    if (replicas > 0) {
      const remainingMs = Math.max(1, request.timeoutMs - (performance.now() - startedMs));
      await Promise.all(Object.entries(output.markerSeqs).map(([shard, seq]) => this.#deps.tracker.wait(config.name, Number(shard), seq, replicas, remainingMs)));
    }
    return { id, upserted: plan.upserted, deleted: plan.deleted, token: Object.fromEntries(Object.entries(output.markerSeqs).map(([s, seq]) => [String(s), seq])) };
  }

  /** One serving replica's vote (`replied`: a replica voted); none answering is a no (the transaction aborts). */
  async #vote(config: CollectionConfig, shard: number, txn: string, prepareSeq: number, deadlineAtMs: number): Promise<{ yes: boolean; reason?: string; replied: boolean }> {
    const placed = this.#deps.placements.get(config.name)?.record.shards[shard]?.replicas ?? [];
    const live = placed.filter((node) => this.#deps.membership.isLive(node));
    let last = "no replica of the shard is live";
    for (const node of live) {
      const timeoutMs = Math.max(1, deadlineAtMs - Date.now());
      try {
        const reply = await requestReplica<TxnVoteReply>(this.#deps.nats.nc, { node, collection: config.name, shard, op: "vote" }, { uid: config.uid, minSeq: prepareSeq, timeoutMs, vote: { txn } }, timeoutMs);
        return reply.yes ? { yes: true, replied: true } : { yes: false, reason: reply.reason ?? "voted no", replied: true };
      } catch (err) {
        last = err instanceof Error ? err.message : String(err);
      }
    }
    return { yes: false, reason: last, replied: false };
  }

  /** Transaction entries need every node to read them: the cluster must write log format 2 (read until it does: a format never moves back). */
  async #requireFormat(): Promise<void> {
    if (this.#formatWritten) return;
    const entry = await this.#deps.config.get(names.formatsKey);
    const inUse = entry?.operation === "PUT" ? FormatsInUse.safeParse(entry.json()).data : undefined;
    if (!inUse || inUse.log < txnEntryFormat) {
      throw unavailable(`transactions need log format ${txnEntryFormat}; the cluster writes ${inUse?.log ?? "an unknown one"} until every node runs a build that reads ${txnEntryFormat}`);
    }
    this.#formatWritten = true;
  }
}

/** How a transaction ended, for the counts: an abort the votes or the locks caused is a conflict. */
function outcomeOf(output: TransactionOutput, refused: boolean): TxnOutcome {
  if (output.outcome === InDoubt) return TxnOutcome.InDoubt;
  if (output.outcome === Outcome.Committed) return TxnOutcome.Committed;
  return refused ? TxnOutcome.Conflict : TxnOutcome.Aborted;
}

/**
 * Starts the transaction and resolves with its outcome as soon as it is final: on entering
 * `releasing` (decided and marked, or nothing written), not after it. The locks and the
 * record's `done` follow in the background, retried by the machine and finished by recovery
 * should this node die; measured, they were a quarter of a transaction's time at the client.
 */
function answerable(actor: Actor<typeof transactionMachine>, answerByMs: number): Promise<TransactionOutput> {
  return new Promise((resolve, reject) => {
    // Past its deadline a transaction's steps may still be retrying (a log that went away with its
    // collection, JetStream electing): the client is told it is in doubt, within its own timeout,
    // while the machine goes on and recovery has the last word. Found by the fuzzer: a collection
    // dropped under a transaction kept its client waiting past the reply timeout.
    const timer = setTimeout(() => resolve({ ...transactionOutput(actor.getSnapshot().context), outcome: InDoubt }), Math.max(0, answerByMs - Date.now()));
    actor.subscribe({
      next: (snapshot) => {
        if (snapshot.status !== "done" && !snapshot.matches("releasing")) return;
        clearTimeout(timer);
        resolve(transactionOutput(snapshot.context));
      },
      error: (err) => {
        clearTimeout(timer);
        reject(err);
      },
    });
    actor.start();
  });
}

/** How long past its deadline a gateway may take to answer: well inside the client's margin (client.ts replyTimeout, 1 s). */
const answerMarginMs = 300;
