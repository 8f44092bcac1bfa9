/**
 * One shard's index: the live points (points.ts), a usearch HNSW graph keyed by slot
 * (graph.ts) and the fresh buffer of points the graph has not absorbed yet (fresh.ts).
 * Plain and synchronous: it runs on a worker thread (worker.ts), which calls `absorb` in
 * time slices between other calls, and is tested in-process.
 *
 * Applying a log entry is cheap and makes its points searchable at once: they are written
 * to the point table and the fresh buffer, which searches exactly. The graph absorbs them
 * later, in log order, one thread per shard. Replicas that apply the same log hold the same
 * points (ids, payloads, vectors, versions: what `digest` covers); how far their graphs have
 * absorbed may differ, which changes no point and at most the last digits of an
 * approximate ranking.
 *
 * Searches are shard-search.ts's.
 */
import os from "node:os";
import type { Filter } from "../../runtime/filter.ts";
import { checkEntryValues, decodeEntry, EntryKind, isInvalidEntryError, type DeleteEntry, type UpsertEntry } from "../../runtime/log-entry.ts";
import { spaceOf, type VectorSpace } from "../../runtime/vectors.ts";
import { digestOf, pointHash, type ContentDigest } from "../../runtime/content-digest.ts";
import type { StoredPoint } from "../../runtime/schemas.ts";
import type { ApplyResult, LogRecord, RejectedEntry, SavedSnapshot, ShardHit, ShardIndexConfig, ShardSearchRequest, ShardStats, TxnReadView } from "./api.ts";
import { FreshBuffer } from "./fresh.ts";
import { Graph } from "./graph.ts";
import { PointTable, versionOf } from "./points.ts";
import { loadShard, saveShard } from "./shard-snapshot.ts";
import { TxnSequencer, type Effect } from "../../runtime/txn-sequencer.ts";
import { TxnOverlay } from "./txn-overlay.ts";
import { TxnViews } from "./txn-view.ts";
import { compactGraph } from "./compaction.ts";
import { ShardSearch } from "./shard-search.ts";

/**
 * Bytes of vectors the fresh buffer may hold before applies wait for the graph: bounds both
 * its memory and the exact scan every search pays. Measured at 1M × 128-d with searches during
 * the import: at 32 MiB a shard's scan cost ~2.5 ms of CPU per query, and the scans of a
 * steady search load took as much CPU as the graphs' absorption. 16 MiB (32k points of 128-d)
 * still holds a 100k burst over 4 shards.
 */
export const freshBytesMaxDefault = 16 * 1024 * 1024;
/** Rows the absorber hands to the graph between two looks at the clock. */
const absorbRowsPerStep = 4;

export interface ShardIndexOptions {
  freshBytesMax?: number;
  /** Where the shard's vector file goes (default: the system's temporary directory). */
  vectorDir?: string;
}

export class ShardIndex {
  readonly config: ShardIndexConfig;
  readonly #space: VectorSpace;
  readonly #freshBytesMax: number;
  /** @internal for shard-snapshot.ts */
  readonly points: PointTable;
  /** @internal for shard-snapshot.ts; replaced by compaction.ts */
  graph: Graph;
  /** @internal for shard-snapshot.ts */
  readonly fresh: FreshBuffer;
  #lastSeq = 0;
  #closed = false;
  /** @internal for shard-snapshot.ts: staged transactions and the writes waiting for them. */
  readonly txns = new TxnSequencer();
  readonly #txnViews = new TxnViews(this.txns);
  readonly #searcher: ShardSearch;

  constructor(config: ShardIndexConfig, options: ShardIndexOptions = {}) {
    this.config = config;
    this.#space = spaceOf(config);
    this.#freshBytesMax = options.freshBytesMax ?? freshBytesMaxDefault;
    this.points = new PointTable(config.dimension, options.vectorDir ?? os.tmpdir());
    this.graph = new Graph(config);
    this.fresh = new FreshBuffer(config.dimension, config.metric);
    this.#searcher = new ShardSearch(this);
  }

  get size(): number {
    return this.points.size;
  }

  /** The sequence of the last log record applied (0 when none). */
  get appliedSeq(): number {
    return this.#lastSeq;
  }

  /** @internal set by a snapshot load */
  set appliedSeq(seq: number) {
    this.#lastSeq = seq;
  }

  /** False while the fresh buffer is at its bound: the caller waits for `absorb` before applying more. */
  get hasRoom(): boolean {
    return this.fresh.bytes < this.#freshBytesMax;
  }

  /** Rows the graph has still to absorb. */
  get pendingRows(): number {
    return this.fresh.pending;
  }

