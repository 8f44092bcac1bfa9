/**
 * A fixed pool of index worker threads. Each shard is pinned to one worker (the one
 * with the fewest shards when first pinned) and stays there until unpinned, so its
 * calls run in order on one thread. `pin()` returns a ShardIndexClient bound to the
 * shard key.
 *
 * A worker that dies is logged and replaced; the shards pinned to it stay pinned to
 * its replacement but their in-memory state is gone: calls in flight reject with an
 * `unavailable` JadeError, later calls fail with "not open" until the owner reopens
 * or reloads the shard (`onWorkerExit` tells it which shards were lost). comlink
 * itself never settles a call whose worker died, so the pool rejects the calls in
 * flight on a worker when it exits.
 */
import os from "node:os";
import type { EventLoopUtilization } from "node:perf_hooks";
import { MessageChannel, Worker } from "node:worker_threads";
import * as Comlink from "comlink";
import nodeEndpoint from "comlink/dist/umd/node-adapter.js";
import { pino } from "pino";
import { unavailable } from "../../runtime/errors.ts";
import type { Filter } from "../../runtime/filter.ts";
import type { StoredPoint } from "../../runtime/schemas.ts";
import type {
  ShardDigest,
  ApplyResult,
  IndexWorkerApi,
  LogRecord,
  SavedSnapshot,
  ShardHit,
  ShardRead,
  ShardIndexConfig,
  ShardSearchRequest,
  ShardStats,
  IndexWorkerData,
  TxnOutcomeRecord,
} from "./api.ts";
import { AbsorbingWorkers } from "./absorber.ts";
import { SearchBatches, SearchLane } from "./search-batch.ts";
import type { ShardIndexOptions } from "./shard-index.ts";
import { workerModule } from "../../runtime/worker-module.ts";
import { traced, tracingEnabled } from "../../runtime/tracing.ts";

/** Delay before replacing a worker that died before it ever answered, so a broken build cannot spin. */
const respawnDelayMs = 1_000;
const pingKey = "jade-pool-ping";

export interface WorkerExit {
  worker: number;
  exitCode: number;
  error?: Error;
  /** Shards pinned to the dead worker: their index state is lost. */
  shardKeys: string[];
}

export interface PoolLogger {
  warn(details: object, message: string): void;
  error(details: object, message: string): void;
}

export interface IndexPoolOptions {
  /** Worker threads; default os.availableParallelism(). */
  workers?: number;
  /** Options of every shard index the workers open (the fresh buffer's bound). */
  shardIndex?: ShardIndexOptions;
  onWorkerExit?: (exit: WorkerExit) => void;
  logger?: PoolLogger;
}

type Remote = Comlink.Remote<IndexWorkerApi>;

/** One incarnation of a worker thread in a pool position. */
interface WorkerHandle {
  readonly worker: Worker;
  readonly remote: Remote;
  readonly searches: SearchLane;
  /** Resolves when this incarnation has exited. */
  readonly died: Promise<void>;
  /** Why it exited, once it has: later calls reject with it. */
  dead: Error | undefined;
  /** Rejecters of the calls in flight on it. */
  readonly inflight: Set<(err: Error) => void>;
  ready: boolean;
}

/**
 * Copies the records' bytes into one fresh buffer and transfers it: one memcpy instead
 * of a structured clone per record, and the caller's buffers (often views into NATS
 * read buffers) are neither detached nor copied whole.
 */
function packRecords(records: readonly LogRecord[]): LogRecord[] {
  const total = records.reduce((sum, r) => sum + r.data.byteLength, 0);
  const bytes = new Uint8Array(total);
  let offset = 0;
  const packed = records.map(({ seq, data }) => {
    bytes.set(data, offset);
    const view = bytes.subarray(offset, offset + data.byteLength);
    offset += data.byteLength;
    return { seq, data: view };
  });
  return Comlink.transfer(packed, [bytes.buffer]);
}

type Invoke = <T>(call: (remote: Remote) => Promise<T>) => Promise<T>;
type Search = (request: ShardSearchRequest) => Promise<ShardRead<ShardHit[]>>;

/** One shard's index, reached through the worker it is pinned to. */
export class ShardIndexClient {
  readonly shardKey: string;
  readonly #invoke: Invoke;
  readonly #search: Search;

  constructor(shardKey: string, invoke: Invoke, search: Search) {
    this.shardKey = shardKey;
    this.#invoke = invoke;
    this.#search = search;
  }

  open(config: ShardIndexConfig): Promise<void> {
    return this.#invoke((r) => r.open(this.shardKey, config));
  }

