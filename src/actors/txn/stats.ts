/**
 * What this node's transactions came to, as plain figures: counts by outcome, those running, and
 * the durations of the recent ones. The gateway (service.ts) and recovery (recovery.ts) report
 * here; the heartbeat carries `figures()` to every node's status, the metrics read them at scrape
 * time and observe each duration as it ends (a histogram cannot be rebuilt from totals).
 */
import { TxnOutcome, type TxnFigures } from "../../runtime/status.ts";
import { TxnState } from "../../runtime/txn-schemas.ts";

/** Durations kept for the status's percentiles: enough for a 99th, bounded whatever the rate. */
const recentMax = 1_024;

export type TxnEndListener = (outcome: TxnOutcome, seconds: number) => void;

export class TxnStats {
  #running = 0;
  readonly #ended: Record<TxnOutcome, number> = { committed: 0, conflict: 0, aborted: 0, in_doubt: 0 };
  readonly #recovered = { committed: 0, aborted: 0 };
  /** A ring of the last durations, ms. */
  readonly #recentMs: number[] = [];
  #next = 0;
  readonly #listeners: TxnEndListener[] = [];

  /** A transaction starts on this node's gateway; call the returned function once with how it ended. */
  started(): (outcome: TxnOutcome, ms: number) => void {
    this.#running++;
    let ended = false;
    return (outcome, ms) => {
      if (ended) return;
      ended = true;
      this.#running--;
      this.#ended[outcome]++;
      this.#remember(ms);
      for (const listener of this.#listeners) listener(outcome, ms / 1000);
    };
  }

  /** Recovery on this node finished a transaction from its record. */
  recovered(state: TxnState): void {
    if (state === TxnState.Committed) this.#recovered.committed++;
    else if (state === TxnState.Aborted) this.#recovered.aborted++;
  }

  /** Called with each transaction's outcome and duration as it ends (the metrics' histogram). */
  onEnded(listener: TxnEndListener): void {
    this.#listeners.push(listener);
  }

  figures(): TxnFigures {
    const e = this.#ended;
    return {
      running: this.#running,
      committed: e[TxnOutcome.Committed],
      conflicts: e[TxnOutcome.Conflict],
      aborted: e[TxnOutcome.Aborted],
      inDoubt: e[TxnOutcome.InDoubt],
      recovered: { ...this.#recovered },
      ...(this.#recentMs.length > 0 ? { recentMs: percentiles(this.#recentMs) } : {}),
    };
  }

  #remember(ms: number): void {
    if (this.#recentMs.length < recentMax) this.#recentMs.push(ms);
    else this.#recentMs[this.#next] = ms;
    this.#next = (this.#next + 1) % recentMax;
  }
}

/** Nearest-rank percentiles of a non-empty list. */
function percentiles(values: readonly number[]): { count: number; p50: number; p99: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
  return { count: sorted.length, p50: round(rank(0.5)), p99: round(rank(0.99)) };
}

const round = (ms: number) => Math.round(ms * 10) / 10;
