/**
 * The search lane of the index workers: one message per worker per tick. Every search issued
 * for the shards of one worker before the event loop turns (the shards of one request, and
 * the concurrent requests of the moment) goes in a single message, each distinct query vector
 * copied and transferred once. Before, each shard of each request was a comlink call of its
 * own.
 *
 * Searches travel on a MessagePort of their own rather than through comlink (which carries
 * every other call): measured on this machine, a comlink round trip cost 90–106 µs of main
 * thread time where a bare postMessage pair cost 61–64 µs, on every query's critical path.
 */
import { receiveMessageOnPort, type MessagePort } from "node:worker_threads";
import { urgent } from "../../runtime/async.ts";
import type { ShardHit, ShardRead, ShardSearchItem, ShardSearchOutcome, ShardSearchRequest } from "./api.ts";

interface Pending {
  item: ShardSearchItem;
  resolve: (read: ShardRead<ShardHit[]>) => void;
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

  search(position: number, shardKey: string, request: ShardSearchRequest): Promise<ShardRead<ShardHit[]>> {
    return new Promise((resolve, reject) => {
      let queue = this.#queues.get(position);
      if (!queue) {
        this.#queues.set(position, (queue = []));
        // In the check phase with the turn's other searches, ahead of a bulk write (TurnQueue).
        urgent(() => this.#flush(position));
      }
      queue.push({ item: { shardKey, request }, resolve, reject });
    });
  }

  #flush(position: number): void {
    const batch = this.#queues.get(position) ?? [];
    this.#queues.delete(position);
    this.#send(position, batch.map((p) => p.item)).then(
      (outcomes) =>
        batch.forEach((pending, i) => {
          const outcome = outcomes[i]!;
          if ("hits" in outcome) pending.resolve(outcome.txns ? { value: outcome.hits, txns: outcome.txns } : { value: outcome.hits });
          else pending.reject(new Error(outcome.error));
        }),
      (err: unknown) => batch.forEach((pending) => pending.reject(err)),
    );
  }
}

/**
 * The items with each distinct query vector copied once into a buffer of its own, and those
 * buffers to transfer: a view would clone its whole underlying buffer, and the caller's array
 * stays usable.
 */
function transferable(items: ShardSearchItem[]): { items: ShardSearchItem[]; buffers: ArrayBuffer[] } {
  const copies = new Map<Float32Array, Float32Array>();
  const out = items.map(({ shardKey, request }) => {
    let vector = copies.get(request.vector);
    if (!vector) copies.set(request.vector, (vector = request.vector.slice()));
    return { shardKey, request: { ...request, vector } };
  });
  return { items: out, buffers: [...copies.values()].map((v) => v.buffer as ArrayBuffer) };
}

interface LaneRequest {
  id: number;
  items: ShardSearchItem[];
}

interface LaneReply {
  id: number;
  outcomes: ShardSearchOutcome[];
}

/** The pool's end of one worker's search lane. */
export class SearchLane {
  readonly #port: MessagePort;
  readonly #pending = new Map<number, { resolve: (outcomes: ShardSearchOutcome[]) => void; reject: (err: Error) => void }>();
  #next = 0;
  #closed: Error | undefined;

  constructor(port: MessagePort) {
    this.#port = port;
    port.on("message", (reply: LaneReply) => {
      const pending = this.#pending.get(reply.id);
      this.#pending.delete(reply.id);
      pending?.resolve(reply.outcomes);
    });
    // Not a reason to keep the process alive: the worker is.
    port.unref();
  }

  send(batch: ShardSearchItem[]): Promise<ShardSearchOutcome[]> {
    if (this.#closed) return Promise.reject(this.#closed);
    const { items, buffers } = transferable(batch);
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#port.postMessage({ id, items } satisfies LaneRequest, buffers);
    });
  }

  /** The worker is gone: every search in flight and every later one fails with `err`. */
  close(err: Error): void {
    this.#closed = err;
    for (const { reject } of this.#pending.values()) reject(err);
    this.#pending.clear();
    this.#port.close();
  }
}

/**
 * The worker's end: answers batches with `answer`. When a batch arrives it also takes every
 * batch already queued behind it on the port (`receiveMessageOnPort`), and answers them all
 * together: requests that arrived one at a time while the worker was busy searching become
 * one multi-threaded usearch call (at c=8 on one shard, every batch was a single query
 * before: concurrent requests reach a node one per socket read).
 *
 * Returns `answerWaiting`, which answers the batches queued now, at once: the worker calls it
 * between the steps of long work (absorbing, applying), so a search waits for a step, not for
 * the rest of a slice.
 */
export function serveSearchLane(port: MessagePort, answer: (items: ShardSearchItem[]) => ShardSearchOutcome[]): () => void {
  const serve = (requests: LaneRequest[]): void => {
    for (let next = receiveMessageOnPort(port); next !== undefined; next = receiveMessageOnPort(port)) requests.push(next.message as LaneRequest);
    if (requests.length === 0) return;
    const outcomes = answer(requests.length === 1 ? requests[0]!.items : requests.flatMap((r) => r.items));
    let at = 0;
    for (const request of requests) {
      port.postMessage({ id: request.id, outcomes: outcomes.slice(at, at + request.items.length) } satisfies LaneReply);
      at += request.items.length;
    }
  };
  port.on("message", (first: LaneRequest) => serve([first]));
  return () => serve([]);
}
