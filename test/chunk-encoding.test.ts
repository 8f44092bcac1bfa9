/** Checkpoint chunk encoding (pure): compressed only where it pays, decoded within the size asked for. */
import { brotliCompressSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { ChunkEncoding, decodeChunk, encodeChunk } from "../src/actors/replica/chunk-encoding.ts";
import { randomVectors, seededRandom } from "./support/random.ts";

const bytesOf = (floats: Float32Array) => new Uint8Array(floats.buffer, floats.byteOffset, floats.byteLength);

describe("checkpoint chunk encoding", () => {
  it("compresses image-like vectors (few distinct values) and round-trips them exactly", async () => {
    const random = seededRandom(3);
    const pixels = Float32Array.from({ length: 128 * 1024 }, () => (random() < 0.6 ? 0 : Math.floor(random() * 4)));
    const raw = bytesOf(pixels);
    const encoded = await encodeChunk(raw, [ChunkEncoding.Brotli]);
    expect(encoded.encoding).toBe(ChunkEncoding.Brotli);
    expect(encoded.data.byteLength).toBeLessThan(0.3 * raw.byteLength);
    expect(Buffer.compare(Buffer.from(await decodeChunk(encoded, raw.byteLength)), Buffer.from(raw))).toBe(0);
  });

  it("sends dense float vectors as they are (they save under 10 %), and nothing compressed to a requester that did not ask", async () => {
    const raw = bytesOf(randomVectors(seededRandom(4), 1_024, 128));
    expect((await encodeChunk(raw, [ChunkEncoding.Brotli])).encoding).toBe(ChunkEncoding.Identity);
    const zeros = new Uint8Array(64 * 1024);
    expect(await encodeChunk(zeros, [])).toEqual({ encoding: ChunkEncoding.Identity, data: zeros });
    expect(await encodeChunk(new Uint8Array(0), [ChunkEncoding.Brotli])).toMatchObject({ encoding: ChunkEncoding.Identity });
  });

  it("refuses a chunk that inflates past the size it was asked for, and an unknown encoding", async () => {
    const bomb = brotliCompressSync(new Uint8Array(8 * 1024 * 1024));
    await expect(decodeChunk({ encoding: ChunkEncoding.Brotli, data: bomb }, 512 * 1024)).rejects.toThrow();
    await expect(decodeChunk({ encoding: "gzip" as ChunkEncoding, data: new Uint8Array(4) }, 4)).rejects.toThrow(/unknown chunk encoding/);
  });
});
