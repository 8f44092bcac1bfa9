/**
 * Dataset readers shared by the benchmark and the CLI `import` command.
 *
 * - IDX image files (MNIST / Fashion-MNIST, optionally gzip'd): every image
 *   becomes one float32 vector of rows × cols values, pixel / 255.
 * - `.fvecs` (the TEXMEX / ann-benchmarks format): per vector a little-endian
 *   int32 dimension followed by that many little-endian float32 values. Read
 *   whole (`readFvecs`) or streamed one vector at a time (`fvecs`). A path
 *   ending in `.gz` is gunzipped on the fly.
 */
import { createReadStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { gunzipSync, createGunzip } from "node:zlib";

export interface VectorSet {
  count: number;
  dimension: number;
  /** count × dimension values, row-major; always starts at byteOffset 0 of its own buffer. */
  data: Float32Array;
}

export class DatasetFormatError extends Error {
  override readonly name = "DatasetFormatError";
}

const idxImageMagic = 0x00000803;

function isGzip(bytes: Uint8Array): boolean {
  return bytes.byteLength >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** Reads an IDX3 image file (`*-images-idx3-ubyte[.gz]`); pixels are scaled to [0, 1] (pixel / 255). */
export async function readIdxImages(path: string): Promise<VectorSet> {
  const raw = await readFile(path);
  const bytes = isGzip(raw) ? gunzipSync(raw) : raw;
  if (bytes.byteLength < 16) throw new DatasetFormatError(`${path}: too short for an IDX header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, false);
  if (magic !== idxImageMagic) {
    throw new DatasetFormatError(`${path}: magic 0x${magic.toString(16).padStart(8, "0")}, expected 0x00000803 (IDX unsigned-byte images)`);
  }
  const count = view.getUint32(4, false);
  const rows = view.getUint32(8, false);
  const cols = view.getUint32(12, false);
  const dimension = rows * cols;
  const expected = 16 + count * dimension;
  if (bytes.byteLength < expected) throw new DatasetFormatError(`${path}: ${bytes.byteLength} bytes, header promises ${expected}`);
  const data = new Float32Array(count * dimension);
  const scale = new Float32Array(256);
  for (let i = 0; i < 256; i++) scale[i] = i / 255;
  for (let i = 0; i < data.length; i++) data[i] = scale[bytes[16 + i]!]!;
  return { count, dimension, data };
}

/** Reads a whole `.fvecs[.gz]` file into one matrix; every vector must have the same dimension. */
export async function readFvecs(path: string, options: { limit?: number } = {}): Promise<VectorSet> {
  const limit = options.limit ?? Infinity;
  const rows: Float32Array[] = [];
  let dimension = 0;
  for await (const vector of fvecs(path)) {
    if (rows.length >= limit) break;
    if (rows.length === 0) dimension = vector.length;
    rows.push(vector);
  }
  const data = new Float32Array(rows.length * dimension);
  rows.forEach((row, i) => data.set(row, i * dimension));
  return { count: rows.length, dimension, data };
}

/**
 * Streams the vectors of a `.fvecs[.gz]` file in order, each as its own Float32Array.
 * Throws DatasetFormatError on a dimension change, a bad dimension or a truncated record.
 */
export async function* fvecs(path: string): AsyncGenerator<Float32Array, void, undefined> {
  const file = createReadStream(path);
  const source: AsyncIterable<Buffer> = path.endsWith(".gz") ? file.pipe(createGunzip()) : file;
  let pending: Buffer = Buffer.alloc(0);
  let dimension = -1;
  let index = 0;
  try {
    for await (const chunk of source) {
      pending = pending.byteLength === 0 ? chunk : Buffer.concat([pending, chunk]);
      let offset = 0;
      for (;;) {
        if (pending.byteLength - offset < 4) break;
        const dim = pending.readInt32LE(offset);
        if (dim <= 0 || dim > 1 << 20) throw new DatasetFormatError(`${path}: vector ${index} declares dimension ${dim}`);
        if (dimension === -1) dimension = dim;
        else if (dim !== dimension) throw new DatasetFormatError(`${path}: vector ${index} has dimension ${dim}, the first had ${dimension}`);
        const recordBytes = 4 + 4 * dim;
        if (pending.byteLength - offset < recordBytes) break;
        // Copy: the chunk's offset may not be a multiple of 4, and the caller may keep the vector.
        const vector = new Float32Array(dim);
        new Uint8Array(vector.buffer).set(pending.subarray(offset + 4, offset + recordBytes));
        offset += recordBytes;
        index++;
        yield vector;
      }
      pending = pending.subarray(offset);
    }
  } finally {
    file.destroy();
  }
  if (pending.byteLength > 0) throw new DatasetFormatError(`${path}: ${pending.byteLength} trailing bytes after vector ${index} (truncated file?)`);
}
