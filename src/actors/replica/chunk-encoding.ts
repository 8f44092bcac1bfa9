/**
 * Checkpoint chunks compressed where it pays (decision 010): a joining replica copies a peer's
 * checkpoint under its node's transfer budget, which limits bytes on the wire, so brotli at
 * quality 1 moves 1.2× (dense float vectors) to 3.8× (image-like ones) more of the shard per
 * second for about 1 % of a core at 2 MiB/s. The joining side says what it accepts; the
 * serving side compresses a chunk only when that saves at least `savingMin`, else sends it as
 * it is. Nothing else is compressed: on the hot path it costs more CPU than it saves.
 */
import { promisify } from "node:util";
import { brotliCompress, brotliDecompress, constants } from "node:zlib";

export const ChunkEncoding = { Identity: "identity", Brotli: "br" } as const;
export type ChunkEncoding = (typeof ChunkEncoding)[keyof typeof ChunkEncoding];

/** A chunk as sent to a request that accepted an encoding. */
export interface EncodedChunk {
  encoding: ChunkEncoding;
  data: Uint8Array;
}

/** Below this saving a chunk goes as it is: decoding it would cost the copying node CPU for little. */
const savingMin = 0.1;
const compress = promisify(brotliCompress);
const decompress = promisify(brotliDecompress);

/** `raw`, brotli-compressed if the requester accepts it and it saves at least `savingMin`. */
export async function encodeChunk(raw: Uint8Array, accepted: readonly ChunkEncoding[]): Promise<EncodedChunk> {
  if (!accepted.includes(ChunkEncoding.Brotli) || raw.byteLength === 0) return { encoding: ChunkEncoding.Identity, data: raw };
  const packed = await compress(raw, {
    params: { [constants.BROTLI_PARAM_QUALITY]: 1, [constants.BROTLI_PARAM_SIZE_HINT]: raw.byteLength },
  });
  return packed.byteLength <= (1 - savingMin) * raw.byteLength ? { encoding: ChunkEncoding.Brotli, data: packed } : { encoding: ChunkEncoding.Identity, data: raw };
}

/** The chunk's bytes; a chunk that decodes to more than `expectedBytes` is refused, never inflated (a bomb). */
export async function decodeChunk(chunk: EncodedChunk, expectedBytes: number): Promise<Uint8Array> {
  if (chunk.encoding === ChunkEncoding.Identity) return chunk.data;
  if (chunk.encoding !== ChunkEncoding.Brotli) throw new Error(`unknown chunk encoding ${JSON.stringify(chunk.encoding)}`);
  return decompress(chunk.data, { maxOutputLength: Math.max(1, expectedBytes) });
}
