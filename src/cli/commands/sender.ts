/**
 * Batched, bounded-concurrency upserts for `upsert` and `import`.
 *
 * Points arrive already JSON-encoded (each is encoded once); a batch is sent
 * when it holds `batch` points or when one more point would push the request
 * past the connection's max payload. Each batch carries a `requestId`, so a
 * batch retried after a retryable error (unavailable, timeout, rate_limited)
 * is applied once (the shard logs deduplicate by it).
 */
import { randomUUID } from "node:crypto";
import type { JadeClient } from "../../client/client.ts";
import { ErrorCode, JadeError } from "../../runtime/errors.ts";
import type { WriteConsistency } from "../../runtime/schemas.ts";
import { subjects } from "../../runtime/subjects.ts";
import { unwrap } from "./shared.ts";
import { delay } from "../../runtime/async.ts";

export interface SenderOptions {
  collection: string;
  batch: number;
  concurrency: number;
  consistency: WriteConsistency;
  /** Called after each acknowledged batch with its number of points and its `weight` (e.g. bytes read). */
  onAck?: (points: number, weight: number) => void;
  retries?: number;
}

/** Room kept in a request for the envelope (`{"points":[…],"consistency":…,"requestId":…}`). */
const envelopeBytes = 256;

export class BatchSender {
  readonly #client: JadeClient;
  readonly #options: SenderOptions;
  readonly #maxBytes: number;
  readonly #runId = randomUUID();
  readonly #inflight = new Set<Promise<void>>();
  #points: string[] = [];
  #bytes = 0;
  #weight = 0;
  #batches = 0;
  #failure: unknown;
  /** Points sent / acknowledged so far. */
  sent = 0;
  acked = 0;
  /** The merged session token of every acknowledged batch (highest sequence per shard). */
  readonly token: Record<string, number> = {};

  /** Requests sent so far. */
  get batches(): number {
    return this.#batches;
  }

  constructor(client: JadeClient, options: SenderOptions) {
    this.#client = client;
    this.#options = options;
    this.#maxBytes = (client.nc.info?.max_payload ?? 1024 * 1024) - envelopeBytes;
  }

  /** Queues one JSON-encoded point; waits while `concurrency` batches are in flight. Throws the first batch failure. */
  async add(pointJson: string, weight = 0): Promise<void> {
    this.#throwIfFailed();
    const bytes = Buffer.byteLength(pointJson) + 1;
    if (bytes > this.#maxBytes) {
      throw new JadeError(ErrorCode.PayloadTooLarge, `a point of ${bytes} bytes does not fit in one request (max ${this.#maxBytes})`);
    }
    if (this.#points.length > 0 && this.#bytes + bytes > this.#maxBytes) await this.#flush();
    this.#points.push(pointJson);
    this.#bytes += bytes;
    this.#weight += weight;
    if (this.#points.length >= this.#options.batch) await this.#flush();
  }

  /** Adds weight (e.g. bytes of skipped lines) that is reported with the next acknowledged batch. */
  addWeight(weight: number): void {
    this.#weight += weight;
  }

  /** Sends what is queued and waits for every batch; throws the first failure. */
  async finish(): Promise<void> {
    if (this.#points.length > 0 || this.#weight > 0) await this.#flush();
    await Promise.all(this.#inflight);
    this.#throwIfFailed();
  }

  /** Waits for the batches in flight without sending more (after an error elsewhere). */
  async abandon(): Promise<void> {
    this.#points = [];
    await Promise.all(this.#inflight);
  }

  #throwIfFailed(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }

  async #flush(): Promise<void> {
    const points = this.#points;
    const weight = this.#weight;
    this.#points = [];
    this.#bytes = 0;
    this.#weight = 0;
    if (points.length === 0) {
      this.#options.onAck?.(0, weight);
      return;
    }
    while (this.#inflight.size >= this.#options.concurrency) await Promise.race(this.#inflight);
    this.#throwIfFailed();
    const requestId = `${this.#runId}-${this.#batches++}`;
    const body = `{"points":[${points.join(",")}],"consistency":${JSON.stringify(this.#options.consistency)},"requestId":${JSON.stringify(requestId)}}`;
    this.sent += points.length;
    const task = this.#send(body)
      .then((token) => {
        for (const [shard, seq] of Object.entries(token)) this.token[shard] = Math.max(this.token[shard] ?? 0, seq);
        this.acked += points.length;
        this.#options.onAck?.(points.length, weight);
      })
      .catch((err: unknown) => {
        this.#failure ??= err;
      })
      .finally(() => this.#inflight.delete(task));
    this.#inflight.add(task);
  }

  async #send(body: string): Promise<Record<string, number>> {
    const subject = subjects.collection(this.#options.collection, "upsert");
    const retries = this.#options.retries ?? 3;
    for (let attempt = 0; ; attempt++) {
      try {
        return unwrap<{ token: Record<string, number> }>(await this.#client.requestRaw(subject, body)).token;
      } catch (err) {
        if (!(err instanceof JadeError) || !err.retryable || attempt >= retries) throw err;
        await delay(250 * 2 ** attempt);
      }
    }
  }
}
