/**
 * Node-to-node replica requests on `jade.replica.<node>.<collection>.<shard>.<op>`:
 * msgpack both ways (query vectors as float32 bytes), with the collection uid so
 * a request never reads another incarnation, and the caller's minimum sequence
 * and deadline so the remote replica enforces read consistency itself. Besides
 * reads, a replica joining a shard copies a serving replica's checkpoint from it:
 * `checkpoint` makes the source save one and says its sequence and size, `chunk`
 * reads a byte range of it.
 */
import { headers, type NatsConnection } from "@nats-io/nats-core";
import { Packr } from "msgpackr";
import { z } from "zod";
import { errorMessage, ErrorCode, JadeError, type WireError } from "../../runtime/errors.ts";
import { checkFilterAst, type Filter } from "../../runtime/filter.ts";
import { limits } from "../../runtime/limits.ts";
import { ChunkEncoding } from "./chunk-encoding.ts";
import type { TxnOutcome } from "../../runtime/txn-sequencer.ts";
import type { ShardRead } from "../vector-index/api.ts";

/** Bytes per `chunk` request: well under NATS max_payload (8 MiB here, 1 MiB by default). */
export const checkpointChunkBytesMax = 512 * 1024;
import { subjects, type ReplicaOp } from "../../runtime/subjects.ts";
import { injectTrace, tracingEnabled } from "../../runtime/tracing.ts";

const FilterAst = z.custom<Filter>().superRefine((value, ctx) => {
  try {
    checkFilterAst(value);
  } catch (err) {
    ctx.addIssue({ code: "custom", message: errorMessage(err) });
  }
});

/**
 * One schema for every replica request: any NATS client can publish to these subjects,
 * so a request is checked like an API request before a replica acts on it.
 */
export const ReplicaReadRequest = z
  .object({
    uid: z.string().min(1).max(64),
    minSeq: z.number().int().min(0),
    timeoutMs: z.number().int().min(1).max(limits.searchTimeoutMsMax),
    search: z
      .object({
        vector: z.custom<Uint8Array>(
          (b) => b instanceof Uint8Array && b.byteLength > 0 && b.byteLength % 4 === 0 && b.byteLength <= limits.dimensionMax * 4,
          "must be float32 bytes",
        ),
        k: z.number().int().min(1).max(limits.kMax),
        filter: FilterAst.optional(),
        withPayload: z.boolean(),
        withVectors: z.boolean(),
      })
      .strict()
      .optional(),
    get: z.object({ ids: z.array(z.string().max(limits.idBytesMax * 4)).max(limits.idsPerRequestMax), withVectors: z.boolean() }).strict().optional(),
    count: z.object({ filter: FilterAst.optional() }).strict().optional(),
    /** Staged transactions to read as committed (decision 013, "Reads"); only a build that writes transactions sends it. */
    assume: z.array(z.string().min(1).max(64)).min(1).max(limits.txnReadReportMax).optional(),
    checkpoint: z.object({}).strict().optional(),
    digest: z.object({}).strict().optional(),
    /** A transaction's vote: `minSeq` is its prepare's sequence. */
    vote: z.object({ txn: z.string().min(1).max(64) }).strict().optional(),
    chunk: z
      .object({
        seq: z.number().int().min(0),
        offset: z.number().int().min(0),
        length: z.number().int().min(1).max(checkpointChunkBytesMax),
        /** Encodings the requester reads (chunk-encoding.ts): the reply is then an EncodedChunk, not the bytes alone. */
        accept: z.array(z.enum(ChunkEncoding)).max(2).optional(),
      })
      .strict()
      .optional(),
  })
  .strict();
export type ReplicaReadRequest = z.infer<typeof ReplicaReadRequest>;

/** What `vote` answers: the shard's vote, and what became of the transaction here so far. */
export interface TxnVoteReply {
  yes: boolean;
  reason?: string;
  outcome: TxnOutcome | "unknown";
  /** Where the transaction's prepare is, while it is staged (recovery appends its marker with it). */
  prepareSeq?: number;
}

/** What `checkpoint` answers: the checkpoint the joining replica may now read in chunks. */
export interface CheckpointOffer {
  seq: number;
  bytes: number;
}


export type ReplicaReadReply = { ok: true; result: unknown } | { ok: false; error: WireError };

/**
 * A read's result as it travels: the value alone when the shard saw no transaction, which is
 * what a build from before transactions answers and reads, else the value with what it saw.
 * A transaction exists only once every node reads log format 2, so only such nodes ever get
 * the second form.
 */
export function readToWire<T>(read: ShardRead<T>): T | ShardRead<T> {
  return read.txns ? read : read.value;
}

/** The inverse of readToWire: search and get answer arrays and count a number, so an object is the second form. */
export function readFromWire<T>(result: T | ShardRead<T>): ShardRead<T> {
  const wrapped = typeof result === "object" && result !== null && !Array.isArray(result);
  return wrapped ? (result as ShardRead<T>) : { value: result as T };
}

const packr = new Packr({ useRecords: false });

export function encodeReplicaMessage(value: ReplicaReadRequest | ReplicaReadReply): Uint8Array {
  return packr.pack(value);
}

export function decodeReplicaMessage<T extends ReplicaReadRequest | ReplicaReadReply>(bytes: Uint8Array): T {
  return packr.unpack(bytes) as T;
}

/** A request's msgpack body, still to be checked with the ReplicaReadRequest schema; bytes that are not msgpack are invalid_argument. */
export function decodeReplicaRequest(bytes: Uint8Array): unknown {
  try {
    return packr.unpack(bytes);
  } catch (err) {
    throw new JadeError(ErrorCode.InvalidArgument, `replica request is not msgpack: ${errorMessage(err).slice(0, 120)}`);
  }
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
    const traceHeaders = tracingEnabled() ? headers() : undefined;
    const msg = await nc.request(subjects.replica(target.node, target.collection, target.shard, target.op), encodeReplicaMessage(request), {
      timeout: Math.max(1, Math.ceil(timeoutMs)),
      ...(traceHeaders && injectTrace(traceHeaders) ? { headers: traceHeaders } : {}),
    });
    reply = decodeReplicaMessage<ReplicaReadReply>(msg.data);
  } catch (err) {
    throw new JadeError(ErrorCode.Timeout, `replica of shard ${target.shard} on ${target.node} did not answer: ${errorMessage(err)}`);
  }
  if (!reply.ok) throw JadeError.fromWire(reply.error);
  return reply.result as T;
}
