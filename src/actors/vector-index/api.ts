/**
 * The index actor's interface: what a worker thread exposes through comlink.
 * One worker hosts the usearch indexes of every shard pinned to it; a shard is
 * addressed by its `shardKey` (runtime/subjects.ts, of the collection uid). All calls for one shard run in
 * order on that worker's thread, so apply/search/save never interleave.
 */
import type { ContentDigest } from "../../runtime/content-digest.ts";
import type { IndexParams, Metric, Payload, StoredPoint } from "../../runtime/schemas.ts";
import type { Filter } from "../../runtime/filter.ts";
import type { MessagePort } from "node:worker_threads";
import type { TxnOutcome, TxnVote } from "../../runtime/txn-sequencer.ts";

export interface ShardIndexConfig {
  dimension: number;
  metric: Metric;
  index: IndexParams;
}

/** One shard-log message as it came from JetStream: its stream sequence and raw msgpack body. */
export interface LogRecord {
  seq: number;
  data: Uint8Array;
}

export interface ApplyResult {
  /** Highest sequence applied so far (records at or below the previous value are skipped). */
  appliedSeq: number;
  /** Set while a plain write waits for a transaction's marker: every entry up to it has taken effect (below appliedSeq). */
  visibleSeq?: number;
  count: number;
  /** Entries of this call that were skipped as invalid (absent when none was). */
  rejected?: RejectedEntry[];
  /** Applied points the graph has not absorbed yet (set by the index worker). */
  pendingRows?: number;
  /** Bytes of vectors the fresh buffer holds (set by the index worker): the writers pace on it (write/pace.ts). */
  freshBytes?: number;
}

export interface RejectedEntry {
  seq: number;
  reason: string;
}

export interface ShardSearchRequest {
  vector: Float32Array;
  k: number;
  filter?: Filter;
  withPayload: boolean;
  withVectors: boolean;
  /** Staged transactions to read as committed (txn-overlay.ts). */
  assume?: string[];
}

/** What one shard's read saw of transactions (decision 013, "Reads"). */
export interface TxnReadView {
  /** Staged here, oldest first; `stale`: staged longer than limits.txnStagedStaleMs (its commit may be out of other shards' window). */
  staged: { txn: string; stale?: true }[];
  /** Committed within limits.txnReadWindowMs of now, newest first, with the transaction's shards when its marker names them. */
  committed: { txn: string; shards?: number[] }[];
}

/** A shard's answer to a read, with what it saw of transactions when it saw any. */
export interface ShardRead<T> {
  value: T;
  txns?: TxnReadView;
}

export interface ShardSearchItem {
  shardKey: string;
  request: ShardSearchRequest;
}

/** One item's answer, or why it failed (a shard not open here): the others are unaffected. */
export type ShardSearchOutcome = { hits: ShardHit[]; txns?: TxnReadView } | { error: string };

/** What the pool hands every index worker it starts. */
export interface IndexWorkerData {
  shardIndex: { freshBytesMax?: number; vectorDir?: string };
  /** AbsorbingWorkers' counter, shared by the pool's workers. */
  absorbing: SharedArrayBuffer;
  cores: number;
  /** The worker's end of its search lane (search-batch.ts). */
  searches: MessagePort;
}

export interface ShardHit {
  id: string;
  distance: number;
  payload?: Payload;
  vector?: number[];
}

export interface ShardStats {
  count: number;
  appliedSeq: number;
  /** Approximate bytes held for this shard (vectors, graph, payloads). */
  memoryBytes: number;
  /** Applied points the graph has not absorbed yet (searched exactly meanwhile). */
  pendingRows: number;
  /** Bytes of vectors the fresh buffer holds. */
  freshBytes: number;
}

export interface ShardDigest extends ContentDigest {
  appliedSeq: number;
}

export interface SavedSnapshot {
  appliedSeq: number;
  bytes: number;
  /** Live points saved, and how many of them the saved graph did not hold (a load indexes those again). */
  points: number;
  unabsorbed: number;
  /** How long of the save went to rebuilding the graph first (compaction.ts), 0 when it did not. */
  compactionMs: number;
}

export interface IndexWorkerApi {
  /** Creates an empty shard index, replacing any index already open under this key. */
  open(shardKey: string, config: ShardIndexConfig): void;
  close(shardKey: string): void;
  /** Waits while the shard's fresh buffer is full or a save is writing its vectors, then applies. */
  apply(shardKey: string, records: LogRecord[]): Promise<ApplyResult>;
  get(shardKey: string, ids: string[], withVectors: boolean, assume?: string[]): ShardRead<StoredPoint[]>;
  count(shardKey: string, filter?: Filter, assume?: string[]): ShardRead<number>;
  /** Writes the whole shard (index, ids, keys, payloads, vectors, appliedSeq) to one file. */
  save(shardKey: string, path: string): Promise<SavedSnapshot>;
  /** Replaces the shard with the contents of a file written by save. */
  load(shardKey: string, config: ShardIndexConfig, path: string): Promise<ApplyResult>;
  stats(shardKey: string): ShardStats;
  /** The live points' content digest (runtime/content-digest.ts) and the sequence it covers. */
  contentDigest(shardKey: string): ShardDigest;
  /** What became of a transaction on this shard, with its vote (runtime/txn-sequencer.ts); undefined if not seen. */
  txnOutcome(shardKey: string, txn: string): TxnOutcomeRecord | undefined;
}

/** A transaction as one shard saw it: its outcome here, its vote and the sequence of the entry that decided it. */
export interface TxnOutcomeRecord {
  outcome: TxnOutcome;
  vote: TxnVote;
  seq: number;
}
