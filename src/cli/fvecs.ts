/**
 * `.fvecs` files (the TEXMEX / ANN-benchmarks format): vectors back to back,
 * each a little-endian int32 dimension followed by that many little-endian
 * float32 values. The reader streams the file in chunks, so a file of any
 * size is read in bounded memory.
 */
import { open } from "node:fs/promises";
import { endianness } from "node:os";

export interface FvecsRow {
  /** 0-based position of the vector in the file. */
  row: number;
  vector: Float32Array;
}

export interface FvecsInfo {
  dimension: number;
  rows: number;
  bytes: number;
}

/** Upper bound on a vector's dimension, to report a corrupt (or non-fvecs) file instead of allocating garbage. */
export const fvecsDimensionMax = 1 << 20;

const bigEndianHost = endianness() === "BE";

export class FvecsFormatError extends Error {
  override readonly name = "FvecsFormatError";
}

/**
 * Reads the first header and the file size: the dimension and the number of
 * rows, assuming every row has the first row's dimension (the reader checks).
 */
export async function fvecsInfo(file: string): Promise<FvecsInfo> {
  const handle = await open(file, "r");
  try {
    const { size } = await handle.stat();
    if (size === 0) return { dimension: 0, rows: 0, bytes: 0 };
    const header = Buffer.alloc(4);
    const { bytesRead } = await handle.read(header, 0, 4, 0);
    if (bytesRead < 4) throw new FvecsFormatError(`${file}: truncated header (${size} bytes)`);
    const dimension = header.readInt32LE(0);
    checkDimension(dimension, 0, file);
    const rowBytes = 4 + 4 * dimension;
    if (size % rowBytes !== 0) {
      throw new FvecsFormatError(
        `${file}: size ${size} is not a multiple of ${rowBytes} bytes (a dimension-${dimension} row); the file is truncated or rows differ in dimension`,
      );
    }
    return { dimension, rows: size / rowBytes, bytes: size };
  } finally {
    await handle.close();
  }
}

function checkDimension(dimension: number, row: number, file: string): void {
  if (!(dimension >= 1 && dimension <= fvecsDimensionMax)) {
    throw new FvecsFormatError(`${file}: row ${row} has dimension ${dimension}; not an .fvecs file, or it is corrupt`);
  }
}

/** Rows of one dimension, back to back, as read from a file. */
export interface FvecsChunk {
  /** 0-based position of the chunk's first row in the file. */
  firstRow: number;
  rows: number;
  dimension: number;
  /** rows × dimension values, in the host's byte order. */
  values: Float32Array;
}

/** Yields the vectors of an .fvecs file in order, reading `chunkBytes` at a time. */
export async function* readFvecs(file: string, options: { chunkBytes?: number } = {}): AsyncGenerator<FvecsRow> {
  for await (const { firstRow, rows, dimension, values } of readFvecsChunks(file, options)) {
    for (let r = 0; r < rows; r++) yield { row: firstRow + r, vector: values.subarray(r * dimension, (r + 1) * dimension) };
  }
}

/**
 * The rows of an .fvecs file in order, each read's worth of rows of one dimension as one block
 * of values: one await and one array per chunk rather than per row, the floats copied as bytes
 * (`jade import` checks and sends the block as it is). A row whose dimension differs from the
 * row before it starts a new chunk.
 */
export async function* readFvecsChunks(file: string, options: { chunkBytes?: number } = {}): AsyncGenerator<FvecsChunk> {
  const handle = await open(file, "r");
  // Each read lands after the partial row the last one left (moved to the front), so only
  // that tail is copied again, not the whole chunk.
  let buf = Buffer.allocUnsafe(options.chunkBytes ?? 1 << 20);
  let filled = 0;
  let row = 0;
  try {
    for (;;) {
      const { bytesRead } = await handle.read(buf, filled, buf.length - filled, null);
      if (bytesRead === 0) break;
      filled += bytesRead;
      let offset = 0;
      while (filled - offset >= 4) {
        const dimension = buf.readInt32LE(offset);
        checkDimension(dimension, row, file);
        const rowBytes = 4 + 4 * dimension;
        let rows = 0;
        while (filled - (offset + rows * rowBytes) >= rowBytes && buf.readInt32LE(offset + rows * rowBytes) === dimension) rows++;
        if (rows === 0) break;
        yield { firstRow: row, rows, dimension, values: valuesOf(buf, offset, rows, dimension) };
        row += rows;
        offset += rows * rowBytes;
      }
      buf.copy(buf, 0, offset, filled);
      filled -= offset;
      // A row longer than the buffer: room for it.
      if (filled === buf.length) buf = Buffer.concat([buf], 2 * buf.length);
    }
  } finally {
    await handle.close();
  }
  if (filled > 0) {
    throw new FvecsFormatError(`${file}: ${filled} trailing bytes after row ${row - 1}: the last vector is truncated`);
  }
}

/** The values of `rows` rows from byte `offset`, without their headers: copied as bytes, then put in the host's order. */
function valuesOf(buf: Buffer, offset: number, rows: number, dimension: number): Float32Array {
  const values = new Float32Array(rows * dimension);
  const bytes = new Uint8Array(values.buffer);
  const valueBytes = 4 * dimension;
  for (let r = 0, from = offset + 4; r < rows; r++, from += 4 + valueBytes) buf.copy(bytes, r * valueBytes, from, from + valueBytes);
  if (bigEndianHost) Buffer.from(values.buffer).swap32();
  return values;
}

/** Encodes vectors as .fvecs bytes (tests, tools). */
export function encodeFvecs(vectors: ArrayLike<number>[]): Buffer {
  const size = vectors.reduce((sum, v) => sum + 4 + 4 * v.length, 0);
  const buf = Buffer.alloc(size);
  let offset = 0;
  for (const v of vectors) {
    buf.writeInt32LE(v.length, offset);
    offset += 4;
    for (let i = 0; i < v.length; i++, offset += 4) buf.writeFloatLE(v[i]!, offset);
  }
  return buf;
}
