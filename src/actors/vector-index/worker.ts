/**
 * Index worker entry: hosts the ShardIndex of every shard pinned to this thread
 * and exposes IndexWorkerApi over comlink. Calls run one at a time in message
 * order, except that save and load await their file I/O: other calls (searches of
 * other shards above all) run meanwhile. save captures the shard's state before it
 * awaits; load installs the loaded shard only when it is complete.
 */
import { parentPort } from "node:worker_threads";
import * as Comlink from "comlink";
import nodeEndpoint from "comlink/dist/umd/node-adapter.js";
import type { Filter } from "../../runtime/filter.ts";
import type { IndexWorkerApi, LogRecord, ShardIndexConfig, ShardSearchRequest } from "./api.ts";
import { ShardIndex } from "./shard-index.ts";

if (parentPort === null) throw new Error("worker.ts must run in a worker thread (see IndexPool)");

const shards = new Map<string, ShardIndex>();

function shard(shardKey: string): ShardIndex {
  const found = shards.get(shardKey);
  if (found === undefined) throw new Error(`shard ${shardKey} is not open on this index worker`);
  return found;
}

const api: IndexWorkerApi = {
  open(shardKey: string, config: ShardIndexConfig) {
    shards.set(shardKey, new ShardIndex(config));
  },
  close(shardKey: string) {
    shards.delete(shardKey);
  },
  apply(shardKey: string, records: LogRecord[]) {
    return shard(shardKey).apply(records);
  },
  search(shardKey: string, request: ShardSearchRequest) {
    return shard(shardKey).search(request);
  },
  get(shardKey: string, ids: string[], withVectors: boolean) {
    return shard(shardKey).get(ids, withVectors);
  },
  count(shardKey: string, filter?: Filter) {
    return shard(shardKey).count(filter);
  },
  save(shardKey: string, path: string) {
    return shard(shardKey).save(path);
  },
  async load(shardKey: string, config: ShardIndexConfig, path: string) {
    const loaded = await ShardIndex.load(config, path);
    shards.set(shardKey, loaded);
    return { appliedSeq: loaded.appliedSeq, count: loaded.size };
  },
  stats(shardKey: string) {
    return shard(shardKey).stats();
  },
};

Comlink.expose(api, nodeEndpoint(parentPort));
