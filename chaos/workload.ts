/**
 * The workload that runs throughout a chaos run, through a JadeClient connected
 * to every NATS server directly (never through the fault proxies):
 *   - one writer loop per collection, one operation at a time (so no two writes on
 *     one id ever race): upserts of 1–8 ids (consistency `log`, a requestId per
 *     batch) and deletes of 1–4 ids, drawn from a fixed id pool so ids are
 *     re-upserted and deleted many times;
 *   - a failed write is retried with the SAME requestId (JetStream dedups it) until
 *     acknowledged, within a bound; one never acknowledged is "indeterminate": it may
 *     or may not have been applied, at any time later (a hung node may still hold it);
 *   - a search loop (k = 5, timeoutMs) over the collections, recording answered /
 *     partial / error and `hung` = took longer than timeoutMs + 2 s.
 * Every upsert of (id, version) writes payload {v: version} and a vector derived
 * deterministically from (collection, id, version), so a read can tell which write it sees.
 */
import type { JadeClient } from "../src/client/client.ts";
import { fnv1a32, now, seededRandom, delay, withTimeout } from "./util.ts";
import { errorMessage } from "../src/runtime/errors.ts";

export type IdState = { kind: "live"; version: number } | { kind: "deleted" };

export interface IdHistory {
  /** The state after the last acknowledged write of this id (undefined: none acknowledged). */
  acked: IdState | undefined;
  ackedAt: number | undefined;
  /** States of writes never acknowledged: each may have been applied, at any time. */
  indeterminate: IdState[];
}

export interface CollectionSpec {
  name: string;
  replicas: number;
  shards: number;
  dimension: number;
  idPool: number;
}

export interface SearchRecord {
  collection: string;
  startedAt: number;
  endedAt: number;
  outcome: "answered" | "partial" | "error";
  hung: boolean;
  /** partial: shards answered/total; error: the error. */
  detail?: string;
}

export interface WorkloadOptions {
  collections: CollectionSpec[];
  seed: number;
  searchTimeoutMs: number;
  /** Pause between two writes of one writer loop. */
  writeIntervalMs: number;
  /** Pause between two searches. */
  searchIntervalMs: number;
  /** Write attempts (same requestId) before the write is declared indeterminate. */
  writeAttempts: number;
  writeTimeoutMs: number;
  /** Hard bounds on every loop. */
  maxOps: number;
  maxDurationMs: number;
}

export const hungMarginMs = 2_000;
const writeFailuresKeptMax = 10_000;

export function vectorOf(collection: string, id: string, version: number, dimension: number): number[] {
  const random = seededRandom(fnv1a32(`${collection}/${id}/${version}`));
  return Array.from({ length: dimension }, () => Math.fround(random() * 2 - 1));
}

export class Workload {
  readonly options: WorkloadOptions;
  readonly #client: JadeClient;
  readonly histories = new Map<string, Map<string, IdHistory>>();
  readonly searches: SearchRecord[] = [];
  readonly writes = { upsertsAcked: 0, deletesAcked: 0, pointsUpsertedAcked: 0, idsDeletedAcked: 0, attemptsFailed: 0, indeterminate: 0, retriedThenAcked: 0 };
  readonly writeErrors = new Map<string, number>();
  /** Every failed write attempt, when it failed (the first 10,000): a scenario may promise none in its window. */
  readonly writeFailures: { at: number; collection: string; code: string }[] = [];
  #stopping = false;
  #loops: Promise<void>[] = [];
  #startedAt = 0;

  constructor(client: JadeClient, options: WorkloadOptions) {
    this.#client = client;
    this.options = options;
    for (const c of options.collections) this.histories.set(c.name, new Map());
  }

  async setup(): Promise<void> {
    for (const c of this.options.collections) {
      await this.#client.createCollection({ name: c.name, dimension: c.dimension, metric: "l2", shards: c.shards, replicas: c.replicas });
    }
  }

  start(): void {
    this.#startedAt = performance.now();
    this.#loops = [
      ...this.options.collections.map((c, i) => this.#writer(c, this.options.seed * 31 + i)),
      this.#searcher(this.options.seed * 17 + 5),
    ];
  }

  /** Stops the loops; a write being retried finishes its retries first (bounded). */
  async stop(): Promise<void> {
    this.#stopping = true;
    const bound = this.options.writeAttempts * (this.options.writeTimeoutMs + 3_000) + 10_000;
    await withTimeout(Promise.all(this.#loops), bound, "workload stop").catch(() => undefined);
  }

  #running(ops: number): boolean {
    return !this.#stopping && ops < this.options.maxOps && performance.now() - this.#startedAt < this.options.maxDurationMs;
  }

  #history(collection: string, id: string): IdHistory {
    const map = this.histories.get(collection)!;
    let h = map.get(id);
    if (!h) {
      h = { acked: undefined, ackedAt: undefined, indeterminate: [] };
      map.set(id, h);
    }
    return h;
  }

