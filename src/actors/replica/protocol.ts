/**
 * Node-to-node replica requests on `jade.replica.<node>.<collection>.<shard>.<op>`:
 * msgpack both ways (query vectors as float32 bytes), with the collection uid so
 * a request never reads another incarnation, and the caller's minimum sequence
 * and deadline so the remote replica enforces read consistency itself. Besides
 * reads, a replica joining a shard copies a serving replica's checkpoint from it:
 * `checkpoint` makes the source save one and says its sequence and size, `chunk`
 * reads a byte range of it.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { Packr } from "msgpackr";
import { ErrorCode, JadeError, type WireError } from "../../runtime/errors.ts";
import type { Filter } from "../../runtime/filter.ts";
import { subjects, type ReplicaOp } from "../../runtime/subjects.ts";

export interface ReplicaReadRequest {
  uid: string;
  minSeq: number;
  timeoutMs: number;
  search?: { vector: Uint8Array; k: number; filter?: Filter; withPayload: boolean; withVectors: boolean };
  get?: { ids: string[]; withVectors: boolean };
  count?: { filter?: Filter };
  checkpoint?: Record<string, never>;
  chunk?: { seq: number; offset: number; length: number };
}

/** What `checkpoint` answers: the checkpoint the joining replica may now read in chunks. */
export interface CheckpointOffer {
  seq: number;
  bytes: number;
}

/** Bytes per `chunk` request: well under NATS max_payload (8 MiB here, 1 MiB by default). */
export const checkpointChunkBytesMax = 512 * 1024;

export type ReplicaReadReply = { ok: true; result: unknown } | { ok: false; error: WireError };

const packr = new Packr({ useRecords: false });

export function encodeReplicaMessage(value: ReplicaReadRequest | ReplicaReadReply): Uint8Array {
  return packr.pack(value);
}

export function decodeReplicaMessage<T extends ReplicaReadRequest | ReplicaReadReply>(bytes: Uint8Array): T {
  return packr.unpack(bytes) as T;
}

/** Sends a request to one node's replica of a shard; a transport failure is a timeout, a refusal comes back as its JadeError. */
export async function requestReplica<T>(
  nc: NatsConnection,
  target: { node: string; collection: string; shard: number; op: ReplicaOp },
  request: ReplicaReadRequest,
  timeoutMs: number,
): Promise<T> {
  let reply: ReplicaReadReply;
  try {
    const msg = await nc.request(subjects.replica(target.node, target.collection, target.shard, target.op), encodeReplicaMessage(request), {
      timeout: Math.max(1, Math.ceil(timeoutMs)),
    });
    reply = decodeReplicaMessage<ReplicaReadReply>(msg.data);
  } catch (err) {
    throw new JadeError(ErrorCode.Timeout, `replica of shard ${target.shard} on ${target.node} did not answer: ${(err as Error).message}`);
  }
  if (!reply.ok) throw JadeError.fromWire(reply.error);
  return reply.result as T;
}

export function vectorBytes(vector: Float32Array): Uint8Array {
  return new Uint8Array(vector.buffer, vector.byteOffset, vector.byteLength);
}

export function vectorFromBytes(bytes: Uint8Array): Float32Array {
  const aligned = new Uint8Array(bytes.byteLength);
  aligned.set(bytes);
  return new Float32Array(aligned.buffer);
}
