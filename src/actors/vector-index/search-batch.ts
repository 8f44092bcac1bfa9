/**
 * One message per index worker per tick for searches: every search issued for the shards of
 * one worker before the event loop turns (the shards of one request, and the concurrent
 * requests of the moment) goes in a single comlink call, and each distinct query vector is
 * copied and transferred once. Before, each shard of each request was a call of its own: a
 * comlink round trip (~70–200 µs of main-thread time) per shard per query.
 */
import * as Comlink from "comlink";
import type { ShardHit, ShardSearchItem, ShardSearchOutcome, ShardSearchRequest } from "./api.ts";

interface Pending {
  item: ShardSearchItem;
  resolve: (hits: ShardHit[]) => void;
  reject: (err: unknown) => void;
}

/** Sends one batch to the worker at `position`. */
export type SendBatch = (position: number, items: ShardSearchItem[]) => Promise<ShardSearchOutcome[]>;

export class SearchBatches {
  readonly #send: SendBatch;
  readonly #queues = new Map<number, Pending[]>();

  constructor(send: SendBatch) {
    this.#send = send;
  }

  search(position: number, shardKey: string, request: ShardSearchRequest): Promise<ShardHit[]> {
    return new Promise((resolve, reject) => {
      let queue = this.#queues.get(position);
      if (!queue) {
        this.#queues.set(position, (queue = []));
        setImmediate(() => this.#flush(position));
      }
      queue.push({ item: { shardKey, request }, resolve, reject });
    });
  }

  #flush(position: number): void {
    const batch = this.#queues.get(position) ?? [];
    this.#queues.delete(position);
    const items = transferable(batch.map((p) => p.item));
    this.#send(position, items).then(
      (outcomes) =>
        batch.forEach((pending, i) => {
          const outcome = outcomes[i]!;
          if ("hits" in outcome) pending.resolve(outcome.hits);
          else pending.reject(new Error(outcome.error));
        }),
      (err: unknown) => batch.forEach((pending) => pending.reject(err)),
    );
  }
}

/**
 * The items with each distinct query vector copied once into a buffer of its own, marked for
 * transfer: a view would clone its whole underlying buffer, and the caller's array stays usable.
 */
function transferable(items: ShardSearchItem[]): ShardSearchItem[] {
  const copies = new Map<Float32Array, Float32Array>();
  const out = items.map(({ shardKey, request }) => {
    let vector = copies.get(request.vector);
    if (!vector) copies.set(request.vector, (vector = request.vector.slice()));
    return { shardKey, request: { ...request, vector } };
  });
  return Comlink.transfer(out, [...copies.values()].map((v) => v.buffer));
}
