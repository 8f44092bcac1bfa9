/**
 * A shard's float32 vectors by slot, in a file rather than on the heap: usearch's JS binding
 * cannot read vectors back, so we keep our own copy (for `withVectors`, exact filtered scans,
 * digests and snapshots), and holding it in memory doubled a 128-d shard's resident size
 * (512 B of arena per point next to usearch's ~690 B). In a file it lives in the page cache,
 * which the kernel can evict under pressure, like Qdrant's on-disk vectors. Reads and writes
 * are synchronous pread/pwrite of the page cache, a few µs each, on the index worker.
 *
 * The file is a cache of state the log and the snapshots can rebuild: never fsynced, and
 * unlinked as soon as it is opened, so it is gone when its descriptor closes — at `close`, or
 * when the process ends, however it ends.
 */
import { randomUUID } from "node:crypto";
import { closeSync, mkdirSync, openSync, readSync, unlinkSync, writeSync } from "node:fs";
import path from "node:path";

/** Rows read in one pread when gathering many slots: bounds the scratch buffer. */
const gatherRowsMax = 1024;
/** Slots closer than this are read in one pread (reading the gap beats another syscall). */
const gatherGapRowsMax = 8;

export class VectorFile {
  readonly #dimension: number;
  readonly #rowBytes: number;
  #fd: number;

  /** A new, empty file in `dir` (created if missing). */
  constructor(dir: string, dimension: number) {
    this.#dimension = dimension;
    this.#rowBytes = dimension * 4;
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `vectors-${randomUUID()}.f32`);
    this.#fd = openSync(file, "w+");
    unlinkSync(file);
  }

  /** Writes the vector at `offset` of `source` as slot `slot`'s. */
  write(slot: number, source: Float32Array, offset: number): void {
    const bytes = new Uint8Array(source.buffer, source.byteOffset + offset * 4, this.#rowBytes);
    writeAll(this.#fd, bytes, slot * this.#rowBytes);
  }

  /** Slot `slot`'s vector (zeros for a slot never written). */
  read(slot: number, into = new Float32Array(this.#dimension)): Float32Array {
    readAll(this.#fd, new Uint8Array(into.buffer, into.byteOffset, this.#rowBytes), slot * this.#rowBytes);
    return into;
  }

  /** The vectors of `slots` (ascending), back to back in the returned array, in the order given. */
  gather(slots: ArrayLike<number>): Float32Array {
    const dim = this.#dimension;
    const out = new Float32Array(slots.length * dim);
    const scratch = new Float32Array(gatherRowsMax * dim);
    for (let i = 0; i < slots.length; ) {
      // A run of slots close enough to read in one go.
      const first = slots[i]!;
      let j = i + 1;
      while (j < slots.length && slots[j]! - slots[j - 1]! <= gatherGapRowsMax && slots[j]! - first < gatherRowsMax) j++;
      const rows = slots[j - 1]! - first + 1;
      readAll(this.#fd, new Uint8Array(scratch.buffer, 0, rows * this.#rowBytes), first * this.#rowBytes);
      for (let n = i; n < j; n++) out.set(scratch.subarray((slots[n]! - first) * dim, (slots[n]! - first + 1) * dim), n * dim);
      i = j;
    }
    return out;
  }

  /** Reads `into.byteLength` bytes from byte `position` (snapshot streaming). */
  readBytes(into: Uint8Array, position: number): void {
    readAll(this.#fd, into, position);
  }

  /** Writes raw bytes at byte `position` (snapshot loading). */
  writeBytes(bytes: Uint8Array, position: number): void {
    writeAll(this.#fd, bytes, position);
  }

  /** Closes (and so frees) the file; idempotent. */
  close(): void {
    if (this.#fd < 0) return;
    closeSync(this.#fd);
    this.#fd = -1;
  }
}

function writeAll(fd: number, bytes: Uint8Array, position: number): void {
  for (let done = 0; done < bytes.byteLength; ) done += writeSync(fd, bytes, done, bytes.byteLength - done, position + done);
}

/** Reads exactly `into.byteLength` bytes; past the end of the file, zeros. */
function readAll(fd: number, into: Uint8Array, position: number): void {
  let done = 0;
  while (done < into.byteLength) {
    const n = readSync(fd, into, done, into.byteLength - done, position + done);
    if (n === 0) break;
    done += n;
  }
  into.fill(0, done);
}
