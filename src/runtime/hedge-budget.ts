/**
 * How many hedged requests may be sent: at most about one per ten reads, over time, with ten
 * saved up (gRPC's retry throttling). When replies are slow because the cluster is overloaded,
 * hedging every read would double its load; a hung node among healthy ones needs few. The
 * client hedges whole reads (client/client.ts), the router each shard's (actors/read/router.ts).
 */
const hedgesSavedMax = 10;
const readsPerHedge = 10;

export class HedgeBudget {
  /** In reads: a hedge costs `readsPerHedge` of them (integers, so ten reads make exactly one). */
  #saved = hedgesSavedMax * readsPerHedge;

  read(): void {
    this.#saved = Math.min(hedgesSavedMax * readsPerHedge, this.#saved + 1);
  }

  /** Spends a hedge if one is saved up. */
  take(): boolean {
    if (this.#saved < readsPerHedge) return false;
    this.#saved -= readsPerHedge;
    return true;
  }
}

/** What a reader's hedging went through (a client's reads, a router's shard reads). */
export interface HedgeStats {
  /** Reads (a retry after a replica or node failed to answer is another). */
  attempts: number;
  /** Reads that asked a second replica or node, the first being slow. */
  hedged: number;
  /** Reads that would have, but the budget had none saved up. */
  hedgesRationed: number;
}

/**
 * A reader's hedging: its budget and its counts. `read()` counts a read; `race` waits on the
 * first request up to `afterMs`, then, with a hedge saved up, sends `hedge()` too and lets
 * `either` pick between the two (the first answer, by the reader's own rule).
 */
export class Hedger {
  readonly #budget = new HedgeBudget();
  readonly #stats: HedgeStats = { attempts: 0, hedged: 0, hedgesRationed: 0 };

  read(): void {
    this.#budget.read();
    this.#stats.attempts++;
  }

  async race<T>(first: Promise<T>, hedge: () => Promise<T>, afterMs: number, either: (first: Promise<T>, second: Promise<T>) => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const due = new Promise<"due">((resolve) => (timer = setTimeout(() => resolve("due"), afterMs)));
    const settled = first.then(
      () => "settled" as const,
      () => "settled" as const,
    );
    if ((await Promise.race([settled, due]).finally(() => clearTimeout(timer))) === "settled") return first;
    if (!this.#budget.take()) {
      this.#stats.hedgesRationed++;
      return first;
    }
    this.#stats.hedged++;
    return either(first, hedge());
  }

  /** The counts so far (a copy). */
  get stats(): HedgeStats {
    return { ...this.#stats };
  }
}
