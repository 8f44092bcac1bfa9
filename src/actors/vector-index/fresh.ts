/**
 * The fresh buffer: vectors a replica has applied but its HNSW graph has not absorbed yet,
 * searched by a scan (usearch `exactSearch`, SIMD) and merged with the graph's results, the
 * way Milvus searches its growing segments. A point is searchable as soon as its log entry
 * is applied, at any ingest rate the buffer's bound allows; the graph absorbs the buffer in
 * time slices behind it (absorber.ts). A full chunk is searched in two passes: its 8-bit codes
 * (fresh-codes.ts) shortlist `shortlistPerHit` rows per hit wanted, and the shortlists of all
 * chunks are ranked together on their float32 vectors; the chunk still filling is scanned
 * on its float32 rows.
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
import { quantizer, type ChunkCodes, type Quantizer } from "./fresh-codes.ts";

/** Bytes of vectors per chunk: one exactSearch call each, so per-call overhead stays small next to the scan. */
const chunkBytesTarget = 1024 * 1024;
const chunkRowsMin = 64;
/**
 * Rows the code scan of a chunk shortlists per hit wanted, for the exact second pass. With 1
 * the shortlists already held the exact top 10 of 200 queries over 32,768 points (clustered
 * 128-d, fashion-mnist 784-d, uniform 64-d; l2, cosine and ip alike); 2 is the margin. One
 * search of a 16 MiB buffer, cold cache: 128-d 1.2–1.7 ms with 2 (2.0–2.5 ms scanning the
 * float32 rows), 784-d 2.9–3.9 ms (5.9–6.1 ms); 4 gave back half the gain.
 */
const shortlistPerHit = 2;

const metricKinds: Readonly<Record<Metric, MetricKind>> = { cosine: MetricKind.Cos, l2: MetricKind.L2sq, ip: MetricKind.IP };

interface Chunk {
  readonly id: number;
  /** rows × dimension; starts at offset 0 of its own buffer (exactSearch ignores byteOffset). */
  readonly vectors: Float32Array;
  readonly slots: Int32Array;
  readonly versions: Float64Array;
  /** Set once the chunk is full. */
  codes: ChunkCodes | undefined;
  count: number;
  /** Rows before this index were absorbed or skipped. */
  absorbed: number;
  /** Rows that are stale (their slot was rewritten or freed). */
  stale: number;
}

/** The shortlisted rows of one search: their float32 vectors back to back, and their slots. */
interface Shortlisted {
  vectors: Float32Array;
  readonly slots: number[];
}

/**
 * Kept between searches (one per thread: a search runs to its end) up to this many floats; a
 * search that shortlists more (a large k) uses a buffer of its own.
 */
const shortlistFloatsKeptMax = 256 * 1024;
let shortlistVectors: Float32Array = new Float32Array(0);

/** Makes room in `into` for `rows` more rows, keeping the ones already there. */
function reserve(into: Shortlisted, rows: number, dimension: number): void {
  const length = (into.slots.length + rows) * dimension;
  if (into.vectors.length >= length) return;
  const larger = new Float32Array(Math.max(length, into.vectors.length * 2));
  larger.set(into.vectors.subarray(0, into.slots.length * dimension));
  into.vectors = larger;
}

/** Is `version` still the version of `slot`? */
export type IsLive = (slot: number, version: number) => boolean;

export class FreshBuffer {
  readonly #dimension: number;
  readonly #metric: MetricKind;
  readonly #quantizer: Quantizer;
  /** The query's code for one chunk (its own buffer: exactSearch reads from offset 0). */
  readonly #queryCode: Int8Array;
  readonly #chunkRows: number;
  readonly #chunks: Chunk[] = [];
  readonly #byId = new Map<number, Chunk>();
  #nextId = 0;
  /** Rows held in every chunk (absorbed rows of the head chunk included: they are still scanned). */
  #rowsHeld = 0;

  constructor(dimension: number, metric: Metric) {
    this.#dimension = dimension;
    this.#metric = metricKinds[metric];
    this.#quantizer = quantizer(metric, dimension);
    this.#queryCode = new Int8Array(dimension);
    this.#chunkRows = Math.max(chunkRowsMin, Math.floor(chunkBytesTarget / (dimension * 4)));
  }

  /** Bytes of float32 vectors held: what the buffer's bound counts (full chunks hold a quarter more in codes). */
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
    if (tail.count === this.#chunkRows) tail.codes = this.#quantizer.encode(tail.vectors, tail.count);
    return tail.id;
  }

  /** One row of chunk `chunkId` no longer holds its slot's current vector. */
  markStale(chunkId: number): void {
    const chunk = this.#byId.get(chunkId);
    if (chunk) chunk.stale++;
  }

  /**
   * Candidates for the `k` nearest live rows to `query` (a whole-buffer array): the `k` nearest
   * of each chunk still filling and of the full chunks' shortlists together; unsorted, and
   * possibly with a slot twice (see the header).
   */
  search(query: Float32Array, k: number, isLive: IsLive): Scored[] {
    const found: Scored[] = [];
    const shortlisted: Shortlisted = { vectors: shortlistVectors, slots: [] };
    for (const chunk of this.#chunks) {
      const wanted = Math.min(chunk.count, k + chunk.stale);
      if (wanted === 0) continue;
      const shortlist = k * shortlistPerHit + chunk.stale;
      if (chunk.codes !== undefined && shortlist < chunk.count) this.#shortlist(chunk, chunk.codes, query, shortlist, isLive, shortlisted);
      else this.#scan(chunk.vectors, chunk.count, query, wanted, (row) => chunk.slots[row]!, (row) => isLive(chunk.slots[row]!, chunk.versions[row]!), found);
    }
    const { vectors, slots } = shortlisted;
    if (vectors.length <= shortlistFloatsKeptMax) shortlistVectors = vectors;
    if (slots.length > 0) this.#scan(vectors, slots.length, query, Math.min(k, slots.length), (row) => slots[row]!, () => true, found);
    return found;
  }

  /** exactSearch over the first `rows` rows of `vectors`: the `wanted` nearest that `keep` keeps go to `found`. */
  #scan(vectors: Float32Array, rows: number, query: Float32Array, wanted: number, slotOf: (row: number) => number, keep: (row: number) => boolean, found: Scored[]): void {
    const data = vectors.subarray(0, rows * this.#dimension);
    const { keys, distances } = exactSearch(data, query, this.#dimension, wanted, this.#metric, 1) as { keys: BigUint64Array; distances: Float32Array };
    for (let i = 0; i < keys.length; i++) {
      const row = Number(keys[i]!);
      if (keep(row)) found.push({ slot: slotOf(row), distance: distances[i]! });
    }
  }

  /** Adds the live rows among the chunk's `shortlist` nearest by their codes to `into`. */
  #shortlist(chunk: Chunk, codes: ChunkCodes, query: Float32Array, shortlist: number, isLive: IsLive, into: Shortlisted): void {
    const dim = this.#dimension;
    this.#quantizer.query(query, codes, this.#queryCode);
    const { keys } = exactSearch(codes.codes, this.#queryCode, dim, shortlist, this.#metric, 1) as { keys: BigUint64Array };
    reserve(into, keys.length, dim);
    for (let i = 0; i < keys.length; i++) {
      const row = Number(keys[i]!);
      const slot = chunk.slots[row]!;
      if (!isLive(slot, chunk.versions[row]!)) continue;
      into.vectors.set(chunk.vectors.subarray(row * dim, (row + 1) * dim), into.slots.length * dim);
      into.slots.push(slot);
    }
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
      codes: undefined,
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
