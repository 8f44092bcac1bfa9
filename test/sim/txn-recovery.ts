/**
 * Transaction recovery on the leader (src/actors/txn/recovery.ts, step for step, run as the
 * coordinator runs it: every reconcile interval, one sweep at a time, for as long as the term
 * lasts). A record not done past its deadline and grace is finished from the record alone:
 * `preparing` is aborted by CAS; then the decided outcome's markers are appended: a commit on
 * every shard that staged it (where the record noted its prepare, else where a live replica
 * holds it staged), an abort on every shard; deduplicated with the gateway's own by message id;
 * its locks are released and the record marked done. (The collection is never dropped here.)
 */
import type { TxnRecord } from "../../src/runtime/txn-schemas.ts";
import { TxnState } from "../../src/runtime/txn-schemas.ts";
import { errorMessage } from "../../src/runtime/errors.ts";
import { encodeEntry, EntryKind } from "../../src/runtime/log-entry.ts";
import { TIMING, TXN } from "./config.ts";
import type { TxnHost } from "./txn-gateway.ts";

const reason = "its gateway did not decide it before its deadline";

/** Sweeps until the returned stop is called (the term ends); a sweep in flight runs on, as the real one does. */
export function runRecovery(host: TxnHost): () => void {
  const w = host.txns.w;
  let sweeping = false;
  const tick = () => {
    if (!sweeping) {
      sweeping = true;
      void sweep(host, w.now())
        .catch((err: unknown) => w.log(`${host.ep.name} transaction recovery failed: ${errorMessage(err)}`))
        .finally(() => (sweeping = false));
    }
    timer = w.later(tick, TIMING.reconcileEveryMs);
  };
  let timer = w.later(tick, TIMING.reconcileEveryMs);
  return () => w.cancel(timer);
}

async function sweep(host: TxnHost, nowMs: number): Promise<void> {
  for (const record of await host.records.open()) {
    if (record.done || nowMs <= record.deadlineAtMs + TXN.recoveryGraceMs) continue;
    try {
      await finish(host, record, nowMs);
    } catch (err) {
      host.txns.w.log(`${host.ep.name} could not finish ${record.id}: ${errorMessage(err)}`);
    }
  }
}

async function finish(host: TxnHost, record: TxnRecord, nowMs: number): Promise<void> {
  const { records } = host;
  const state = record.state === TxnState.Preparing ? await records.decide(record.id, TxnState.Aborted, { reason }, nowMs) : record.state;
  const decided = (await records.get(record.id)) ?? record;
  const commit = state === TxnState.Committed || host.txns.sim.options.broken?.txnRecoveryCommits === true;
  for (const shard of record.shards) {
    const found = decided.prepareSeqs[String(shard)] ?? (await stagedAt(host, record, shard));
    // No prepare there: nothing to commit; an abort goes all the same, so a prepare still on its way is void.
    if (typeof found !== "number" && commit) continue;
    const prepareSeq = typeof found === "number" ? found : found.logEnd;
    const data = commit
      ? encodeEntry({ kind: EntryKind.TxnCommit, txn: record.id, prepareSeq, committedAtMs: decided.decidedAtMs ?? nowMs, shards: record.shards })
      : encodeEntry({ kind: EntryKind.TxnAbort, txn: record.id, prepareSeq });
    await host.txns.publish(host.ep, shard, data, `${record.uid}:${record.id}:${commit ? "c" : "a"}:${shard}`, TXN.recoveryAskMs);
  }
  await host.locks.releaseAll(record.uid, record.id);
  await records.markDone(record.id);
  host.txns.w.log(`${host.ep.name} recovery finished ${record.id}: ${state}`);
}

/** Where a live replica of the shard holds the transaction staged, or else the log's end (asked of the log as it is now). */
async function stagedAt(host: TxnHost, record: TxnRecord, shard: number): Promise<number | { logEnd: number }> {
  const logEnd = Math.max(1, host.txns.w.logs[shard]!.lastSeq);
  const reply = await host.askReplicas(shard, record.id, () => TXN.recoveryAskMs).catch(() => undefined);
  if (!reply) throw new Error(`no replica of shard ${shard} of ${record.collection} answered`);
  return reply.outcome === "staged" && reply.prepareSeq !== undefined ? reply.prepareSeq : { logEnd };
}