  close(): Promise<void> {
    return this.#invoke((r) => r.close(this.shardKey));
  }

  apply(records: readonly LogRecord[]): Promise<ApplyResult> {
    return this.#invoke((r) => r.apply(this.shardKey, packRecords(records)));
  }

  /** Batched with the worker's other searches of this tick (search-batch.ts). */
  search(request: ShardSearchRequest): Promise<ShardRead<ShardHit[]>> {
    if (!tracingEnabled()) return this.#search(request);
    return traced("jade.index.search", { "jade.shard.key": this.shardKey, "jade.k": request.k }, () => this.#search(request));
  }

  /** `assume`: staged transactions to read as committed (txn-overlay.ts). */
  get(ids: string[], withVectors: boolean, assume?: string[]): Promise<ShardRead<StoredPoint[]>> {
    return this.#invoke((r) => r.get(this.shardKey, ids, withVectors, assume));
  }

  count(filter?: Filter, assume?: string[]): Promise<ShardRead<number>> {
    return this.#invoke((r) => r.count(this.shardKey, filter, assume));
  }

  save(path: string): Promise<SavedSnapshot> {
    return this.#invoke((r) => r.save(this.shardKey, path));
  }

  load(config: ShardIndexConfig, path: string): Promise<ApplyResult> {
    return this.#invoke((r) => r.load(this.shardKey, config, path));
  }

  stats(): Promise<ShardStats> {
    return this.#invoke((r) => r.stats(this.shardKey));
  }

  contentDigest(): Promise<ShardDigest> {
    return this.#invoke((r) => r.contentDigest(this.shardKey));
  }

  txnOutcome(txn: string): Promise<TxnOutcomeRecord | undefined> {
    return this.#invoke((r) => r.txnOutcome(this.shardKey, txn));
  }
}

export class IndexPool {
  readonly #handles: WorkerHandle[] = [];
  readonly #pinnedTo = new Map<string, number>();
  readonly #shardCounts: number[];
  readonly #options: IndexPoolOptions;
  readonly #logger: PoolLogger;
  readonly #searches = new SearchBatches((position, items) => this.#handles[position]!.searches.send(items));
  /** AbsorbingWorkers' counter, shared with every worker. */
  readonly #absorbing = AbsorbingWorkers.buffer();
  /** Each worker's last event-loop utilisation reading, for `utilization`. */
  readonly #utilizationSince = new WeakMap<Worker, EventLoopUtilization>();
  #closing: Promise<void> | undefined;

  private constructor(workers: number, options: IndexPoolOptions) {
    this.#options = options;
    this.#logger = options.logger ?? pino({ name: "index-pool" }, pino.destination(2));
    this.#shardCounts = new Array<number>(workers).fill(0);
  }

