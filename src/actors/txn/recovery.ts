/**
 * Recovery of transactions left in doubt (decision 013), run by the coordinator: a record not
 * done past its deadline plus a grace is finished from the record alone. `preparing` is aborted
 * by CAS (the gateway's commit CAS then fails, and its client is told so); then the decided
 * outcome's markers are appended on every shard that staged the transaction (deduplicated with
 * the gateway's own by message id), its locks released and the record marked done. A replica
 * holding staged ops never decides itself: a marker must be a log entry.
 */
import type { JetStreamClient } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { publishDurable } from "../../nats/streams.ts";
import { errorMessage } from "../../runtime/errors.ts";
import { encodeEntry, EntryKind } from "../../runtime/log-entry.ts";
import type { Logger } from "../../runtime/log.ts";
import { subjects } from "../../runtime/subjects.ts";
import { TxnState, type TxnRecord } from "../../runtime/txn-schemas.ts";
import type { Membership } from "../cluster/membership.ts";
import type { PlacementStore } from "../cluster/placement-store.ts";
import { requestReplica, type TxnVoteReply } from "../replica/protocol.ts";
import { LockTable } from "./locks.ts";
import type { TxnRecords } from "./records.ts";

export interface RecoveryDeps {
  js: JetStreamClient;
  nc: NatsConnection;
  locks: KV;
  records: TxnRecords;
  placements: PlacementStore;
  membership: Membership;
  log: Logger;
  /** How long past its deadline a transaction is left to its gateway. */
  graceMs: number;
}

/** How long recovery waits for a replica to say where a shard's prepare is. */
const replicaAskMs = 5_000;

export class TxnRecovery {
  readonly #deps: RecoveryDeps;
  readonly #locks: LockTable;

  constructor(deps: RecoveryDeps) {
    this.#deps = deps;
    this.#locks = new LockTable(deps.locks);
  }

  /** Finishes every transaction left past its deadline and grace; returns their ids. */
  async sweep(nowMs = Date.now()): Promise<string[]> {
    const finished: string[] = [];
    for (const record of await this.#deps.records.open()) {
      if (record.done || nowMs <= record.deadlineAtMs + this.#deps.graceMs) continue;
      try {
        await this.#finish(record, nowMs);
        finished.push(record.id);
      } catch (err) {
        this.#deps.log.warn({ txn: record.id, err: errorMessage(err) }, "could not finish a transaction in doubt; will retry");
      }
    }
    return finished;
  }

  async #finish(record: TxnRecord, nowMs: number): Promise<void> {
    const state = record.state === TxnState.Preparing ? await this.#deps.records.decide(record.id, TxnState.Aborted, { reason: "its gateway did not decide it before its deadline" }, nowMs) : record.state;
    const decided = (await this.#deps.records.get(record.id)) ?? record;
    const commit = state === TxnState.Committed;
    for (const shard of record.shards) {
      const prepareSeq = decided.prepareSeqs[String(shard)] ?? (await this.#stagedAt(record, shard));
      // Never staged on that shard: nothing to end there.
      if (prepareSeq === undefined) continue;
      const data = commit
        ? encodeEntry({ kind: EntryKind.TxnCommit, txn: record.id, prepareSeq, committedAtMs: decided.decidedAtMs ?? nowMs, shards: record.shards })
        : encodeEntry({ kind: EntryKind.TxnAbort, txn: record.id, prepareSeq });
      await publishDurable(this.#deps.js, subjects.log(record.collection, shard), data, { msgID: `${record.uid}:${record.id}:${commit ? "c" : "a"}:${shard}`, deadlineMs: replicaAskMs });
    }
    await this.#locks.releaseAll(record.uid, record.id);
    await this.#deps.records.markDone(record.id);
    this.#deps.log.info({ txn: record.id, collection: record.collection, outcome: state }, "finished a transaction its gateway left in doubt");
  }

  /** Where a serving replica of the shard holds the transaction staged, if it does. */
  async #stagedAt(record: TxnRecord, shard: number): Promise<number | undefined> {
    const placed = this.#deps.placements.get(record.collection)?.record;
    if (placed?.uid !== record.uid) return undefined;
    for (const node of (placed.shards[shard]?.replicas ?? []).filter((n) => this.#deps.membership.isLive(n))) {
      const reply = await requestReplica<TxnVoteReply>(this.#deps.nc, { node, collection: record.collection, shard, op: "vote" }, { uid: record.uid, minSeq: 0, timeoutMs: replicaAskMs, vote: { txn: record.id } }, replicaAskMs).catch(() => undefined);
      if (reply) return reply.outcome === "staged" ? reply.prepareSeq : undefined;
    }
    throw new Error(`no replica of shard ${shard} of ${record.collection} answered`);
  }
}
