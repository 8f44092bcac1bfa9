/**
 * The single-file container a shard snapshot is written to:
 *
 *   "JADESNAP" | version u32 | reserved u32 | metaBytes u64 | vectorBytes u64 |
 *   indexBytes u64 | sha256(body) 32 bytes | body = meta (msgpack) · vectors · usearch index
 *
 * One file, so the object store holds one blob per snapshot; the checksum catches a
 * truncated or corrupted download before usearch's native loader sees it. Written to
 * `path.tmp`, fsynced, then renamed, so a crash never leaves half a file.
 *
 * Both directions stream in slices with async I/O: the index worker keeps answering
 * searches while a snapshot is written or read, and neither side holds a second copy of
 * the vectors or the graph in memory (version 1 read the whole file into memory and copied
 * the vectors: a save doubled the resident size of a large shard).
 */
import { createHash, type Hash } from "node:crypto";
import { open, rename, rm, type FileHandle } from "node:fs/promises";
import { Packr } from "msgpackr";
import type { TimeSlicer } from "../../runtime/async.ts";

const magic = Buffer.from("JADESNAP", "ascii");
/**
 * 2: graph keyed by slot, meta with versions and the graph's membership (issue 10).
 * 3: the vector section holds only the live slots, in slot order (`meta.slots`), not every
 *    slot up to the highest used: deleted points no longer take room (decision 007).
 */
export const snapshotFormatVersion = 3;
/** Versions this code reads. */
const readableVersions: ReadonlySet<number> = new Set([2, 3]);
const headerBytes = magic.length + 4 + 4 + 3 * 8 + 32;
/**
 * Bytes per read or write: small enough that a slice never holds the worker long. The worker
 * hashes each slice (SHA-256, ~3 ms for 4 MiB here) and reads the vectors' slices from their
 * file synchronously, so a search arriving meanwhile waits for the slice. With 4 MiB, the
 * searches that overlapped a save at 300,000 × 128-d read p95 16.3 ms (p99 19.9); with 1 MiB,
 * 9.8 ms (p99 12.9; one experiment each, 59 and 72 searches).
 */
const sliceBytes = 1024 * 1024;

const packr = new Packr({ useRecords: false, moreTypes: false });
/** Items of a long array packed per call: the metadata of a 250,000-point shard took 59 ms in one call. */
const packSliceItems = 16_384;

/** Bytes read slice by slice from somewhere else (a shard's vector file). */
export interface ByteSource {
  byteLength: number;
  read(into: Uint8Array, position: number): void;
}

export interface SnapshotSource {
  /** Packed between the slicer's pauses: must not change until the write resolves. */
  meta: object;
  slicer: TimeSlicer;
  /** Read slice by slice: must not change until the write resolves. */
  vectors: ByteSource;
  /** A usearch index file, copied into the container. */
  indexFile: string;
}

/** Where the sections of a verified snapshot file are. */
export interface SnapshotLayout {
  version: number;
  meta: unknown;
  vectorsOffset: number;
  vectorBytes: number;
  indexOffset: number;
  indexBytes: number;
}

