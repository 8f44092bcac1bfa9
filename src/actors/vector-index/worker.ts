/**
 * Index worker entry: hosts the ShardIndex of every shard pinned to this thread and
 * exposes IndexWorkerApi over comlink. Calls run one at a time in message order; between
 * them the absorber moves fresh points into the graphs in short slices. save and load
 * await their file I/O: other calls (searches of other shards above all) run meanwhile.
 * An apply waits while its shard's fresh buffer is full, or while a save is writing the shard
 * unless it only adds points (ShardIndex.addsOnly).
 * Searches come on a lane of their own (search-batch.ts) and are also answered between the
 * steps of an absorbing slice and the records of an apply.
 */
import { parentPort, workerData } from "node:worker_threads";
import * as Comlink from "comlink";
import nodeEndpoint from "comlink/dist/umd/node-adapter.js";
import type { Filter } from "../../runtime/filter.ts";
import { Absorber, AbsorbingWorkers, absorbSliceMsDefault } from "./absorber.ts";
import type { ApplyResult, IndexWorkerApi, IndexWorkerData, LogRecord, RejectedEntry, ShardIndexConfig, ShardRead, ShardSearchItem, ShardSearchOutcome } from "./api.ts";
import { TimeSlicer } from "../../runtime/async.ts";
import { errorMessage } from "../../runtime/errors.ts";
import { ShardIndex, type ShardIndexOptions } from "./shard-index.ts";
import { saveSettled } from "./shard-snapshot.ts";
import { serveSearchLane } from "./search-batch.ts";

if (parentPort === null) throw new Error("worker.ts must run in a worker thread (see IndexPool)");

const data = workerData as IndexWorkerData;
const options: ShardIndexOptions = data.shardIndex;
const cores = data.cores;
const shards = new Map<string, ShardIndex>();
const absorbing = new AbsorbingWorkers(data.absorbing, cores);
// Searches that arrive while a slice runs are answered between its steps (search-batch.ts).
const absorber = new Absorber({ workers: absorbing, between: () => answerWaitingSearches() });

function shard(shardKey: string): ShardIndex {
  const found = shards.get(shardKey);
  if (found === undefined) throw new Error(`shard ${shardKey} is not open on this index worker`);
  return found;
}

/** The shard once `record` may be applied: its fresh buffer has room, and no save is writing it or the record only adds points (it may have been replaced meanwhile). */
async function writable(shardKey: string, record: LogRecord): Promise<ShardIndex> {
  for (;;) {
    const index = shard(shardKey);
    if (index.hasRoom && (saveSettled(index) === undefined || index.addsOnly(record))) return index;
    await saveSettled(index);
    await absorber.room(index);
  }
}

function install(shardKey: string, index: ShardIndex): void {
  const previous = shards.get(shardKey);
  if (previous) retire(previous);
  shards.set(shardKey, index);
  absorber.wake(index);
}

function retire(index: ShardIndex): void {
  absorber.forget(index);
  index.close();
}

const api: IndexWorkerApi = {
  open(shardKey: string, config: ShardIndexConfig) {
    install(shardKey, new ShardIndex(config, options));
  },
  close(shardKey: string) {
    const closing = shards.get(shardKey);
    if (closing) retire(closing);
    shards.delete(shardKey);
  },
  async apply(shardKey: string, records: LogRecord[]) {
    // Record by record, each once the fresh buffer has room: a batch of many entries that
    // waited for room as a whole went in as one lump (8 MiB over the bound, then nothing for
    // tens of seconds at 1M points), and writers saw that as long stalls.
    const rejected: RejectedEntry[] = [];
    // Time-sliced like the absorber: a batch of 16 MiB of entries took ~220 ms of apply,
    // and every search on this worker waited behind it.
    const slicer = new TimeSlicer(absorbSliceMsDefault);
    for (const record of records) {
      await slicer.pause();
      const index = await writable(shardKey, record);
      rejected.push(...(index.apply([record]).rejected ?? []));
      absorber.wake(index);
      answerWaitingSearches();
    }
    const result = shard(shardKey).result();
    return rejected.length > 0 ? { ...result, rejected } : result;
  },
  get(shardKey: string, ids: string[], withVectors: boolean, assume?: string[]) {
    return viewed(shard(shardKey), (index) => index.get(ids, withVectors, assume));
  },
  count(shardKey: string, filter?: Filter, assume?: string[]) {
    return viewed(shard(shardKey), (index) => index.count(filter, assume));
  },
  save(shardKey: string, path: string) {
    // A compaction before the save inserts with the threads an absorbing worker would get.
    return shard(shardKey).save(path, { threads: absorbing.threads() });
  },
  async load(shardKey: string, config: ShardIndexConfig, path: string) {
    const loaded = await ShardIndex.load(config, path, options);
    install(shardKey, loaded);
    return loaded.result();
  },
  stats(shardKey: string) {
    return shard(shardKey).stats();
  },
  contentDigest(shardKey: string) {
    const index = shard(shardKey);
    return { ...index.contentDigest(), appliedSeq: index.appliedSeq };
  },
  txnOutcome(shardKey: string, txn: string) {
    return shard(shardKey).txns.outcome(txn);
  },
};

/** A read with what it saw of transactions, taken in the same turn so the two agree. */
function viewed<T>(index: ShardIndex, read: (index: ShardIndex) => T): ShardRead<T> {
  const value = read(index);
  const txns = index.txnView();
  return txns ? { value, txns } : { value };
}

/** Answers a batch, each shard's searches together (its unfiltered ones as one multi-threaded usearch call). */
function searchMany(items: ShardSearchItem[]): ShardSearchOutcome[] {
  const byShard = new Map<string, number[]>();
  items.forEach((item, i) => {
    const positions = byShard.get(item.shardKey);
    if (positions) positions.push(i);
    else byShard.set(item.shardKey, [i]);
  });
  const out = new Array<ShardSearchOutcome>(items.length);
  for (const [shardKey, positions] of byShard) {
    try {
      const index = shard(shardKey);
      const hits = index.searchMany(positions.map((i) => items[i]!.request), cores);
      const txns = index.txnView();
      positions.forEach((i, n) => (out[i] = txns ? { hits: hits[n]!, txns } : { hits: hits[n]! }));
    } catch (err) {
      for (const i of positions) out[i] = { error: errorMessage(err) };
    }
  }
  return out;
}

Comlink.expose(api, nodeEndpoint(parentPort));
const answerWaitingSearches = serveSearchLane(data.searches, searchMany);
