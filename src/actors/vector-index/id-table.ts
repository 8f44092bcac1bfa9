/**
 * A shard's point ids by slot, and the slot of each id, without a JS object per point: the
 * ids' UTF-8 bytes side by side in one arena, and an open-addressing hash table of slots.
 * A `Map<string, number>` beside an array of the id strings held 82 B of V8 heap per point
 * (1M ids like `id-123456`, bench/points-memory.ts); this holds 36 B per point of them, in
 * typed arrays the garbage collector does not trace (decision 006).
 *
 * Ids are well-formed Unicode (PointId in schemas.ts), so their UTF-8 bytes give them back
 * exactly.
 */

/**
 * Arena bytes at first. A full arena is compacted (the freed ids' bytes dropped), into one
 * twice as large while the live ids would fill more than `arenaFillMax` of it.
 */
const arenaBytesInitial = 64 * 1024;
const arenaFillMax = 0.75;
/** Hash table cells at first (a power of two). */
const cellsInitial = 16;
/**
 * The table is rebuilt past this share of used cells (live and deleted), linear probing's
 * usual bound, with as many cells as leave the live ids at most `cellsLiveShareRebuilt`.
 */
const cellsUsedShareMax = 0.75;
const cellsLiveShareRebuilt = 0.5;
// A rebuilt table must have room before the next rebuild, and a probe must meet an empty cell.
if (!(cellsLiveShareRebuilt < cellsUsedShareMax && cellsUsedShareMax < 1)) throw new Error("id-table: cell shares out of order");
/** A cell that never held a slot ends a probe; a deleted one does not. */
const cellEmpty = -1;
const cellDeleted = -2;
/** Scratch for encoding an id at first (3 bytes per UTF-16 unit at most); it grows for a longer one. */
const scratchBytes = 1024;

const encoder = new TextEncoder();

export class IdTable {
  #arena: Uint8Array = new Uint8Array(arenaBytesInitial);
  #arenaText: Buffer = Buffer.from(this.#arena.buffer, 0, arenaBytesInitial);
  #arenaUsed = 0;
  /** Bytes in the arena of ids since freed. */
  #arenaFreed = 0;
  /** Per slot: where its id's bytes start, their count + 1 (0: no id), and their hash. */
  #start = new Uint32Array(0);
  #length = new Uint16Array(0);
  #hash = new Uint32Array(0);
  #cells = new Int32Array(cellsInitial).fill(cellEmpty);
  #live = 0;
  #deleted = 0;
  /** The last id encoded (#encode), its bytes from 0: a reused buffer, not a view per call (~100 ns each). */
  #scratch = new Uint8Array(scratchBytes);

  /** Ids held. */
  get size(): number {
    return this.#live;
  }

  /** Bytes of the arrays behind the table (for the shard's memory estimate). */
  get bytes(): number {
    return this.#arena.byteLength + this.#start.byteLength + this.#length.byteLength + this.#hash.byteLength + this.#cells.byteLength;
  }