  /**
   * Applies records in order, skipping any at or below the applied sequence (replays are
   * idempotent). An entry the writer could not have made (see InvalidEntryError) is
   * skipped whole, before any change, and reported in `rejected`. Transaction entries go
   * through the shard's sequencer (runtime/txn-sequencer.ts): a prepare is voted on and staged,
   * a marker applies or drops what it staged, and a plain write to a staged id waits for it.
   */
  apply(records: readonly LogRecord[]): ApplyResult {
    const rejected: RejectedEntry[] = [];
    for (const record of records) {
      if (record.seq <= this.#lastSeq) continue;
      try {
        this.#applyEntry(record);
      } catch (err) {
        if (!isInvalidEntryError(err)) throw err;
        rejected.push({ seq: record.seq, reason: err.message });
      }
      this.#lastSeq = record.seq;
    }
    const result = this.result();
    return rejected.length > 0 ? { ...result, rejected } : result;
  }

  /**
   * Whether `record` only adds points the shard does not hold (or is one it applied already).
   * Such a record may be applied while a save writes the shard (worker.ts): it takes new or free
   * slots, which the save did not capture, and changes no point or graph node the save reads.
   * Anything else waits for the save (saveSettled): an overwrite or a delete changes a captured
   * point's row and removes from the graph being written, and a transaction's entries go
   * through the sequencer, whose state the save captures too.
   */
  addsOnly(record: LogRecord): boolean {
    if (record.seq <= this.#lastSeq) return true;
    if (!this.txns.idle) return false;
    let entry: ReturnType<typeof decodeEntry>;
    try {
      entry = decodeEntry(record.data);
    } catch {
      return false; // apply rejects it, after the save
    }
    if (entry.kind !== EntryKind.Upsert || entry.deleteIds !== undefined) return false;
    return entry.ids.every((id) => this.points.slotOf(id) === undefined);
  }

  /** Where the shard stands, as apply and load answer it. */
  result(): ApplyResult {
    const result: ApplyResult = { appliedSeq: this.#lastSeq, count: this.size, pendingRows: this.pendingRows, freshBytes: this.fresh.bytes };
    if (!this.txns.idle) result.visibleSeq = this.visibleSeq;
    return result;
  }

  /** The sequence every entry up to which has taken effect (below `appliedSeq` while a plain write waits for a transaction). */
  get visibleSeq(): number {
    return this.txns.visibleSeq(this.#lastSeq);
  }

  #applyEntry(record: LogRecord): void {
    const entry = decodeEntry(record.data);
    checkEntryValues(entry, this.#space);
    this.#applyEffects(this.txns.read(record.seq, entry, record.data, this.#versionOf));
    this.#txnViews.read(entry);
  }

  #applyEffects(effects: readonly Effect[]): void {
    for (const effect of effects) {
      if (effect.kind === EntryKind.Upsert) this.#applyUpsert(effect.seq, effect.entry, effect.bytes);
      else this.#applyDelete(effect.entry);
    }
  }

  readonly #versionOf = (id: string): number | undefined => {
    const slot = this.points.slotOf(id);
    return slot === undefined ? undefined : this.points.versions[slot];
  };

  /**
   * Moves fresh rows into the graph, oldest first, until `deadlineMs` (performance.now()
   * time) passes or none are left; `threads` > 1 inserts a step's rows concurrently (see
   * Graph.flush). Returns true while rows remain. Moves none while the graph is being saved
   * (the absorber waits for `graph.saving`). `between` runs after each step that leaves time in
   * the slice, every moved row in the graph: reads may run there.
   */
  absorb(deadlineMs: number, threads = 1, between?: () => void): boolean {
    const { points, graph } = this;
    if (graph.saving) return this.fresh.pending > 0;
    const take = (slot: number, version: number, vectors: Float32Array, offset: number): void => {
      if (!points.isLive(slot, version)) return;
      graph.stage(slot, vectors, offset);
      points.inGraph[slot] = 1;
    };
    const rowsPerStep = threads > 1 ? absorbRowsPerStep * threads * 2 : absorbRowsPerStep;
    while (this.fresh.absorb(rowsPerStep, take) > 0) {
      graph.flush(threads);
      if (performance.now() >= deadlineMs) break;
      between?.();
    }
    graph.flush(threads);
    return this.fresh.pending > 0;
  }

  #applyUpsert(seq: number, entry: UpsertEntry, entryBytes: number): void {
    const dim = this.config.dimension;
    const n = entry.ids.length;
    // Ids that moved to another shard (vector sharding) go first; an entry may hold nothing else.
    if (entry.deleteIds !== undefined) this.#applyDelete({ kind: EntryKind.Delete, ids: entry.deleteIds });
    if (n === 0) return;
    const lastPosition = new Map<string, number>();
    entry.ids.forEach((id, p) => lastPosition.set(id, p));
    const bytesEach = Math.max(0, entryBytes - entry.vectors.byteLength) / n;
    for (let p = 0; p < n; p++) {
      const id = entry.ids[p]!;
      if (lastPosition.get(id) !== p) continue;
      const existing = this.points.slotOf(id);
      if (existing !== undefined) this.#unindex(existing);
      const version = versionOf(seq, p);
      const slot = this.points.write(id, existing, version, entry.payloads?.[p], entry.vectors, p * dim, bytesEach);
      this.points.freshChunk[slot] = this.fresh.push(slot, version, entry.vectors, p * dim);
    }
  }

  #applyDelete(entry: DeleteEntry): void {
    for (const id of entry.ids) {
      const slot = this.points.slotOf(id);
      if (slot === undefined) continue;
      this.#unindex(slot);
      this.points.free(slot);
    }
  }

