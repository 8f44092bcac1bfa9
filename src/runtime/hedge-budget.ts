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
