/**
 * Node-to-node replica reads on `jade.replica.<node>.<collection>.<shard>.<op>`:
 * msgpack both ways (query vectors as float32 bytes), with the collection uid so
 * a request never reads another incarnation, and the caller's minimum sequence
 * and deadline so the remote replica enforces read consistency itself.
 */
import { Packr } from "msgpackr";
import type { WireError } from "../../runtime/errors.ts";
import type { Filter } from "../../runtime/filter.ts";

export interface ReplicaReadRequest {
  uid: string;
  minSeq: number;
  timeoutMs: number;
  search?: { vector: Uint8Array; k: number; filter?: Filter; withPayload: boolean; withVectors: boolean };
  get?: { ids: string[]; withVectors: boolean };
  count?: { filter?: Filter };
}

export type ReplicaReadReply = { ok: true; result: unknown } | { ok: false; error: WireError };

const packr = new Packr({ useRecords: false });

export function encodeReplicaMessage(value: ReplicaReadRequest | ReplicaReadReply): Uint8Array {
  return packr.pack(value);
}

export function decodeReplicaMessage<T extends ReplicaReadRequest | ReplicaReadReply>(bytes: Uint8Array): T {
  return packr.unpack(bytes) as T;
}

export function vectorBytes(vector: Float32Array): Uint8Array {
  return new Uint8Array(vector.buffer, vector.byteOffset, vector.byteLength);
}

export function vectorFromBytes(bytes: Uint8Array): Float32Array {
  const aligned = new Uint8Array(bytes.byteLength);
  aligned.set(bytes);
  return new Float32Array(aligned.buffer);
}