  /** Makes room for slots below `slots`. */
  reserve(slots: number): void {
    if (slots <= this.#start.length) return;
    this.#start = grown(this.#start, new Uint32Array(slots));
    this.#length = grown(this.#length, new Uint16Array(slots));
    this.#hash = grown(this.#hash, new Uint32Array(slots));
  }

  has(slot: number): boolean {
    return slot < this.#length.length && this.#length[slot] !== 0;
  }

  /** The id in `slot`, if any. */
  idOf(slot: number): string | undefined {
    if (!this.has(slot)) return undefined;
    const start = this.#start[slot]!;
    return this.#arenaText.toString("utf8", start, start + this.#length[slot]! - 1);
  }

  /** How many UTF-8 bytes the id in `slot` takes (0 when it holds none). */
  utf8Length(slot: number): number {
    return this.has(slot) ? this.#length[slot]! - 1 : 0;
  }

  /** Copies the UTF-8 bytes of the id in `slot` into `into` from `at`, without a string; returns how many. */
  copyUtf8(slot: number, into: Buffer, at: number): number {
    if (!this.has(slot)) return 0;
    const start = this.#start[slot]!;
    return this.#arenaText.copy(into, at, start, start + this.#length[slot]! - 1);
  }

  slotOf(id: string): number | undefined {
    const length = this.#encode(id);
    const hash = hashOf(this.#scratch, length);
    const mask = this.#cells.length - 1;
    for (let cell = hash & mask; ; cell = (cell + 1) & mask) {
      const slot = this.#cells[cell]!;
      if (slot === cellEmpty) return undefined;
      if (slot >= 0 && this.#hash[slot] === hash && this.#holds(slot, length)) return slot;
    }
  }

  /** Puts `id` in `slot` (reserved, holding no id); the caller checked that no slot holds `id`. */
  set(id: string, slot: number): void {
    if (slot >= this.#start.length) throw new Error(`slot ${slot} is not reserved (${this.#start.length} are)`);
    if (this.has(slot)) throw new Error(`slot ${slot} already holds an id`);
    const length = this.#encode(id);
    if (length + 1 > 0xffff) throw new Error(`id of ${length} bytes is too long to hold`);
    if ((this.#live + this.#deleted + 1) > cellsUsedShareMax * this.#cells.length) this.#rebuild();
    const start = this.#append(length);
    this.#start[slot] = start;
    this.#length[slot] = length + 1;
    const hash = hashOf(this.#scratch, length);
    this.#hash[slot] = hash;
    this.#place(slot, hash);
    this.#live++;
  }

  /** Takes the id out of `slot`, if it holds one. */
  delete(slot: number): void {
    if (!this.has(slot)) return;
    const mask = this.#cells.length - 1;
    for (let cell = this.#hash[slot]! & mask; ; cell = (cell + 1) & mask) {
      const held = this.#cells[cell]!;
      if (held === cellEmpty) throw new Error(`slot ${slot} holds an id the table does not`);
      if (held !== slot) continue;
      this.#cells[cell] = cellDeleted;
      break;
    }
    this.#arenaFreed += this.#length[slot]! - 1;
    this.#length[slot] = 0;
    this.#live--;
    this.#deleted++;
  }

  /** Writes the id's UTF-8 bytes to the scratch buffer from 0; returns how many. */
  #encode(id: string): number {
    if (3 * id.length > this.#scratch.length) this.#scratch = new Uint8Array(3 * id.length);
    const scratch = this.#scratch;
    // ASCII, the common case, byte by byte: TextEncoder's call costs more than a short id.
    for (let i = 0; i < id.length; i++) {
      const code = id.charCodeAt(i);
      if (code >= 0x80) return encoder.encodeInto(id, scratch).written;
      scratch[i] = code;
    }
    return id.length;
  }

  /** Whether `slot`'s id is the scratch buffer's first `length` bytes. */
  #holds(slot: number, length: number): boolean {
    if (this.#length[slot]! - 1 !== length) return false;
    const start = this.#start[slot]!;
    const arena = this.#arena;
    const scratch = this.#scratch;
    for (let i = 0; i < length; i++) if (arena[start + i] !== scratch[i]) return false;
    return true;
  }

  #place(slot: number, hash: number): void {
    const mask = this.#cells.length - 1;
    let cell = hash & mask;
    while (this.#cells[cell]! >= 0) cell = (cell + 1) & mask;
    if (this.#cells[cell] === cellDeleted) this.#deleted--;
    this.#cells[cell] = slot;
  }

  /** A table sized for the live ids (and one more), without deleted cells. */
  #rebuild(): void {
    let cells = cellsInitial;
    while (this.#live + 1 > cellsLiveShareRebuilt * cells) cells *= 2;
    this.#cells = new Int32Array(cells).fill(cellEmpty);
    this.#deleted = 0;
    for (let slot = 0; slot < this.#length.length; slot++) if (this.#length[slot] !== 0) this.#place(slot, this.#hash[slot]!);
  }

  /** Copies the scratch buffer's first `length` bytes to the arena's end (after compacting or growing it if they do not fit); returns where. */
  #append(length: number): number {
    if (this.#arenaUsed + length > this.#arena.length) {
      const liveBytes = this.#arenaUsed - this.#arenaFreed;
      let size = this.#arena.length;
      while (liveBytes + length > arenaFillMax * size) size *= 2;
      this.#compactInto(new Uint8Array(size));
    }
    const start = this.#arenaUsed;
    const arena = this.#arena;
    const scratch = this.#scratch;
    for (let i = 0; i < length; i++) arena[start + i] = scratch[i]!;
    this.#arenaUsed += length;
    return start;
  }

  /** Moves the live ids' bytes to the start of `arena` (freed ones are left behind) and makes it the arena. */
  #compactInto(arena: Uint8Array): void {
    const from = this.#arena;
    let used = 0;
    for (let slot = 0; slot < this.#length.length; slot++) {
      const length = this.#length[slot]! - 1;
      if (length < 0) continue;
      const start = this.#start[slot]!;
      // byte by byte: a subarray per id would allocate a view for each of a million ids
      for (let i = 0; i < length; i++) arena[used + i] = from[start + i]!;
      this.#start[slot] = used;
      used += length;
    }
    this.#arena = arena;
    this.#arenaText = Buffer.from(arena.buffer, arena.byteOffset, arena.byteLength);
    this.#arenaUsed = used;
    this.#arenaFreed = 0;
  }
}

/** FNV-1a over the bytes, with a final mix (murmur3's) so that linear probing sees the low bits spread. */
function hashOf(bytes: Uint8Array, length: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function grown<T extends Uint32Array | Uint16Array>(from: T, to: T): T {
  to.set(from);
  return to;
}
