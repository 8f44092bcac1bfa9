/**
 * The live points of one shard, by slot: id, payload, version and float32 vector (in a
 * VectorFile: usearch's JS binding cannot read vectors back), plus where the point's current
 * vector is being indexed: in the HNSW graph (`inGraph`) or still in the fresh buffer
 * (`freshChunk`). A slot's usearch key is the slot number itself, so no key → slot
 * map is needed (a BigInt-keyed Map cost ~100 bytes per point); ids and their slots are in
 * an IdTable (id-table.ts), not in JS objects.
 *
 * The lowest free slot is always allocated first (a min-heap of freed slots), so slot numbers
 * are a function of the set of live points: replicas that apply the same log, and a replica
 * restored from a snapshot of it, allocate the same slots from then on.
 */
import type { Payload } from "../../runtime/schemas.ts";
import { IdTable } from "./id-table.ts";
import { VectorFile } from "./vector-file.ts";

/** Slots reserved at first growth; the tables double from there. */
const slotsInitial = 1024;

/** A point's version: its log position, sequence × 2^16 + position in the entry (see keyOf in log-entry.ts). */
export function versionOf(seq: number, position: number): number {
  return seq * 65_536 + position;
}

export class PointTable {
  readonly dimension: number;
  readonly #ids = new IdTable();
  readonly payloads: (Payload | undefined)[] = [];
  /** Encoded size of each slot's id and payload (rounded), for the memory estimate. */
  #metaBytes: Uint32Array = new Uint32Array(0);
  #metaBytesTotal = 0;
  /** Version of the point in each slot; 0 for a free slot (no write has version 0: sequences start at 1). */
  versions: Float64Array = new Float64Array(0);
  /** Every slot's vector (a freed slot keeps its last one, unread). */
  readonly vectors: VectorFile;
  /** 1 when the slot's current vector is in the graph, under key = slot. */
  inGraph: Uint8Array = new Uint8Array(0);
  /** The fresh-buffer chunk holding the slot's current vector, or −1. */
  freshChunk: Int32Array = new Int32Array(0);
  /** Slots ever used; free slots below it are in `#free`. */
  slotCount = 0;
  readonly #free = new SlotHeap();

  /** `vectorDir`: where the vector file goes (it is unlinked at once: see vector-file.ts). */
  constructor(dimension: number, vectorDir: string) {
    this.dimension = dimension;
    this.vectors = new VectorFile(vectorDir, dimension);
  }

  get size(): number {
    return this.#ids.size;
  }

  /** Bytes of the id table (for the shard's memory estimate). */
  get idBytes(): number {
    return this.#ids.bytes;
  }

  get metaBytes(): number {
    return this.#metaBytesTotal;
  }

  slotOf(id: string): number | undefined {
    return this.#ids.slotOf(id);
  }

  /** The id of the point in `slot`, if it holds one. */
  idOf(slot: number): string | undefined {
    return this.#ids.idOf(slot);
  }

  /** How many UTF-8 bytes the id in `slot` takes, and a copy of them (snapshots pack ids without a string each). */
  idUtf8Length(slot: number): number {
    return this.#ids.utf8Length(slot);
  }

  copyIdUtf8(slot: number, into: Buffer, at: number): number {
    return this.#ids.copyUtf8(slot, into, at);
  }

  /** Live slots in ascending order (a scan of the slot table: ~1 ms for 250,000 slots). */
  liveSlots(): number[] {
    const slots: number[] = [];
    for (let slot = 0; slot < this.slotCount; slot++) if (this.#ids.has(slot)) slots.push(slot);
    return slots;
  }

  isLive(slot: number, version: number): boolean {
    return this.versions[slot] === version;
  }

  /**
   * Writes a point into `existing`, the slot the caller found for its id (`slotOf`; it
   * unindexed that slot's old vector first), or into a new slot; returns the slot.
   */
  write(id: string, existing: number | undefined, version: number, payload: Payload | null | undefined, vectors: Float32Array, offset: number, metaBytes: number): number {
    let slot = existing;
    if (slot === undefined) {
      slot = this.#allocate();
      this.#ids.set(id, slot);
    }
    this.versions[slot] = version;
    this.payloads[slot] = payload ?? undefined;
    this.#setMetaBytes(slot, metaBytes);
    this.vectors.write(slot, vectors, offset);
    return slot;
  }

  /** Frees `slot` and its id; the caller has unindexed its vector. */
  free(slot: number): void {
    this.#ids.delete(slot);
    this.payloads[slot] = undefined;
    this.#setMetaBytes(slot, 0);
    this.versions[slot] = 0;
    this.#free.push(slot);
  }

  /** The vector of a slot. */
  vector(slot: number): Float32Array {
    return this.vectors.read(slot);
  }

  /** Rebuilds the table from a snapshot's points (slots as they were saved; the vectors are already in the file). */
  restore(slotCount: number, slots: readonly number[], ids: readonly string[], versions: Float64Array, payloads: readonly (Payload | null)[]): void {
    this.slotCount = slotCount;
    this.#grow(Math.max(slotsInitial, slotCount));
    slots.forEach((slot, i) => {
      const id = ids[i]!;
      const payload = payloads[i] ?? undefined;
      this.#ids.set(id, slot);
      this.versions[slot] = versions[i]!;
      this.payloads[slot] = payload;
      this.#setMetaBytes(slot, id.length + (payload ? JSON.stringify(payload).length : 0));
    });
    for (let slot = 0; slot < slotCount; slot++) {
      if (!this.#ids.has(slot)) this.#free.push(slot);
    }
  }

  #allocate(): number {
    const free = this.#free.pop();
    if (free !== undefined) return free;
    const slot = this.slotCount++;
    if (slot >= this.versions.length) this.#grow(Math.max(slotsInitial, this.versions.length * 2));
    return slot;
  }

  #grow(capacity: number): void {
    const versions = new Float64Array(capacity);
    versions.set(this.versions);
    this.versions = versions;
    const inGraph = new Uint8Array(capacity);
    inGraph.set(this.inGraph);
    this.inGraph = inGraph;
    const freshChunk = new Int32Array(capacity).fill(-1);
    freshChunk.set(this.freshChunk);
    this.freshChunk = freshChunk;
    const metaBytes = new Uint32Array(capacity);
    metaBytes.set(this.#metaBytes);
    this.#metaBytes = metaBytes;
    this.#ids.reserve(capacity);
  }

  #setMetaBytes(slot: number, bytes: number): void {
    const rounded = Math.round(bytes);
    this.#metaBytesTotal += rounded - this.#metaBytes[slot]!;
    this.#metaBytes[slot] = rounded;
  }
}

/** A binary min-heap of free slot numbers. */
class SlotHeap {
  readonly #items: number[] = [];

  push(slot: number): void {
    const items = this.#items;
    items.push(slot);
    for (let i = items.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (items[parent]! <= items[i]!) break;
      [items[parent], items[i]] = [items[i]!, items[parent]!];
      i = parent;
    }
  }

  pop(): number | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    if (items.length === 0 || last === undefined) return top;
    items[0] = last;
    for (let i = 0; ; ) {
      const left = 2 * i + 1;
      const right = left + 1;
      let least = i;
      if (left < items.length && items[left]! < items[least]!) least = left;
      if (right < items.length && items[right]! < items[least]!) least = right;
      if (least === i) break;
      [items[least], items[i]] = [items[i]!, items[least]!];
      i = least;
    }
    return top;
  }
}
