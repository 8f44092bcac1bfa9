/**
 * Batched, bounded-concurrency upserts for `upsert` and `import`.
 *
 * Points are packed into columns (ids, one float32 block of vectors, payloads) and sent in
 * msgpack (runtime/encoding.ts): no vector is printed as text. A batch is sent when it holds
 * `batch` points or when one more point would push the request past the connection's max
 * payload. Each batch carries a `requestId`, so a batch retried after a retryable error
 * (unavailable, timeout, rate_limited: the server pacing a writer faster than its index) is
 * applied once (the shard logs deduplicate by it).
 */
import { randomUUID } from "node:crypto";
import type { JadeClient } from "../../client/client.ts";
import { ColumnsBuilder } from "../../runtime/columns.ts";
import { ErrorCode, JadeError } from "../../runtime/errors.ts";
import type { Payload, WriteConsistency } from "../../runtime/schemas.ts";
import { delay } from "../../runtime/async.ts";
import type { CheckedPoint } from "./points.ts";

export interface SenderOptions {
  collection: string;
  dimension: number;
  batch: number;
  concurrency: number;
  consistency: WriteConsistency;
  /** Called after each acknowledged batch with its number of points and its `weight` (e.g. bytes read). */
  onAck?: (points: number, weight: number) => void;
  retries?: number;
}

/** Room kept in a request for the envelope and msgpack's framing. */
const envelopeBytes = 1024;
/** A retryable refusal (the server pacing us) is retried after 250 ms, doubling. */
const retryDelayMsInitial = 250;
const retriesDefault = 8;

export class BatchSender {
  readonly #client: JadeClient;
  readonly #options: SenderOptions;
  readonly #maxBytes: number;
  readonly #runId = randomUUID();
  readonly #inflight = new Set<Promise<void>>();
  #points: ColumnsBuilder;
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
    this.#points = this.#newBatch();
  }

  /** Queues one checked point; waits while `concurrency` batches are in flight. Throws the first batch failure. */
  add(point: CheckedPoint, weight = 0): Promise<void> {
    return this.#queue(point.id, point.vector, 0, point.payload, pointBytes(point), weight);
  }

  /** Queues the checked point `id` without a payload whose vector is `values[offset … offset + dimension)`, as `add`. */
  addRow(id: string, values: Float32Array, offset: number): Promise<void> {
    return this.#queue(id, values, offset, undefined, idBytes(id) + this.#options.dimension * 4 + 1, 0);
  }

  async #queue(id: string, values: Float32Array, offset: number, payload: Payload | undefined, bytes: number, weight: number): Promise<void> {
    this.#throwIfFailed();
    if (bytes > this.#maxBytes) {
      throw new JadeError(ErrorCode.PayloadTooLarge, `a point of ${bytes} bytes does not fit in one request (max ${this.#maxBytes})`);
    }
    if (this.#points.length > 0 && this.#bytes + bytes > this.#maxBytes) await this.#flush();
    this.#points.add(id, values, offset, payload);
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
    this.#points = this.#newBatch();
    await Promise.all(this.#inflight);
  }

  #newBatch(): ColumnsBuilder {
    return new ColumnsBuilder(this.#options.dimension, this.#options.batch);
  }

  #throwIfFailed(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }

  async #flush(): Promise<void> {
    const points = this.#points.build();
    const weight = this.#weight;
    this.#points = this.#newBatch();
    this.#bytes = 0;
    this.#weight = 0;
    const count = points.ids.length;
    if (count === 0) {
      this.#options.onAck?.(0, weight);
      return;
    }
    while (this.#inflight.size >= this.#options.concurrency) await Promise.race(this.#inflight);
    this.#throwIfFailed();
    const requestId = `${this.#runId}-${this.#batches++}`;
    this.sent += count;
    const send = () =>
      this.#client.upsertColumns(this.#options.collection, { ...points, consistency: this.#options.consistency, requestId });
    const task = this.#retrying(send)
      .then(({ token }) => {
        for (const [shard, seq] of Object.entries(token)) this.token[shard] = Math.max(this.token[shard] ?? 0, seq);
        this.acked += count;
        this.#options.onAck?.(count, weight);
      })
      .catch((err: unknown) => {
        this.#failure ??= err;
      })
      .finally(() => this.#inflight.delete(task));
    this.#inflight.add(task);
  }

  async #retrying<T>(send: () => Promise<T>): Promise<T> {
    const retries = this.#options.retries ?? retriesDefault;
    for (let attempt = 0; ; attempt++) {
      try {
        return await send();
      } catch (err) {
        if (!(err instanceof JadeError) || !err.retryable || attempt >= retries) throw err;
        await delay(retryDelayMsInitial * 2 ** attempt);
      }
    }
  }
}

/** What a point adds to a request: its id, its float32 values and its payload's JSON (an upper bound of its msgpack). */
function pointBytes(point: CheckedPoint): number {
  return idBytes(point.id) + point.vector.length * 4 + (point.payload === undefined ? 1 : Buffer.byteLength(JSON.stringify(point.payload)) + 1);
}

/** An id in msgpack: its UTF-8 bytes and at most 5 of framing. */
function idBytes(id: string): number {
  return Buffer.byteLength(id) + 5;
}
