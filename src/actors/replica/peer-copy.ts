/**
 * Copying a serving replica's checkpoint, peer to peer. The joining side asks the source to
 * offer one (`checkpoint`: it saves one first if needed), then reads it in `chunk` requests
 * of at most 512 KiB, brotli-compressed where that pays (chunk-encoding.ts), each chunk's
 * bytes on the wire drawn from its transfer budget; loading the file is the joining
 * replica's job, and any failure here throws so it falls back to the next peer or the
 * shared snapshot. The serving side answers each chunk from the offered file.
 */
import { open } from "node:fs/promises";
import type { NatsConnection } from "@nats-io/nats-core";
import { ErrorCode, JadeError } from "../../runtime/errors.ts";
import { ChunkEncoding, decodeChunk, type EncodedChunk } from "./chunk-encoding.ts";
import { checkpointChunkBytesMax, requestReplica, type CheckpointOffer } from "./protocol.ts";

const peerOfferTimeoutMs = 30_000;
const peerChunkTimeoutMs = 10_000;

export interface PeerCopy {
  nc: NatsConnection;
  peer: string;
  collection: string;
  uid: string;
  shard: number;
  /** Waits until `bytes` fit in the transfer budget. */
  take: (bytes: number) => Promise<void>;
  /** Called once with the offer's size, before the first chunk. */
  onOffer: (bytes: number) => void;
  /** Called with the size of every chunk written. */
  onBytes: (bytes: number) => void;
}

/** `length` bytes of `file` from `offset` (fewer at its end); undefined when there is no such file (the offer expired). */
export async function readOfferedChunk(file: string | undefined, offset: number, length: number): Promise<Uint8Array | undefined> {
  if (file === undefined) return undefined;
  const handle = await open(file, "r").catch(() => undefined);
  if (!handle) return undefined;
  try {
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buffer, 0, length, offset);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** What a copy moved: the checkpoint's bytes, and the bytes that crossed the wire for them. */
export interface CopiedCheckpoint extends CheckpointOffer {
  wireBytes: number;
}

/** Writes the peer's offered checkpoint to `file`; resolves with the offer (its sequence and size) and the bytes on the wire. */
export async function copyCheckpoint(copy: PeerCopy, file: string): Promise<CopiedCheckpoint> {
  const { nc, uid } = copy;
  const target = { node: copy.peer, collection: copy.collection, shard: copy.shard };
  const offer = await requestReplica<CheckpointOffer>(nc, { ...target, op: "checkpoint" }, { uid, minSeq: 0, timeoutMs: peerOfferTimeoutMs, checkpoint: {} }, peerOfferTimeoutMs);
  copy.onOffer(offer.bytes);
  // A peer on an older build refuses `accept` (its schema is strict): the copy goes on uncompressed.
  let accept: ChunkEncoding[] | undefined = [ChunkEncoding.Brotli];
  let wireBytes = 0;
  const out = await open(file, "w");
  try {
    for (let offset = 0; offset < offer.bytes; ) {
      const length = Math.min(checkpointChunkBytesMax, offer.bytes - offset);
      const ask = () => requestReplica<EncodedChunk | Uint8Array>(nc, { ...target, op: "chunk" }, { uid, minSeq: 0, timeoutMs: peerChunkTimeoutMs, chunk: { seq: offer.seq, offset, length, ...(accept ? { accept } : {}) } }, peerChunkTimeoutMs);
      const reply = await ask().catch((err: unknown) => {
        if (accept === undefined || !(err instanceof JadeError) || err.code !== ErrorCode.InvalidArgument) throw err;
        accept = undefined;
        return ask();
      });
      const encoded: EncodedChunk = reply instanceof Uint8Array ? { encoding: ChunkEncoding.Identity, data: reply } : reply;
      // The budget limits what crosses the wire: a compressed chunk draws less of it.
      await copy.take(encoded.data.byteLength);
      wireBytes += encoded.data.byteLength;
      const chunk = await decodeChunk(encoded, length);
      if (chunk.byteLength !== length) throw new Error(`chunk at ${offset} has ${chunk.byteLength} bytes, expected ${length}`);
      await out.write(chunk, 0, chunk.byteLength, offset);
      offset += chunk.byteLength;
      copy.onBytes(chunk.byteLength);
    }
  } finally {
    await out.close();
  }
  return { ...offer, wireBytes };
}