/** Writes the container atomically; returns its size in bytes. */
export async function writeSnapshotFile(path: string, source: SnapshotSource): Promise<number> {
  const meta = await packInSlices(source.meta, source.slicer);
  const tmp = `${path}.tmp`;
  const out = await open(tmp, "w");
  let total: number;
  try {
    const hash = createHash("sha256");
    let at = headerBytes;
    at += await writeHashed(out, at, meta, hash);
    const slice = Buffer.alloc(Math.min(sliceBytes, Math.max(1, source.vectors.byteLength)));
    for (let offset = 0; offset < source.vectors.byteLength; offset += sliceBytes) {
      const chunk = slice.subarray(0, Math.min(sliceBytes, source.vectors.byteLength - offset));
      source.vectors.read(chunk, offset);
      at += await writeHashed(out, at, chunk, hash);
    }
    const indexBytes = await copyHashed(source.indexFile, out, at, hash);
    const header = headerOf(meta.byteLength, source.vectors.byteLength, indexBytes, hash.digest());
    await writeAll(out, header, 0);
    await out.sync();
    total = at + indexBytes;
  } catch (err) {
    await out.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await out.close();
  await rename(tmp, path);
  return total;
}

/** An array whose items are packed already (msgpack, the array's header aside): `packInSlices` writes them as they are. */
export class PackedArray {
  constructor(
    readonly length: number,
    readonly items: Uint8Array,
  ) {}
}

/** Strings packed between pauses of `slicer`: `count` of them, the i-th given as its UTF-8 length and a copy of its bytes. */
export async function packUtf8Strings(
  count: number,
  utf8: { length(i: number): number; copy(i: number, into: Buffer, at: number): number },
  slicer: TimeSlicer,
): Promise<PackedArray> {
  let bytes = 0;
  for (let i = 0; i < count; i++) bytes += strHeaderBytes(utf8.length(i)) + utf8.length(i);
  const items = Buffer.allocUnsafe(bytes);
  let at = 0;
  for (let i = 0; i < count; i++) {
    const length = utf8.length(i);
    at = writeStrHeader(items, at, length);
    at += utf8.copy(i, items, at);
    if (i % packSliceItems === packSliceItems - 1) await slicer.pause();
  }
  if (at !== bytes) throw new Error(`bug: packed ${at} bytes of strings, ${bytes} expected`);
  return new PackedArray(count, items);
}

/** msgpack str headers: fixstr up to 31 bytes, str8, str16 (ids are shorter than 64 KiB: id-table.ts). */
function strHeaderBytes(length: number): number {
  if (length <= 31) return 1;
  if (length <= 0xff) return 2;
  if (length <= 0xffff) return 3;
  throw new Error(`bug: a string of ${length} bytes in a snapshot`);
}

function writeStrHeader(into: Buffer, at: number, length: number): number {
  if (length <= 31) return into.writeUInt8(0xa0 | length, at);
  if (length <= 0xff) return into.writeUInt8(length, into.writeUInt8(0xd9, at));
  return into.writeUInt16BE(length, into.writeUInt8(0xda, at));
}

/**
 * msgpack of the map `meta`, its long arrays packed a slice at a time with the slicer's
 * pauses in between; unpacks to what `packr.pack(meta)` would (a `PackedArray` to the array
 * its items are).
 */
export async function packInSlices(meta: object, slicer: TimeSlicer): Promise<Buffer> {
  const entries: [string, unknown][] = Object.entries(meta);
  const parts: Uint8Array[] = [collectionHeader(entries.length, 0x80, 0xde)];
  for (const [key, value] of entries) {
    parts.push(packr.pack(key));
    if (value instanceof PackedArray) {
      parts.push(collectionHeader(value.length, 0x90, 0xdc), value.items);
      continue;
    }
    if (!Array.isArray(value) || value.length <= packSliceItems) {
      parts.push(packr.pack(value));
      continue;
    }
    parts.push(collectionHeader(value.length, 0x90, 0xdc));
    for (let from = 0; from < value.length; from += packSliceItems) {
      const packed = packr.pack(value.slice(from, from + packSliceItems));
      parts.push(packed.subarray(arrayHeaderBytes(packed[0]!)));
      await slicer.pause();
    }
  }
  return Buffer.concat(parts);
}

/** A msgpack map (fix 0x80, 16-bit 0xde) or array (0x90, 0xdc) header for `length` items; the 32-bit form follows the 16-bit one. */
function collectionHeader(length: number, fix: number, sixteen: number): Buffer {
  if (length <= 15) return Buffer.of(fix | length);
  if (length <= 0xffff) return Buffer.of(sixteen, length >> 8, length & 0xff);
  const header = Buffer.alloc(5);
  header[0] = sixteen + 1;
  header.writeUInt32BE(length, 1);
  return header;
}

function arrayHeaderBytes(first: number): number {
  if (first >= 0x90 && first <= 0x9f) return 1;
  if (first === 0xdc) return 3;
  if (first === 0xdd) return 5;
  throw new Error(`not a msgpack array header: 0x${first.toString(16)}`);
}

interface Header {
  version: number;
  metaBytes: number;
  vectorBytes: number;
  indexBytes: number;
  digest: Buffer;
}

function parseHeader(header: Buffer, path: string): Header {
  if (header.byteLength < headerBytes || !header.subarray(0, magic.length).equals(magic)) throw new Error(`${path}: not a JadeVectorDB shard snapshot`);
  let at = magic.length;
  const version = header.readUInt32LE(at);
  if (!readableVersions.has(version)) throw new Error(`${path}: snapshot format version ${version}, this node reads ${[...readableVersions].join(", ")}`);
  at += 8;
  const [metaBytes, vectorBytes, indexBytes] = [0, 1, 2].map((i) => Number(header.readBigUInt64LE(at + 8 * i))) as [number, number, number];
  at += 24;
  return { version, metaBytes, vectorBytes, indexBytes, digest: header.subarray(at, at + 32) };
}

/** Reads the header and meta and verifies the checksum of the whole body (streaming). */
export async function openSnapshotFile(path: string): Promise<SnapshotLayout> {
  const file = await open(path, "r");
  try {
    const size = (await file.stat()).size;
    const header = Buffer.alloc(headerBytes);
    if (size >= headerBytes) await readAll(file, header, 0);
    const { version, metaBytes, vectorBytes, indexBytes, digest } = parseHeader(size >= headerBytes ? header : Buffer.alloc(0), path);
    if (size !== headerBytes + metaBytes + vectorBytes + indexBytes) {
      throw new Error(`${path}: snapshot is ${size} bytes, its header describes ${headerBytes + metaBytes + vectorBytes + indexBytes}`);
    }
    const hash = createHash("sha256");
    await readHashed(file, headerBytes, size - headerBytes, hash);
    if (!hash.digest().equals(digest)) throw new Error(`${path}: snapshot checksum mismatch`);
    const meta = Buffer.alloc(metaBytes);
    await readAll(file, meta, headerBytes);
    return {
      version,
      meta: packr.unpack(meta),
      vectorsOffset: headerBytes + metaBytes,
      vectorBytes,
      indexOffset: headerBytes + metaBytes + vectorBytes,
      indexBytes,
    };
  } finally {
    await file.close();
  }
}

/**
 * Reads a snapshot as it streams past (a backup copying it, a restore replaying it): the meta
 * once it has arrived, then the vector section's bytes in order; the index section is only
 * hashed. Throws at the end if the body's checksum or length differs from the header's.
 */
export async function scanSnapshotStream(
  chunks: AsyncIterable<Uint8Array>,
  path: string,
  visit: { meta: (meta: unknown, version: number, vectorBytes: number) => void; vectors: (bytes: Uint8Array) => void },
): Promise<void> {
  let head: Buffer = Buffer.alloc(0);
  let header: Header | undefined;
  /** Body bytes gathered until the meta is complete. */
  let metaParts: Buffer[] | undefined = [];
  let metaGathered = 0;
  let vectorsLeft = 0;
  let bodyLeft = 0;
  const hash = createHash("sha256");
  for await (const chunk of chunks) {
    let bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (!header) {
      head = Buffer.concat([head, bytes]);
      if (head.byteLength < headerBytes) continue;
      header = parseHeader(head.subarray(0, headerBytes), path);
      vectorsLeft = header.vectorBytes;
      bodyLeft = header.metaBytes + header.vectorBytes + header.indexBytes;
      bytes = head.subarray(headerBytes);
    }
    if (bytes.byteLength > bodyLeft) throw new Error(`${path}: longer than its header describes`);
    hash.update(bytes);
    bodyLeft -= bytes.byteLength;
    if (metaParts) {
      metaParts.push(bytes);
      metaGathered += bytes.byteLength;
      if (metaGathered < header.metaBytes) continue;
      const gathered = Buffer.concat(metaParts);
      visit.meta(packr.unpack(gathered.subarray(0, header.metaBytes)), header.version, header.vectorBytes);
      metaParts = undefined;
      bytes = gathered.subarray(header.metaBytes);
    }
    if (vectorsLeft > 0 && bytes.byteLength > 0) {
      const take = Math.min(vectorsLeft, bytes.byteLength);
      visit.vectors(bytes.subarray(0, take));
      vectorsLeft -= take;
    }
  }
  if (!header || metaParts || bodyLeft !== 0) throw new Error(`${path}: ends ${header ? `${bodyLeft} bytes` : "inside its header,"} early`);
  if (!hash.digest().equals(header.digest)) throw new Error(`${path}: snapshot checksum mismatch`);
}

/** Hands `length` bytes of `path` from `offset` to `write`, slice by slice (with their position in the section). */
export async function readSection(path: string, offset: number, length: number, write: (chunk: Uint8Array, position: number) => void): Promise<void> {
  const file = await open(path, "r");
  try {
    const buffer = Buffer.alloc(Math.min(sliceBytes, Math.max(1, length)));
    for (let done = 0; done < length; ) {
      const chunk = buffer.subarray(0, Math.min(buffer.byteLength, length - done));
      await readAll(file, chunk, offset + done);
      write(chunk, done);
      done += chunk.byteLength;
    }
  } finally {
    await file.close();
  }
}

/** Copies `length` bytes of `path` from `offset` into a new file `to`. */
export async function extractSection(path: string, offset: number, length: number, to: string): Promise<void> {
  const [from, out] = await Promise.all([open(path, "r"), open(to, "w")]);
  try {
    const buffer = Buffer.alloc(Math.min(sliceBytes, Math.max(1, length)));
    for (let done = 0; done < length; ) {
      const n = Math.min(buffer.byteLength, length - done);
      const { bytesRead } = await from.read(buffer, 0, n, offset + done);
      if (bytesRead !== n) throw new Error(`${path}: short read at ${offset + done}`);
      await writeAll(out, buffer.subarray(0, n), done);
      done += n;
    }
  } finally {
    await Promise.all([from.close(), out.close()]);
  }
}

function headerOf(metaBytes: number, vectorBytes: number, indexBytes: number, digest: Buffer): Buffer {
  const header = Buffer.alloc(headerBytes);
  magic.copy(header, 0);
  let at = magic.length;
  at = header.writeUInt32LE(snapshotFormatVersion, at);
  at = header.writeUInt32LE(0, at);
  at = header.writeBigUInt64LE(BigInt(metaBytes), at);
  at = header.writeBigUInt64LE(BigInt(vectorBytes), at);
  at = header.writeBigUInt64LE(BigInt(indexBytes), at);
  digest.copy(header, at);
  return header;
}

async function writeAll(out: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  for (let written = 0; written < bytes.byteLength; ) {
    written += (await out.write(bytes, written, bytes.byteLength - written, position + written)).bytesWritten;
  }
}

async function writeHashed(out: FileHandle, position: number, bytes: Uint8Array, hash: Hash): Promise<number> {
  hash.update(bytes);
  await writeAll(out, bytes, position);
  return bytes.byteLength;
}

async function copyHashed(from: string, out: FileHandle, position: number, hash: Hash): Promise<number> {
  const input = await open(from, "r");
  try {
    const buffer = Buffer.alloc(sliceBytes);
    let copied = 0;
    for (;;) {
      const { bytesRead } = await input.read(buffer, 0, sliceBytes, copied);
      if (bytesRead === 0) return copied;
      copied += await writeHashed(out, position + copied, buffer.subarray(0, bytesRead), hash);
    }
  } finally {
    await input.close();
  }
}

async function readAll(file: FileHandle, into: Uint8Array, position: number): Promise<void> {
  for (let done = 0; done < into.byteLength; ) {
    const n = Math.min(sliceBytes, into.byteLength - done);
    const { bytesRead } = await file.read(into, done, n, position + done);
    if (bytesRead === 0) throw new Error(`short read at ${position + done}`);
    done += bytesRead;
  }
}

async function readHashed(file: FileHandle, position: number, length: number, hash: Hash): Promise<void> {
  const buffer = Buffer.alloc(Math.min(sliceBytes, Math.max(1, length)));
  for (let done = 0; done < length; ) {
    const n = Math.min(buffer.byteLength, length - done);
    const { bytesRead } = await file.read(buffer, 0, n, position + done);
    if (bytesRead === 0) throw new Error(`short read at ${position + done}`);
    hash.update(buffer.subarray(0, bytesRead));
    done += bytesRead;
  }
}
