/**
 * The transactions' invariants (decision 013).
 *
 * As each transaction entry lands in a log (before anyone reads it): a prepare only once its
 * record exists; a marker only once the record holds its outcome — never a commit before the
 * commit point, never both outcomes for one transaction — and naming the transaction's own
 * prepare on that shard.
 *
 * At quiescence: (1) atomicity over the whole logs: a transaction's markers are all commits or
 * all aborts, as its record decided; (2) every record is done, every prepare that staged has
 * its marker after it, and no lock is held by a finished transaction; (3) what each client was
 * told is what its record holds (in doubt: either); (4) each log replayed through a fresh
 * sequencer leaves nothing staged or held and ends where the log's own reading did, and every
 * replica's sequencer agrees with it on each transaction (snapshots and restores included).
 */
import type { TxnRecord } from "../../src/runtime/txn-schemas.ts";
import { TxnState } from "../../src/runtime/txn-schemas.ts";
import { Outcome } from "../../src/machines/transaction.ts";
import { EntryKind } from "../../src/runtime/log-entry.ts";
import { ShardState, type LogEntry } from "./log.ts";
import type { Simulation } from "./simulator.ts";
import type { TxnRun } from "./txn-gateway.ts";
import { lockOf } from "../../src/actors/txn/locks.ts";

type Marker = "commit" | "abort";

export class TxnChecks {
  /** the outcome of each transaction's markers landed so far */
  private readonly marked = new Map<string, Marker>();

  constructor(
    private readonly sim: Simulation,
    private readonly runs: ReadonlyMap<string, TxnRun>,
  ) {}

  /** A transaction's record as `jade_txns` holds it (read in place: no network, no revision). */
  recordOf(id: string): TxnRecord | undefined {
    for (const key of [`open.${id}`, `done.${id}`]) {
      const e = this.sim.world.txnRecords.get(key);
      if (e?.operation === "PUT") return JSON.parse(e.value!) as TxnRecord;
    }
    return undefined;
  }

  /** An entry a transaction appended, as it lands. */
  landed(shard: number, e: LogEntry): void {
    const w = this.sim.world;
    const { entry } = e;
    if (entry.kind === EntryKind.TxnPrepare) {
      if (!this.recordOf(entry.txn)) w.violate("txn-record-first", `prepare of ${entry.txn} landed on shard ${shard} at ${e.seq} before its record`);
      return;
    }
    if (entry.kind !== EntryKind.TxnCommit && entry.kind !== EntryKind.TxnAbort) return;
    const kind: Marker = entry.kind === EntryKind.TxnCommit ? "commit" : "abort";
    const record = this.recordOf(entry.txn);
    // A commit follows its record's commit. An abort may come with no record (its create never
    // landed, or lands late and recovery aborts it) or one still preparing (the gateway ends what
    // it could not decide); never with a committed one.
    if (kind === "commit" ? record?.state !== TxnState.Committed : record?.state === TxnState.Committed) {
      w.violate("txn-atomicity", `${kind} marker of ${entry.txn} landed on shard ${shard} at ${e.seq} while its record is ${record?.state ?? "missing"}`);
    }
    const before = this.marked.get(entry.txn);
    if (before !== undefined && before !== kind) w.violate("txn-atomicity", `${kind} marker of ${entry.txn} on shard ${shard} after a ${before} marker`);
    this.marked.set(entry.txn, kind);
    // A commit names its prepare; an abort its prepare, or where none was known a sequence at or before itself (log-entry.ts).
    const prepare = w.logs[shard]!.entries[entry.prepareSeq - 1]?.entry;
    const named = prepare?.kind === EntryKind.TxnPrepare && prepare.txn === entry.txn;
    if (kind === "commit" ? !named : entry.prepareSeq > e.seq) {
      w.violate("txn-marker", `${kind} marker of ${entry.txn} on shard ${shard} at ${e.seq} names ${entry.prepareSeq}, not its prepare`);
    }
  }

