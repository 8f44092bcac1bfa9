/**
 * The fresh buffer: vectors a replica has applied but its HNSW graph has not absorbed yet,
 * searched exactly (usearch `exactSearch`, SIMD) and merged with the graph's results, the
 * way Milvus searches its growing segments. A point is searchable as soon as its log entry
 * is applied, at any ingest rate the buffer's bound allows; the graph absorbs the buffer in
 * time slices behind it (absorber.ts).
 *
 * Rows sit in chunks of contiguous float32 vectors, first in first out. A row remembers the
 * slot and version it was written for; a row whose slot has since been rewritten or freed is
 * stale and skipped (the chunk counts its stale rows, absorbed ones included, so a search
 * asks exactSearch for enough candidates). Rows already absorbed stay in the head chunk until all of it is: a
 * search may find such a point twice (graph and chunk, same vector), and the caller keeps one.
 */
import { exactSearch, MetricKind } from "usearch";
import type { Metric } from "../../runtime/schemas.ts";
import type { Scored } from "./distance.ts";

/** Bytes of vectors per chunk: one exactSearch call each, so per-call overhead stays small next to the scan. */
const chunkBytesTarget = 1024 * 1024;
const chunkRowsMin = 64;

const metricKinds: Readonly<Record<Metric, MetricKind>> = { cosine: MetricKind.Cos, l2: MetricKind.L2sq, ip: MetricKind.IP };

interface Chunk {
  readonly id: number;
  /** rows × dimension; starts at offset 0 of its own buffer (exactSearch ignores byteOffset). */
  readonly vectors: Float32Array;
  readonly slots: Int32Array;
  readonly versions: Float64Array;
  count: number;
  /** Rows before this index were absorbed or skipped. */
  absorbed: number;
  /** Rows that are stale (their slot was rewritten or freed). */
  stale: number;
}

/** Is `version` still the version of `slot`? */
export type IsLive = (slot: number, version: number) => boolean;

export class FreshBuffer {
  readonly #dimension: number;
  readonly #metric: MetricKind;
  readonly #chunkRows: number;
  readonly #chunks: Chunk[] = [];
  readonly #byId = new Map<number, Chunk>();
  #nextId = 0;
  /** Rows held in every chunk (absorbed rows of the head chunk included: they are still scanned). */
  #rowsHeld = 0;

  constructor(dimension: number, metric: Metric) {
    this.#dimension = dimension;
    this.#metric = metricKinds[metric];
    this.#chunkRows = Math.max(chunkRowsMin, Math.floor(chunkBytesTarget / (dimension * 4)));
  }

  /** Bytes of vectors held: what a search scans and what the buffer's bound counts. */
  get bytes(): number {
    return this.#rowsHeld * this.#dimension * 4;
  }

  /** Rows still to absorb (stale ones included until they are skipped). */
  get pending(): number {
    let rows = 0;
    for (const chunk of this.#chunks) rows += chunk.count - chunk.absorbed;
    return rows;
  }

  /** Appends the vector at `offset` of `vectors`; returns the id of the chunk that holds it. */
  push(slot: number, version: number, vectors: Float32Array, offset: number): number {
    let tail = this.#chunks[this.#chunks.length - 1];
    if (tail === undefined || tail.count === this.#chunkRows) tail = this.#newChunk();
    const row = tail.count++;
    tail.vectors.set(vectors.subarray(offset, offset + this.#dimension), row * this.#dimension);
    tail.slots[row] = slot;
    tail.versions[row] = version;
    this.#rowsHeld++;
    return tail.id;
  }

  /** One row of chunk `chunkId` no longer holds its slot's current vector. */
  markStale(chunkId: number): void {
    const chunk = this.#byId.get(chunkId);
    if (chunk) chunk.stale++;
  }

  /**
   * The `k` nearest live rows of every chunk to `query` (a whole-buffer array), unsorted and
   * possibly with a slot twice (see the header).
   */
  search(query: Float32Array, k: number, isLive: IsLive): Scored[] {
    const found: Scored[] = [];
    for (const chunk of this.#chunks) {
      const wanted = Math.min(chunk.count, k + chunk.stale);
      if (wanted === 0) continue;
      const data = chunk.vectors.subarray(0, chunk.count * this.#dimension);
      const { keys, distances } = exactSearch(data, query, this.#dimension, wanted, this.#metric, 1) as {
        keys: BigUint64Array;
        distances: Float32Array;
      };
      for (let i = 0; i < keys.length; i++) {
        const row = Number(keys[i]!);
        const slot = chunk.slots[row]!;
        if (isLive(slot, chunk.versions[row]!)) found.push({ slot, distance: distances[i]! });
      }
    }
    return found;
  }

  /**
   * Hands up to `rowsMax` of the oldest unabsorbed rows to `take` (the caller skips the stale
   * ones) and drops chunks that are done. Returns how many rows were handed over.
   */
  absorb(rowsMax: number, take: (slot: number, version: number, vectors: Float32Array, offset: number) => void): number {
    let handed = 0;
    for (;;) {
      const head = this.#chunks[0];
      if (head === undefined) break;
      // A finished chunk goes at once (also after the last row), so its bytes never hold applies back.
      if (head.absorbed === head.count) {
        this.#drop(head);
        if (head.count < this.#chunkRows) break; // It was the tail: nothing is left.
        continue;
      }
      if (handed === rowsMax) break;
      const row = head.absorbed++;
      take(head.slots[row]!, head.versions[row]!, head.vectors, row * this.#dimension);
      handed++;
    }
    return handed;
  }

  /** Every row, oldest first, for a snapshot (`visit` sees the live ones). */
  forEachLive(isLive: IsLive, visit: (slot: number) => void): void {
    for (const chunk of this.#chunks) {
      for (let row = chunk.absorbed; row < chunk.count; row++) {
        const slot = chunk.slots[row]!;
        if (isLive(slot, chunk.versions[row]!)) visit(slot);
      }
    }
  }

  #newChunk(): Chunk {
    const rows = this.#chunkRows;
    const chunk: Chunk = {
      id: this.#nextId++,
      vectors: new Float32Array(rows * this.#dimension),
      slots: new Int32Array(rows),
      versions: new Float64Array(rows),
      count: 0,
      absorbed: 0,
      stale: 0,
    };
    this.#chunks.push(chunk);
    this.#byId.set(chunk.id, chunk);
    return chunk;
  }

  #drop(chunk: Chunk): void {
    this.#chunks.shift();
    this.#byId.delete(chunk.id);
    this.#rowsHeld -= chunk.count;
  }
}