  async #writer(spec: CollectionSpec, seed: number): Promise<void> {
    const random = seededRandom(seed);
    const pick = (n: number) => {
      const ids = new Set<string>();
      for (let i = 0; i < n; i++) ids.add(`p${Math.floor(random() * spec.idPool)}`);
      return [...ids];
    };
    let version = 0;
    for (let op = 0; this.#running(op); op++) {
      if (random() < 0.75) {
        const ids = pick(1 + Math.floor(random() * 8));
        const points = ids.map((id) => {
          version++;
          return { id, version, vector: vectorOf(spec.name, id, version, spec.dimension) };
        });
        const acked = await this.#write(spec.name, `u${op}`, (requestId) =>
          this.#client.upsert(spec.name, {
            points: points.map((p) => ({ id: p.id, vector: p.vector, payload: { v: p.version } })),
            consistency: "log",
            requestId,
            timeoutMs: this.options.writeTimeoutMs,
          }),
        );
        for (const p of points) this.#record(spec.name, p.id, { kind: "live", version: p.version }, acked);
        if (acked) {
          this.writes.upsertsAcked++;
          this.writes.pointsUpsertedAcked += points.length;
        }
      } else {
        const ids = pick(1 + Math.floor(random() * 4));
        const acked = await this.#write(spec.name, `d${op}`, (requestId) =>
          this.#client.delete(spec.name, { ids, consistency: "log", requestId, timeoutMs: this.options.writeTimeoutMs }),
        );
        for (const id of ids) this.#record(spec.name, id, { kind: "deleted" }, acked);
        if (acked) {
          this.writes.deletesAcked++;
          this.writes.idsDeletedAcked += ids.length;
        }
      }
      await delay(this.options.writeIntervalMs);
    }
  }

  #record(collection: string, id: string, state: IdState, acked: number | undefined): void {
    const h = this.#history(collection, id);
    if (acked === undefined) h.indeterminate.push(state);
    else {
      h.acked = state;
      h.ackedAt = acked;
    }
  }

  /** Sends one write, retrying it with the same requestId; resolves to the ack time, or undefined. */
  async #write(collection: string, tag: string, send: (requestId: string) => Promise<unknown>): Promise<number | undefined> {
    const requestId = `chaos-${this.options.seed}-${collection}-${tag}`;
    for (let attempt = 1; attempt <= this.options.writeAttempts; attempt++) {
      try {
        await withTimeout(send(requestId), this.options.writeTimeoutMs + 5_000, `write ${requestId}`);
        if (attempt > 1) this.writes.retriedThenAcked++;
        return now();
      } catch (err) {
        this.writes.attemptsFailed++;
        const code = (err as { code?: string }).code ?? errorMessage(err).slice(0, 40);
        this.writeErrors.set(code, (this.writeErrors.get(code) ?? 0) + 1);
        if (this.writeFailures.length < writeFailuresKeptMax) this.writeFailures.push({ at: now(), collection, code });
        await delay(Math.min(500 * attempt, 3_000));
      }
    }
    this.writes.indeterminate++;
    return undefined;
  }

  async #searcher(seed: number): Promise<void> {
    const random = seededRandom(seed);
    const { searchTimeoutMs } = this.options;
    for (let op = 0; this.#running(op); op++) {
      const spec = this.options.collections[op % this.options.collections.length]!;
      const vector = Array.from({ length: spec.dimension }, () => random() * 2 - 1);
      const startedAt = now();
      let outcome: SearchRecord["outcome"];
      let detail: string | undefined;
      try {
        // A guard well past the hung threshold, so this loop itself can never hang.
        const result = await withTimeout(
          this.#client.search(spec.name, { vector, k: 5, timeoutMs: searchTimeoutMs }),
          60_000,
          "search guard",
        );
        outcome = result.partial ? "partial" : "answered";
        if (result.partial) detail = `partial ${result.shards.answered}/${result.shards.total}`;
      } catch (err) {
        outcome = "error";
        detail = `${(err as { code?: string }).code ?? "error"}: ${errorMessage(err)}`.slice(0, 200);
      }
      const endedAt = now();
      const hung = endedAt - startedAt > searchTimeoutMs + hungMarginMs;
      this.searches.push({ collection: spec.name, startedAt, endedAt, outcome, hung, ...(detail ? { detail } : {}) });
      await delay(this.options.searchIntervalMs);
    }
  }

  searchCounts() {
    const counts = { answered: 0, partial: 0, errors: 0, hung: 0, maxLatencyMs: 0 };
    for (const s of this.searches) {
      if (s.outcome === "answered") counts.answered++;
      else if (s.outcome === "partial") counts.partial++;
      else counts.errors++;
      if (s.hung) counts.hung++;
      counts.maxLatencyMs = Math.max(counts.maxLatencyMs, Math.round(s.endedAt - s.startedAt));
    }
    // The client's reads of every kind (searches, gets, counts, transactional reads): a slow search with no hedge sent is told apart from one whose hedge was slow too.
    return { ...counts, client_reads: this.#client.readStats };
  }
}