  static async start(options: IndexPoolOptions = {}): Promise<IndexPool> {
    const workers = options.workers ?? os.availableParallelism();
    if (!Number.isInteger(workers) || workers < 1) throw new Error(`IndexPool needs at least one worker, got ${workers}`);
    const pool = new IndexPool(workers, options);
    for (let i = 0; i < workers; i++) pool.#handles.push(pool.#spawn(i));
    try {
      await Promise.all(pool.#handles.map((h) => pool.#ping(h)));
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  get size(): number {
    return this.#handles.length;
  }

  /**
   * The share of time each worker thread was busy since the previous call (0 – 1, by
   * position): Node measures it per thread, from this side, without asking the worker.
   */
  utilization(): number[] {
    return this.#handles.map((h) => {
      const now = h.worker.performance.eventLoopUtilization();
      const since = this.#utilizationSince.get(h.worker);
      this.#utilizationSince.set(h.worker, now);
      return since ? h.worker.performance.eventLoopUtilization(now, since).utilization : now.utilization;
    });
  }

  /** Binds `shardKey` to a worker (sticky until unpin) and returns its client. */
  pin(shardKey: string): ShardIndexClient {
    if (this.#closing) throw unavailable("index pool is closed");
    if (!this.#pinnedTo.has(shardKey)) {
      let best = 0;
      this.#shardCounts.forEach((n, i) => {
        if (n < this.#shardCounts[best]!) best = i;
      });
      this.#pinnedTo.set(shardKey, best);
      this.#shardCounts[best]! += 1;
    }
    return new ShardIndexClient(
      shardKey,
      (call) => this.#invoke(shardKey, call),
      (request) => this.#searchOn(shardKey, request),
    );
  }

  /** Forgets the binding; close the shard first, or its index stays in the worker's memory. */
  unpin(shardKey: string): void {
    const worker = this.#pinnedTo.get(shardKey);
    if (worker === undefined) return;
    this.#pinnedTo.delete(shardKey);
    this.#shardCounts[worker]! -= 1;
  }

  /** The worker position a shard is pinned to (for tests and diagnostics). */
  workerOf(shardKey: string): number | undefined {
    return this.#pinnedTo.get(shardKey);
  }

  /**
   * Terminates one worker as if it had crashed (fault injection for tests and chaos):
   * its calls in flight reject, its shards' state is lost and it is replaced.
   */
  async killWorker(position: number): Promise<void> {
    const handle = this.#handles[position];
    if (handle === undefined) throw new Error(`no index worker at position ${position}`);
    await handle.worker.terminate();
    await handle.died;
  }

  /** Terminates every worker; calls in flight reject with `unavailable`. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= Promise.all(this.#handles.map((h) => h.worker.terminate())).then(() => undefined);
    return this.#closing;
  }

  async #searchOn(shardKey: string, request: ShardSearchRequest): Promise<ShardRead<ShardHit[]>> {
    if (this.#closing) throw unavailable("index pool is closed");
    const position = this.#pinnedTo.get(shardKey);
    if (position === undefined) throw new Error(`shard ${shardKey} is not pinned to the index pool`);
    return this.#searches.search(position, shardKey, request);
  }

  async #invoke<T>(shardKey: string, call: (remote: Remote) => Promise<T>): Promise<T> {
    if (this.#closing) throw unavailable("index pool is closed");
    const position = this.#pinnedTo.get(shardKey);
    if (position === undefined) throw new Error(`shard ${shardKey} is not pinned to the index pool`);
    return this.#call(this.#handles[position]!, call);
  }

  /**
   * Runs a call on a worker, rejecting it if the worker dies first. The rejecter is
   * registered only while the call is in flight: racing each call against one
   * long-lived "died" promise would pile a reaction onto it per call, forever.
   */
  #call<T>(handle: WorkerHandle, call: (remote: Remote) => Promise<T>): Promise<T> {
    if (handle.dead) return Promise.reject(handle.dead);
    return new Promise<T>((resolve, reject) => {
      handle.inflight.add(reject);
      call(handle.remote)
        .then(resolve, reject)
        .finally(() => handle.inflight.delete(reject));
    });
  }

  async #ping(handle: WorkerHandle): Promise<void> {
    await this.#call(handle, (remote) => remote.close(pingKey));
    handle.ready = true;
  }

  #spawn(position: number): WorkerHandle {
    const { url, execArgv } = workerModule(import.meta.url, { ts: "./worker.ts", built: "./worker.js" });
    const lane = new MessageChannel();
    const workerData: IndexWorkerData = { shardIndex: this.#options.shardIndex ?? {}, absorbing: this.#absorbing, cores: os.availableParallelism(), searches: lane.port2 };
    const worker = new Worker(url, { execArgv, name: `jade-index-${position}`, workerData, transferList: [lane.port2] });
    let exited: () => void = () => undefined;
    const died = new Promise<void>((r) => (exited = r));
    const handle: WorkerHandle = {
      worker,
      remote: Comlink.wrap<IndexWorkerApi>(nodeEndpoint(worker)),
      searches: new SearchLane(lane.port1),
      died,
      dead: undefined,
      inflight: new Set(),
      ready: false,
    };
    const reject = (err: Error) => {
      handle.dead = err;
      for (const r of handle.inflight) r(err);
      handle.inflight.clear();
      handle.searches.close(err);
      exited();
    };
    let error: Error | undefined;
    worker.on("error", (err) => {
      error = err;
      this.#logger.error({ worker: position, err }, "index worker failed");
    });
    worker.on("exit", (exitCode) => {
      if (this.#closing) {
        reject(unavailable("index pool is closed"));
        return;
      }
      reject(unavailable(`index worker ${position} exited (code ${exitCode})`, error));
      this.#onDeath(position, handle, exitCode, error);
    });
    return handle;
  }

  #onDeath(position: number, dead: WorkerHandle, exitCode: number, error: Error | undefined): void {
    const shardKeys = [...this.#pinnedTo].filter(([, p]) => p === position).map(([key]) => key);
    this.#logger.warn({ worker: position, exitCode, shardKeys }, "index worker exited; replacing it");
    this.#options.onWorkerExit?.({ worker: position, exitCode, error, shardKeys });
    const replace = (): void => {
      if (this.#closing) return;
      const handle = this.#spawn(position);
      this.#handles[position] = handle;
      this.#ping(handle).catch(() => undefined);
    };
    if (dead.ready) replace();
    else setTimeout(replace, respawnDelayMs).unref();
  }
}
