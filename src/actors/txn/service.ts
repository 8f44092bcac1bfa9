/**
 * The gateway side of a transaction (`jade.v1.<collection>.transaction`, decision 013): plans
 * the request, then runs `transactionMachine` with its effects bound here: locks (locks.ts), the
 * record (records.ts), prepares and markers appended to the shard logs, votes asked of one
 * serving replica per shard. Answers once the commit is durable (and, for consistency one,
 * quorum or all, applied by that many replicas of each shard), or with `conflict` and the reason.
 */
import { randomBytes } from "node:crypto";
import type { KV } from "@nats-io/kv";
import { createActor, fromPromise, toPromise } from "xstate";
import { transactionMachine, Outcome, InDoubt, type TransactionOutput } from "../../machines/transaction.ts";
import type { NatsContext } from "../../nats/connect.ts";
import { publishDurable } from "../../nats/streams.ts";
import { parse } from "../../runtime/checks.ts";
import { ErrorCode, JadeError, unavailable } from "../../runtime/errors.ts";
import { FormatsInUse } from "../../runtime/formats.ts";
import { encodeEntry, EntryKind, txnEntryFormat } from "../../runtime/log-entry.ts";
import type { Logger } from "../../runtime/log.ts";
import type { CollectionConfig, SessionToken } from "../../runtime/schemas.ts";
import { names, subjects } from "../../runtime/subjects.ts";
import { TransactionRequest, TxnState } from "../../runtime/txn-schemas.ts";
import type { Membership } from "../cluster/membership.ts";
import type { PlacementStore } from "../cluster/placement-store.ts";
import { requestReplica, type TxnVoteReply } from "../replica/protocol.ts";
import type { AppliedTracker } from "../write/applied-tracker.ts";
import { requiredReplicas } from "../write/writer.ts";
import { LockTable } from "./locks.ts";
import { planTransaction, prepareEntry } from "./plan.ts";
import { TxnRecords } from "./records.ts";

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

  constructor(deps: TxnServiceDeps) {
    this.#deps = deps;
    this.#locks = new LockTable(deps.nats.locks);
    this.records = deps.records;
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
    let lockKeys: string[] = [];
    let decidedAtMs = 0;
    const { js } = this.#deps.nats;
    const append = (shard: number, data: Uint8Array, kind: string) =>
      publishDurable(js, subjects.log(config.name, shard), data, { msgID: `${config.uid}:${id}:${kind}:${shard}`, deadlineMs: Math.max(1_000, deadlineAtMs - Date.now()) }).then((ack) => ack.seq);
    const bySeqs = async (each: (shard: number) => Promise<number>) => Object.fromEntries(await Promise.all(shards.map(async (s) => [s, await each(s)] as const)));
    const machine = transactionMachine.provide({
      actors: {
        acquireLocks: fromPromise(async () => {
          // Locks outlive the deadline until recovery has had its turn (it releases them), and then some, should it be down.
          lockKeys = await this.#locks.acquire(config.uid, plan.lockIds, id, deadlineAtMs + 2 * this.#deps.recoveryGraceMs, deadlineAtMs);
        }),
        writeRecord: fromPromise(() =>
          this.records.create({ id, collection: config.name, uid: config.uid, node: this.#deps.nodeId, state: TxnState.Preparing, done: false, shards, prepareSeqs: {}, createdAtMs, deadlineAtMs }),
        ),
        prepare: fromPromise(async () => {
          const prepareSeqs = await bySeqs((s) => append(s, encodeEntry(prepareEntry(id, plan.parts.get(s)!, deadlineAtMs)), "p"));
          await this.records.notePrepared(id, Object.fromEntries(Object.entries(prepareSeqs).map(([s, seq]) => [String(s), seq])));
          return { prepareSeqs };
        }),
        collectVotes: fromPromise(async ({ input }) => ({ votes: await Promise.all(shards.map(async (shard) => ({ shard, ...(await this.#vote(config, shard, id, input.prepareSeqs[shard]!, deadlineAtMs)) }))) })),
        decide: fromPromise(async ({ input }) => {
          decidedAtMs = Date.now();
          const state = await this.records.decide(id, input.outcome, { prepareSeqs: Object.fromEntries(Object.entries(input.prepareSeqs).map(([s, seq]) => [String(s), seq])) }, decidedAtMs);
          return { outcome: state === TxnState.Committed ? Outcome.Committed : Outcome.Aborted };
        }),
        appendMarkers: fromPromise(async ({ input }) => {
          const prepareSeqs = actor.getSnapshot().context.prepareSeqs;
          const marker = (shard: number) =>
            input.outcome === Outcome.Committed
              ? encodeEntry({ kind: EntryKind.TxnCommit, txn: id, prepareSeq: prepareSeqs[shard]!, committedAtMs: decidedAtMs, shards })
              : encodeEntry({ kind: EntryKind.TxnAbort, txn: id, prepareSeq: prepareSeqs[shard]! });
          // A shard never prepared (the prepare failed before it) has nothing to end.
          const prepared = shards.filter((s) => prepareSeqs[s] !== undefined);
          const seqs = await Promise.all(prepared.map(async (s) => [s, await append(s, marker(s), input.outcome === Outcome.Committed ? "c" : "a")] as const));
          return { markerSeqs: Object.fromEntries(seqs) };
        }),
        release: fromPromise(async () => {
          await this.#locks.release(lockKeys, id);
          await this.records.markDone(id);
        }),
      },
      actions: {
        reportError: (_, params) => this.#deps.log.warn({ txn: id, ...params }, "transaction step failed"),
      },
    });
    const actor = createActor(machine, { input: { txn, timeoutMs: request.timeoutMs } });
    actor.start();
    const output = (await toPromise(actor)) as TransactionOutput;
    return this.#reply(config, output, request, plan, id, startedMs);
  }

  async #reply(config: CollectionConfig, output: TransactionOutput, request: ReturnType<typeof TransactionRequest.parse>, plan: { upserted: number; deleted: number }, id: string, startedMs: number): Promise<TransactionReply> {
    if (output.outcome === InDoubt) throw unavailable(`transaction ${id}: its outcome could not be read; recovery decides it (jade txns get ${id})`);
    if (output.outcome === Outcome.Aborted) throw new JadeError(ErrorCode.Conflict, `transaction ${id} aborted: ${output.reason ?? "no reason given"}`, { details: { txn: id } });
    const replicas = requiredReplicas(request.consistency, config.replicas);
    if (replicas > 0) {
      const remainingMs = Math.max(1, request.timeoutMs - (performance.now() - startedMs));
      await Promise.all(Object.entries(output.markerSeqs).map(([shard, seq]) => this.#deps.tracker.wait(config.name, Number(shard), seq, replicas, remainingMs)));
    }
    return { id, upserted: plan.upserted, deleted: plan.deleted, token: Object.fromEntries(Object.entries(output.markerSeqs).map(([s, seq]) => [String(s), seq])) };
  }

  /** One serving replica's vote; none answering is a no (the transaction aborts). */
  async #vote(config: CollectionConfig, shard: number, txn: string, prepareSeq: number, deadlineAtMs: number): Promise<{ yes: boolean; reason?: string }> {
    const placed = this.#deps.placements.get(config.name)?.record.shards[shard]?.replicas ?? [];
    const live = placed.filter((node) => this.#deps.membership.isLive(node));
    let last = "no replica of the shard is live";
    for (const node of live) {
      const timeoutMs = Math.max(1, deadlineAtMs - Date.now());
      try {
        const reply = await requestReplica<TxnVoteReply>(this.#deps.nats.nc, { node, collection: config.name, shard, op: "vote" }, { uid: config.uid, minSeq: prepareSeq, timeoutMs, vote: { txn } }, timeoutMs);
        return reply.yes ? { yes: true } : { yes: false, reason: reply.reason ?? "voted no" };
      } catch (err) {
        last = err instanceof Error ? err.message : String(err);
      }
    }
    return { yes: false, reason: last };
  }

  /** Transaction entries need every node to read them: the cluster must write log format 2. */
  async #requireFormat(): Promise<void> {
    const entry = await this.#deps.config.get(names.formatsKey);
    const inUse = entry?.operation === "PUT" ? FormatsInUse.safeParse(entry.json()).data : undefined;
    if (!inUse || inUse.log < txnEntryFormat) {
      throw unavailable(`transactions need log format ${txnEntryFormat}; the cluster writes ${inUse?.log ?? "an unknown one"} until every node runs a build that reads ${txnEntryFormat}`);
    }
  }
}
