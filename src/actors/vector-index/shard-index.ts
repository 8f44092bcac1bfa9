/**
 * One shard's index: a usearch HNSW graph plus the stores usearch lacks (id ↔ key
 * maps, payloads, and a float32 arena of every vector, because the JS binding cannot
 * read vectors back). Plain and synchronous: it runs on a worker thread (worker.ts)
 * and is tested in-process.
 *
 * A point lives in a slot; freed slots are reused. Its usearch key comes from the log
 * (keyOf(seq, position)), so replicas that apply the same log hold the same keys and a
 * snapshot restores them exactly.
 *
 * Distances are usearch's: l2 → squared euclidean, cosine → 1 − cos, ip → 1 − dot.
 * Lower is closer; ties are broken by id so every replica orders hits the same way.
 */
import { createHash, randomUUID } from "node:crypto";
import { readFileSync, rmSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import { Index, MetricKind, ScalarKind } from "usearch";
import { compileFilter, type Filter } from "../../runtime/filter.ts";
import { decodeEntry, EntryKind, InvalidEntryError, isInvalidEntryError, keyOf, type DeleteEntry, type UpsertEntry } from "../../runtime/log-entry.ts";
import { spaceOf, vectorIssue, type VectorSpace } from "../../runtime/vectors.ts";
import type { Metric, Payload, Quantization, StoredPoint } from "../../runtime/schemas.ts";
import type { ApplyResult, LogRecord, RejectedEntry, SavedSnapshot, ShardHit, ShardIndexConfig, ShardSearchRequest, ShardStats } from "./api.ts";
import { distanceFn, exactTopK, type DistanceFn, type Scored } from "./distance.ts";
import { readSnapshotFile, writeSnapshotFile } from "./snapshot-file.ts";

/** A filtered search scans the matching vectors exactly when there are at most this many… */
export const exactScanMax = 2048;
/** …or when they are at most this share of the shard; otherwise it oversamples the graph. */
export const exactScanShare = 0.05;
/**
 * Each worker is one thread: shards on different workers build and search in
 * parallel. Adds stay single-threaded on purpose: a multi-threaded usearch add is
 * not deterministic and measurably worse (15 of 10,000 stored vectors no longer
 * their own top-1 with i8), and replicas of a shard must build the same graph
 * from the same log.
 */
const threads = 1;

const metricKinds: Readonly<Record<Metric, MetricKind>> = { cosine: MetricKind.Cos, l2: MetricKind.L2sq, ip: MetricKind.IP };
const scalarKinds: Readonly<Record<Quantization, ScalarKind>> = { f32: ScalarKind.F32, f16: ScalarKind.F16, i8: ScalarKind.I8 };
const scalarBytes: Readonly<Record<Quantization, number>> = { f32: 4, f16: 2, i8: 1 };

interface SnapshotMeta {
  appliedSeq: number;
  dimension: number;
  metric: Metric;
  quantization: Quantization;
  slotCount: number;
  slots: number[];
  ids: string[];
  /** BigUint64Array bytes, one key per entry of `slots`. */
  keys: Uint8Array;
  payloads: (Payload | null)[];
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Key-sorted JSON, so digests do not depend on the order payload keys were written in. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const entries = Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/** usearch reads typed arrays from the start of their buffer: hand it a view that starts there. */
function whole(vector: Float32Array): Float32Array {
  return vector.byteOffset === 0 && vector.byteLength === vector.buffer.byteLength ? vector : vector.slice();
}

export class ShardIndex {
  readonly config: ShardIndexConfig;
  private readonly dimension: number;
  private readonly space: VectorSpace;
  private readonly distance: DistanceFn;
  private readonly index: Index;
  private lastSeq = 0;
  private readonly slotById = new Map<string, number>();
  private readonly slotByKey = new Map<bigint, number>();
  private readonly ids: (string | undefined)[] = [];
  private readonly payloads: (Payload | undefined)[] = [];
  /** Encoded size of each slot's id and payload, for the memory estimate. */
  private readonly metaBytes: number[] = [];
  private metaBytesTotal = 0;
  private keys = new BigUint64Array(0);
  private arena = new Float32Array(0);
  /** Slots ever used; slots below it that hold no point are in freeSlots. */
  private slotCount = 0;
  private readonly freeSlots: number[] = [];
  private readonly order = (a: Scored, b: Scored): number =>
    a.distance - b.distance || compareIds(this.ids[a.slot]!, this.ids[b.slot]!);

  constructor(config: ShardIndexConfig) {
    this.config = config;
    this.dimension = config.dimension;
    this.space = spaceOf(config);
    this.distance = distanceFn(config.metric);
    this.index = new Index({
      dimensions: config.dimension,
      metric: metricKinds[config.metric],
      quantization: scalarKinds[config.index.quantization],
      connectivity: config.index.connectivity,
      expansion_add: config.index.expansionAdd,
      expansion_search: config.index.expansionSearch,
      multi: false,
    });
  }

  get size(): number {
    return this.slotById.size;
  }

  /** The sequence of the last log record applied (0 when none). */
  get appliedSeq(): number {
    return this.lastSeq;
  }

  /**
   * Applies records in order, skipping any at or below the applied sequence (replays are
   * idempotent). An entry the writer could not have made (see InvalidEntryError) is
   * skipped whole, before any change, and reported in `rejected`.
   */
  apply(records: readonly LogRecord[]): ApplyResult {
    const rejected: RejectedEntry[] = [];
    for (const record of records) {
      if (record.seq <= this.lastSeq) continue;
      try {
        const entry = decodeEntry(record.data);
        if (entry.kind === EntryKind.Upsert) {
          this.checkUpsert(entry);
          this.applyUpsert(record.seq, entry, record.data.byteLength);
        } else this.applyDelete(entry);
      } catch (err) {
        if (!isInvalidEntryError(err)) throw err;
        rejected.push({ seq: record.seq, reason: err.message });
      }
      this.lastSeq = record.seq;
    }
    return rejected.length > 0 ? { appliedSeq: this.lastSeq, count: this.size, rejected } : { appliedSeq: this.lastSeq, count: this.size };
  }

  /** The vectors must be valid in the shard's space: the same rules the API applies (vectors.ts). */
  private checkUpsert(entry: UpsertEntry): void {
    const dim = this.dimension;
    if (entry.dimension !== dim) throw new InvalidEntryError(`dimension ${entry.dimension}, the shard has ${dim}`);
    for (let p = 0; p < entry.ids.length; p++) {
      const issue = vectorIssue(entry.vectors.subarray(p * dim, (p + 1) * dim), this.space);
      if (issue) throw new InvalidEntryError(`point ${p}: vector${issue.path.map((i) => `[${i}]`).join("")} ${issue.message}`);
    }
  }

  private applyUpsert(seq: number, entry: UpsertEntry, entryBytes: number): void {
    const dim = this.dimension;
    const n = entry.ids.length;
    // Ids that moved to another shard (vector sharding) go first; an entry may hold nothing else.
    if (entry.deleteIds !== undefined) this.applyDelete({ kind: EntryKind.Delete, ids: entry.deleteIds });
    if (n === 0) return;
    const lastPosition = new Map<string, number>();
    entry.ids.forEach((id, p) => lastPosition.set(id, p));
    const count = lastPosition.size;
    const addKeys = new BigUint64Array(count);
    // Usually every id is distinct and the entry's own buffer can go to usearch as is.
    const addVectors = count === n ? entry.vectors : new Float32Array(count * dim);
    const replacedKeys: bigint[] = [];
    const bytesEach = Math.max(0, entryBytes - entry.vectors.byteLength) / n;
    let added = 0;
    for (let p = 0; p < n; p++) {
      const id = entry.ids[p]!;
      if (lastPosition.get(id) !== p) continue;
      const key = keyOf(seq, p);
      let slot = this.slotById.get(id);
      if (slot === undefined) {
        slot = this.allocateSlot();
        this.slotById.set(id, slot);
        this.ids[slot] = id;
      } else {
        const oldKey = this.keys[slot]!;
        replacedKeys.push(oldKey);
        this.slotByKey.delete(oldKey);
      }
      this.keys[slot] = key;
      this.slotByKey.set(key, slot);
      this.payloads[slot] = entry.payloads[p] ?? undefined;
      this.setMetaBytes(slot, bytesEach);
      const vector = entry.vectors.subarray(p * dim, (p + 1) * dim);
      this.arena.set(vector, slot * dim);
      if (addVectors !== entry.vectors) addVectors.set(vector, added * dim);
      addKeys[added++] = key;
    }
    if (replacedKeys.length > 0) this.index.remove(BigUint64Array.from(replacedKeys));
    this.index.add(addKeys, addVectors, threads);
  }

  private applyDelete(entry: DeleteEntry): void {
    const removed: bigint[] = [];
    for (const id of entry.ids) {
      const slot = this.slotById.get(id);
      if (slot === undefined) continue;
      removed.push(this.keys[slot]!);
      this.freeSlot(slot, id);
    }
    if (removed.length > 0) this.index.remove(BigUint64Array.from(removed));
  }

  private allocateSlot(): number {
    const free = this.freeSlots.pop();
    if (free !== undefined) return free;
    const slot = this.slotCount++;
    if (slot >= this.keys.length) this.grow(Math.max(1024, this.keys.length * 2));
    return slot;
  }

  private grow(capacity: number): void {
    const keys = new BigUint64Array(capacity);
    keys.set(this.keys);
    this.keys = keys;
    const arena = new Float32Array(capacity * this.dimension);
    arena.set(this.arena);
    this.arena = arena;
  }

  private freeSlot(slot: number, id: string): void {
    this.slotById.delete(id);
    this.slotByKey.delete(this.keys[slot]!);
    this.ids[slot] = undefined;
    this.payloads[slot] = undefined;
    this.setMetaBytes(slot, 0);
    this.keys[slot] = 0n;
    this.arena.fill(0, slot * this.dimension, (slot + 1) * this.dimension);
    this.freeSlots.push(slot);
  }

  private setMetaBytes(slot: number, bytes: number): void {
    this.metaBytesTotal += bytes - (this.metaBytes[slot] ?? 0);
    this.metaBytes[slot] = bytes;
  }

  search(request: ShardSearchRequest): ShardHit[] {
    const { k, filter } = request;
    if (request.vector.length !== this.dimension) {
      throw new Error(`query has dimension ${request.vector.length}, the shard has ${this.dimension}`);
    }
    if (this.size === 0 || k <= 0) return [];
    const query = whole(request.vector);
    const matchesAll = filter === undefined || (filter.op === "and" && filter.clauses.length === 0);
    const scored = matchesAll ? this.graphSearch(query, Math.min(k, this.size)) : this.filteredSearch(query, k, filter);
    return scored.map(({ slot, distance }) => {
      const hit: ShardHit = { id: this.ids[slot]!, distance };
      const payload = this.payloads[slot];
      if (request.withPayload && payload !== undefined) hit.payload = payload;
      if (request.withVectors) hit.vector = this.vectorOf(slot);
      return hit;
    });
  }

  private graphSearch(query: Float32Array, k: number): Scored[] {
    const { keys, distances } = this.index.search(query, k, threads);
    const scored: Scored[] = [];
    for (let i = 0; i < keys.length; i++) {
      const slot = this.slotByKey.get(keys[i]!);
      if (slot !== undefined) scored.push({ slot, distance: distances[i]! });
    }
    return scored.sort(this.order);
  }

  /** Exact with respect to the filter: every hit matches, and min(k, matching) hits come back. */
  private filteredSearch(query: Float32Array, k: number, filter: Filter): Scored[] {
    const matching = this.matchingSlots(filter);
    const size = this.size;
    if (matching.length === 0) return [];
    const wanted = Math.min(k, matching.length);
    const exact = (): Scored[] =>
      exactTopK(query, this.arena, this.dimension, matching, wanted, this.distance, this.order);
    if (matching.length <= exactScanMax || matching.length <= size * exactScanShare) return exact();

    const isMatch = new Uint8Array(this.slotCount);
    for (const slot of matching) isMatch[slot] = 1;
    // Oversample so that, if matches are spread evenly, about 2k of the candidates match.
    let candidates = Math.min(size, k * Math.ceil(size / matching.length) * 2);
    for (;;) {
      const hits = this.graphSearch(query, candidates).filter((s) => isMatch[s.slot] === 1);
      if (hits.length >= wanted) return hits.slice(0, wanted);
      if (candidates >= size) return exact();
      candidates = Math.min(size, candidates * 2);
    }
  }

  private matchingSlots(filter: Filter): number[] {
    const predicate = compileFilter(filter);
    const slots: number[] = [];
    for (let slot = 0; slot < this.slotCount; slot++) {
      if (this.ids[slot] !== undefined && predicate(this.payloads[slot])) slots.push(slot);
    }
    return slots;
  }

  private vectorOf(slot: number): number[] {
    return Array.from(this.arena.subarray(slot * this.dimension, (slot + 1) * this.dimension));
  }

  /** The points among `ids` that exist, in request order. */
  get(ids: readonly string[], withVectors: boolean): StoredPoint[] {
    const points: StoredPoint[] = [];
    for (const id of ids) {
      const slot = this.slotById.get(id);
      if (slot === undefined) continue;
      const point: StoredPoint = { id };
      const payload = this.payloads[slot];
      if (payload !== undefined) point.payload = payload;
      if (withVectors) point.vector = this.vectorOf(slot);
      points.push(point);
    }
    return points;
  }

  count(filter?: Filter): number {
    return filter === undefined ? this.size : this.matchingSlots(filter).length;
  }

  stats(): ShardStats {
    const q = this.config.index.quantization;
    // usearch: the quantized vector, the key, and about 2 × connectivity u32 neighbours at level 0.
    const graphBytes = this.index.size() * (this.dimension * scalarBytes[q] + 8 + 8 * this.config.index.connectivity);
    const memoryBytes = this.arena.byteLength + this.keys.byteLength + this.metaBytesTotal * 2 + this.size * 64 + graphBytes;
    return { count: this.size, appliedSeq: this.lastSeq, memoryBytes: Math.round(memoryBytes) };
  }

  /** sha256 hex over every point in id order (id, key-sorted payload JSON, vector bytes): equal on converged replicas. */
  digest(): string {
    const hash = createHash("sha256");
    const header = Buffer.alloc(4);
    const field = (bytes: Uint8Array): void => {
      header.writeUInt32LE(bytes.byteLength, 0);
      hash.update(header);
      hash.update(bytes);
    };
    const ids = [...this.slotById.keys()].sort(compareIds);
    for (const id of ids) {
      const slot = this.slotById.get(id)!;
      field(Buffer.from(id));
      field(Buffer.from(canonicalJson(this.payloads[slot] ?? null)));
      const vector = this.arena.subarray(slot * this.dimension, (slot + 1) * this.dimension);
      field(new Uint8Array(vector.buffer, vector.byteOffset, vector.byteLength));
    }
    return hash.digest("hex");
  }

  /**
   * Writes the whole shard to one file (see snapshot-file.ts), atomically. The state is
   * captured synchronously (the vectors copied), so applies that run while the file is
   * being written do not leak into it.
   */
  async save(path: string): Promise<SavedSnapshot> {
    const indexPath = `${path}.${randomUUID()}.usearch`;
    let indexBytes: Buffer;
    try {
      this.index.save(indexPath);
      indexBytes = readFileSync(indexPath);
    } finally {
      rmSync(indexPath, { force: true });
    }
    const slots = [...this.slotById.values()].sort((a, b) => a - b);
    const keys = BigUint64Array.from(slots, (slot) => this.keys[slot]!);
    const meta: SnapshotMeta = {
      appliedSeq: this.lastSeq,
      dimension: this.dimension,
      metric: this.config.metric,
      quantization: this.config.index.quantization,
      slotCount: this.slotCount,
      slots,
      ids: slots.map((slot) => this.ids[slot]!),
      keys: new Uint8Array(keys.buffer),
      payloads: slots.map((slot) => this.payloads[slot] ?? null),
    };
    const vectors = new Uint8Array(this.arena.buffer, 0, this.slotCount * this.dimension * 4).slice();
    const appliedSeq = this.lastSeq;
    const bytes = await writeSnapshotFile(path, { meta, vectors, index: indexBytes });
    return { appliedSeq, bytes };
  }

  /** Restores a shard written by save: same keys, so later log entries apply identically. */
  static async load(config: ShardIndexConfig, path: string): Promise<ShardIndex> {
    const parts = await readSnapshotFile(path);
    const meta = parts.meta as SnapshotMeta;
    const expected = `${config.dimension}/${config.metric}/${config.index.quantization}`;
    const found = `${meta.dimension}/${meta.metric}/${meta.quantization}`;
    if (expected !== found) throw new Error(`${path}: snapshot is ${found} (dimension/metric/quantization), expected ${expected}`);

    const shard = new ShardIndex(config);
    const indexPath = `${path}.${randomUUID()}.usearch`;
    try {
      await writeFile(indexPath, parts.index);
      shard.index.load(indexPath);
    } finally {
      await rm(indexPath, { force: true });
    }
    if (shard.index.size() !== meta.ids.length) {
      throw new Error(`${path}: usearch index holds ${shard.index.size()} vectors, the snapshot lists ${meta.ids.length}`);
    }
    shard.restore(meta, parts.vectors);
    return shard;
  }

  private restore(meta: SnapshotMeta, vectorBytes: Uint8Array): void {
    this.lastSeq = meta.appliedSeq;
    this.slotCount = meta.slotCount;
    this.grow(Math.max(1024, meta.slotCount));
    // Copies: the file's bytes may sit at an offset that is not a multiple of 4 or 8.
    this.arena.set(new Float32Array(new Uint8Array(vectorBytes).buffer));
    const keys = new BigUint64Array(new Uint8Array(meta.keys).buffer);
    meta.slots.forEach((slot, i) => {
      const id = meta.ids[i]!;
      const key = keys[i]!;
      this.ids[slot] = id;
      this.keys[slot] = key;
      this.payloads[slot] = meta.payloads[i] ?? undefined;
      this.slotById.set(id, slot);
      this.slotByKey.set(key, slot);
      this.setMetaBytes(slot, id.length + (meta.payloads[i] ? JSON.stringify(meta.payloads[i]).length : 0));
    });
    for (let slot = meta.slotCount - 1; slot >= 0; slot--) {
      if (this.ids[slot] === undefined) this.freeSlots.push(slot);
    }
  }
}
