/**
 * What a shard's reads see of transactions (decision 013, "Reads"): the transactions it holds
 * staged, each with how long it has held it (its own clock), and those it committed within the
 * read window. The router (read/txn-reads.ts) makes a read see all of each or none from these.
 */
import { limits } from "../../runtime/limits.ts";
import { EntryKind, type LogEntry } from "../../runtime/log-entry.ts";
import type { TxnSequencer } from "../../runtime/txn-sequencer.ts";
import type { TxnReadView } from "./api.ts";

export class TxnViews {
  readonly #txns: TxnSequencer;
  /** Staged transaction → when this shard read its prepare (a restore's time for those a snapshot held). */
  readonly #stagedAtMs = new Map<string, number>();

  constructor(txns: TxnSequencer) {
    this.#txns = txns;
  }

  /** After the sequencer read `entry`: a prepare it staged starts its clock, a marker ends it. */
  read(entry: LogEntry, nowMs = Date.now()): void {
    if (entry.kind === EntryKind.TxnPrepare && this.#txns.outcome(entry.txn)?.outcome === "staged") this.#stagedAtMs.set(entry.txn, nowMs);
    else if (entry.kind === EntryKind.TxnCommit || entry.kind === EntryKind.TxnAbort) this.#stagedAtMs.delete(entry.txn);
  }

  /** The view for a read now; undefined when there is nothing to name, so plain reads carry nothing. */
  now(nowMs = Date.now()): TxnReadView | undefined {
    const committed = this.#txns.recentCommits(nowMs - limits.txnReadWindowMs, limits.txnReadReportMax);
    if (this.#stagedAtMs.size !== this.#txns.stagedCount) this.#resync(nowMs);
    if (committed.length === 0 && this.#stagedAtMs.size === 0) return undefined;
    const staged: TxnReadView["staged"] = [];
    for (const [txn, atMs] of this.#stagedAtMs) {
      if (staged.length >= limits.txnReadReportMax) break;
      staged.push(nowMs - atMs >= limits.txnStagedStaleMs ? { txn, stale: true } : { txn });
    }
    return { staged, committed };
  }

  /** Back to the staged transactions after a restore replaced them. */
  #resync(nowMs: number): void {
    const staged = new Set(this.#txns.staged().map((t) => t.txn));
    for (const txn of this.#stagedAtMs.keys()) if (!staged.has(txn)) this.#stagedAtMs.delete(txn);
    for (const txn of staged) if (!this.#stagedAtMs.has(txn)) this.#stagedAtMs.set(txn, nowMs);
  }
}