  /** The end-state invariants, once the cluster and the transactions are quiescent. */
  final(): void {
    const w = this.sim.world;
    const records = new Map<string, TxnRecord>();
    for (const e of w.txnRecords.live()) {
      const record = JSON.parse(e.value!) as TxnRecord;
      if (e.key.startsWith("open.")) w.violate("txn-done", `record of ${record.id} is ${record.state} and not done at quiescence`);
      records.set(record.id, record);
    }
    const markers = new Map<string, Set<Marker>>();
    /** Transactions with a prepare in some log: they must have a record. */
    const prepared = new Set<string>();
    w.logs.forEach((log, shard) => {
      // (4) a fresh reading of the whole log, and what it makes of each transaction
      const replay = new ShardState();
      const staged = new Map<string, number>();
      /** Transactions this shard's log names. */
      const txns = new Set<string>();
      for (const e of log.entries) {
        replay.read(e);
        const { entry } = e;
        if (entry.kind === EntryKind.TxnPrepare) {
          txns.add(entry.txn);
          prepared.add(entry.txn);
          const o = replay.txns.outcome(entry.txn);
          if (o?.outcome === "staged" && o.seq === e.seq) staged.set(entry.txn, e.seq);
        } else if (entry.kind === EntryKind.TxnCommit || entry.kind === EntryKind.TxnAbort) {
          txns.add(entry.txn);
          staged.delete(entry.txn);
          const kinds = markers.get(entry.txn) ?? markers.set(entry.txn, new Set()).get(entry.txn)!;
          kinds.add(entry.kind === EntryKind.TxnCommit ? "commit" : "abort");
        }
      }
      // (2) a prepare that staged has its marker after it
      for (const [txn, seq] of staged) w.violate("txn-marker", `${txn} staged on shard ${shard} at ${seq} has no marker after it (record: ${records.get(txn)?.state ?? "none"})`);
      if (!replay.txns.idle) w.violate("txn-replay", `shard ${shard} replayed holds ${replay.txns.stagedCount} transactions staged, writes held behind them`);
      if (replay.digest !== log.digest) w.violate("txn-replay", `shard ${shard} replayed ends at digest ${replay.digest}, the log read as it grew at ${log.digest}`);
      for (const node of this.sim.nodes) {
        const r = node.up ? node.replicas.get(shard) : undefined;
        if (!r) continue;
        for (const txn of txns) {
          const mine = r.index.txns.outcome(txn);
          const truth = replay.txns.outcome(txn);
          if (mine?.outcome !== truth?.outcome || mine?.seq !== truth?.seq || mine?.vote.yes !== truth?.vote.yes) {
            w.violate("txn-replicas", `${r.name} has ${txn} ${mine?.outcome}@${mine?.seq}, the log ${truth?.outcome}@${truth?.seq}`);
          }
        }
      }
    });
    // (1) atomicity, as the record decided
    for (const [txn, kinds] of markers) {
      const state = records.get(txn)?.state;
      if (kinds.size > 1) w.violate("txn-atomicity", `${txn} has commit and abort markers`);
      else if (kinds.has("commit") && state !== TxnState.Committed) w.violate("txn-atomicity", `${txn} has commit markers, its record is ${state ?? "missing"}`);
      else if (kinds.has("abort") && state !== TxnState.Aborted && (state !== undefined || prepared.has(txn))) w.violate("txn-atomicity", `${txn} has abort markers, its record is ${state ?? "missing"}`);
    }
    // (3) what each client was told
    for (const run of this.runs.values()) {
      const state = records.get(run.id)?.state;
      if (run.told === Outcome.Committed && state !== TxnState.Committed) w.violate("txn-told", `${run.id}: told committed, its record is ${state ?? "missing"}`);
      if (run.told === Outcome.Aborted && (state ? state !== TxnState.Aborted : prepared.has(run.id))) {
        w.violate("txn-told", `${run.id}: told aborted, its record is ${state ?? "missing, yet it is in the logs"}`);
      }
    }
    // (2) no lock left held by a finished transaction (its record done, or it ended without one). A
    // lock taken by a write in flight when it stopped locking only expiry can end; one its gateway
    // heard it took, or one it asked for after it stopped locking, is a leak.
    for (const e of w.locks.live()) {
      const lock = lockOf({ operation: e.operation, json: () => JSON.parse(e.value!) });
      if (!lock || lock.expiresAtMs < w.now()) continue;
      const record = records.get(lock.txn);
      const run = this.runs.get(lock.txn);
      if (record ? !record.done : run?.endedAt === undefined) continue;
      // Every try of its release failed (KV out of reach for all of them): by design, only the lock's expiry ends it.
      if (run && !run.released && !record) continue;
      const late = run?.lockingEndedAt !== undefined && e.sentAt > run.lockingEndedAt;
      if (e.acked || late) {
        w.violate("txn-locks", `${e.key} is held by ${lock.txn}, finished (${record ? `record ${record.state}` : "no record"}): ${late ? `asked for at ${e.sentAt}, after it stopped locking at ${run.lockingEndedAt}` : "taken, and never released"}`);
      }
    }
  }
}