  /** Takes the slot's current vector out of the graph or the fresh buffer, before it is rewritten or freed. */
  #unindex(slot: number): void {
    const { points } = this;
    if (points.inGraph[slot] === 1) {
      this.graph.remove(slot);
      points.inGraph[slot] = 0;
    }
    const chunk = points.freshChunk[slot]!;
    if (chunk >= 0) {
      this.fresh.markStale(chunk);
      points.freshChunk[slot] = -1;
    }
  }

  /** The k nearest points; `request.assume`: staged transactions to read as committed (txn-overlay.ts). */
  search(request: ShardSearchRequest): ShardHit[] {
    return this.#searcher.search(request);
  }

  /**
   * Several searches of this shard at once (the worker batches concurrent requests): the
   * unfiltered ones go to the graph as one batched search on up to `threads` threads.
   */
  searchMany(requests: readonly ShardSearchRequest[], threads: number): ShardHit[][] {
    return this.#searcher.searchMany(requests, threads);
  }

  /** The points among `ids` that exist, in request order; `assume` as for search. */
  get(ids: readonly string[], withVectors: boolean, assume?: readonly string[]): StoredPoint[] {
    const overlay = assume?.length ? TxnOverlay.of(this.txns, assume) : undefined;
    const points: StoredPoint[] = [];
    for (const id of ids) {
      if (overlay?.masked.has(id)) {
        const written = overlay.get(id, withVectors);
        if (written) points.push(written);
        continue;
      }
      const slot = this.points.slotOf(id);
      if (slot === undefined) continue;
      const point: StoredPoint = { id };
      const payload = this.points.payloads[slot];
      if (payload !== undefined) point.payload = payload;
      if (withVectors) point.vector = Array.from(this.points.vector(slot));
      point.version = this.points.versions[slot]!;
      points.push(point);
    }
    return points;
  }

  count(filter?: Filter, assume?: readonly string[]): number {
    const own = filter === undefined ? this.size : this.#searcher.matchingSlots(filter).length;
    const overlay = assume?.length ? TxnOverlay.of(this.txns, assume) : undefined;
    if (!overlay) return own;
    return own + overlay.countDelta(filter, (id) => {
      const slot = this.points.slotOf(id);
      return slot === undefined ? null : this.points.payloads[slot];
    });
  }

  /** What a read now sees of transactions (txn-view.ts); undefined when nothing. */
  txnView(nowMs = Date.now()): TxnReadView | undefined {
    return this.#txnViews.now(nowMs);
  }

  stats(): ShardStats {
    const { points } = this;
    const perSlot = 8 + 1 + 4 + 4; // version, inGraph, freshChunk, metaBytes
    // The vectors are in the page cache (vector-file.ts), not counted here; payloads are
    // JS objects, estimated at twice their encoded size (metaBytes also counts the ids once).
    const memoryBytes = points.versions.length * perSlot + points.idBytes + points.metaBytes * 2 + this.graph.memoryBytes + this.fresh.bytes;
    return { count: this.size, appliedSeq: this.#lastSeq, memoryBytes: Math.round(memoryBytes), pendingRows: this.fresh.pending, freshBytes: this.fresh.bytes };
  }

  /** The order-independent digest of the live points (runtime/content-digest.ts): equal on converged replicas, and to a backup's. */
  contentDigest(): ContentDigest {
    const { points } = this;
    const hashes = function* () {
      for (const slot of points.liveSlots()) {
        const vector = points.vector(slot);
        yield pointHash(points.idOf(slot)!, points.payloads[slot], new Uint8Array(vector.buffer, vector.byteOffset, vector.byteLength));
      }
    };
    return digestOf(hashes());
  }

  /**
   * Writes the whole shard to one file (see shard-snapshot.ts), atomically. A graph holding
   * many removed nodes is rebuilt first
   * (compaction.ts; on up to `threads` threads), while applies go on, and the save captures
   * the shard as it is once that is done; otherwise it captures the shard as it is when
   * called. The graph is captured synchronously; the points' metadata and vectors are read from
   * the live tables and vector file afterwards, so `apply` must not run until the returned
   * promise settles (the worker waits for that part: saveSettled).
   */
  async save(path: string, options: { threads?: number } = {}): Promise<SavedSnapshot> {
    const compaction = compactGraph(this, options);
    if (!compaction) return { ...(await saveShard(this, path)), compactionMs: 0 };
    const startedMs = performance.now();
    await compaction;
    const compactionMs = performance.now() - startedMs;
    return { ...(await saveShard(this, path)), compactionMs };
  }

  /** True once closed: work under way on it (a compaction) stops. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Frees the vector file (the graph and tables go with the object). */
  close(): void {
    this.#closed = true;
    this.points.vectors.close();
  }

  /** Restores a shard written by save; points the saved graph had not absorbed go to the fresh buffer. */
  static load(config: ShardIndexConfig, path: string, options: ShardIndexOptions = {}): Promise<ShardIndex> {
    return loadShard(new ShardIndex(config, options), path);
  }
}
