/**
 * Recovery of transactions left in doubt (decision 013), run by the coordinator: a record not
 * done past its deadline plus a grace is finished from the record alone. `preparing` is aborted
 * by CAS (the gateway's commit CAS then fails, and its client is told so); then the decided
 * outcome's markers are appended on every shard that staged the transaction (deduplicated with
 * the gateway's own by message id), its locks released and the record marked done. A replica
 * holding staged ops never decides itself: a marker must be a log entry. An operator's abort
 * (`jade txns abort`, admin.ts) finishes one at once the same way (`finish`).
 */
import { jetstreamManager, type JetStreamClient } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type { ListedKv } from "../../nats/kv-keys.ts";
import { publishDurable } from "../../nats/streams.ts";
import { errorMessage } from "../../runtime/errors.ts";
import { encodeEntry, EntryKind } from "../../runtime/log-entry.ts";
import type { Logger } from "../../runtime/log.ts";
import { names, subjects } from "../../runtime/subjects.ts";
import { TxnState, type TxnRecord } from "../../runtime/txn-schemas.ts";
import type { Membership } from "../cluster/membership.ts";
import type { PlacementStore } from "../cluster/placement-store.ts";
import { requestReplica, type TxnVoteReply } from "../replica/protocol.ts";
import { LockTable } from "./locks.ts";
import type { TxnRecords } from "./records.ts";
import type { TxnStats } from "./stats.ts";

export interface RecoveryDeps {
  js: JetStreamClient;
  nc: NatsConnection;
  locks: ListedKv;
  records: TxnRecords;
  placements: PlacementStore;
  membership: Membership;
  log: Logger;
  /** How long past its deadline a transaction is left to its gateway. */
  graceMs: number;
  /** Counts what it finishes. */
  stats: TxnStats;
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
        await this.#finish(record, nowMs, "its gateway did not decide it before its deadline");
        finished.push(record.id);
      } catch (err) {
        this.#deps.log.warn({ txn: record.id, err: errorMessage(err) }, "could not finish a transaction in doubt; will retry");
      }
    }
    return finished;
  }

  /**
   * Finishes one transaction now, whatever its deadline (an operator's abort, `jade txns abort`,
   * decides first and then calls this): a `preparing` one is aborted with `reason`, the decided
   * outcome's markers appended, its locks released, its record marked done. Idempotent, and safe
   * beside its gateway or a sweep doing the same. Answers the record afterwards.
   */
  async finish(id: string, reason: string, nowMs = Date.now()): Promise<TxnRecord | undefined> {
    const record = await this.#deps.records.get(id);
    if (record && !record.done) await this.#finish(record, nowMs, reason);
    return this.#deps.records.get(id);
  }

  async #finish(record: TxnRecord, nowMs: number, reason: string): Promise<void> {
    const state = record.state === TxnState.Preparing ? await this.#deps.records.decide(record.id, TxnState.Aborted, { reason }, nowMs) : record.state;
    const decided = (await this.#deps.records.get(record.id)) ?? record;
    const commit = state === TxnState.Committed;
    // A collection dropped (or dropped and made anew) since: its logs, and what they staged, are gone.
    const gone = this.#deps.placements.get(record.collection)?.record.uid !== record.uid;
    for (const shard of gone ? [] : record.shards) {
      const found = decided.prepareSeqs[String(shard)] ?? (await this.#stagedAt(record, shard));
      // No prepare there: nothing to commit; an abort goes all the same, so a prepare still on its way is ignored (txn-sequencer.ts).
      if (found === undefined || (typeof found !== "number" && commit)) continue;
      const prepareSeq = typeof found === "number" ? found : found.logEnd;
      const data = commit
        ? encodeEntry({ kind: EntryKind.TxnCommit, txn: record.id, prepareSeq, committedAtMs: decided.decidedAtMs ?? nowMs, shards: record.shards })
        : encodeEntry({ kind: EntryKind.TxnAbort, txn: record.id, prepareSeq });
      await publishDurable(this.#deps.js, subjects.log(record.collection, shard), data, { msgID: `${record.uid}:${record.id}:${commit ? "c" : "a"}:${shard}`, deadlineMs: replicaAskMs });
    }
    await this.#locks.releaseAll(record.uid, record.id);
    await this.#deps.records.markDone(record.id);
    this.#deps.stats.recovered(state);
    this.#deps.log.info({ txn: record.id, collection: record.collection, outcome: state, reason: decided.reason }, "finished a transaction from its record");
  }

  /**
   * Where a serving replica of the shard holds the transaction staged, or else the log's end
   * (undefined: the collection is gone), for a record whose gateway died before noting its
   * prepares. Asked once the replica has read the whole log as it is now: past the deadline and
   * grace, every prepare the gateway appended is in it, but one still on its way, which the
   * abort then makes void.
   */
  async #stagedAt(record: TxnRecord, shard: number): Promise<number | { logEnd: number } | undefined> {
    const placed = this.#deps.placements.get(record.collection)?.record;
    // The collection is gone (dropped, or recreated): nothing of it to end.
    if (placed?.uid !== record.uid) return undefined;
    const jsm = await jetstreamManager(this.#deps.nc);
    const logEnd = (await jsm.streams.info(names.logStream(record.collection, shard))).state.last_seq;
    for (const node of (placed.shards[shard]?.replicas ?? []).filter((n) => this.#deps.membership.isLive(n))) {
      const reply = await requestReplica<TxnVoteReply>(this.#deps.nc, { node, collection: record.collection, shard, op: "vote" }, { uid: record.uid, minSeq: logEnd, timeoutMs: replicaAskMs, vote: { txn: record.id } }, replicaAskMs).catch(() => undefined);
      if (reply) return reply.outcome === "staged" && reply.prepareSeq !== undefined ? reply.prepareSeq : { logEnd: Math.max(1, logEnd) };
    }
    throw new Error(`no replica of shard ${shard} of ${record.collection} answered`);
  }
}
