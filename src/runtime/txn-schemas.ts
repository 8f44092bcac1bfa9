/**
 * The transaction API's messages (`jade.v1.<collection>.transaction`, decision 013), the
 * transaction record kept in KV `jade_txns`, and the operator's requests about records
 * (`admin.txns.*`): one schema each, types derived from them.
 */
import { z } from "zod";
import { limits } from "./limits.ts";
import { CollectionName, Point, PointId, WriteConsistency } from "./schemas.ts";

export const TxnOpRequest = z.discriminatedUnion("op", [
  z.object({ op: z.literal("upsert"), points: z.array(Point).min(1).max(limits.pointsPerRequestMax) }).strict(),
  z.object({ op: z.literal("delete"), ids: z.array(PointId).min(1).max(limits.idsPerRequestMax) }).strict(),
]);
export type TxnOpRequest = z.infer<typeof TxnOpRequest>;

/** Compare-and-set on a point: its version (from `get`) or whether it exists, exactly one of them. */
export const TxnConditionRequest = z
  .object({ id: PointId, version: z.number().int().min(0).optional(), exists: z.boolean().optional() })
  .strict()
  .refine((c) => (c.version === undefined) !== (c.exists === undefined), "a condition gives version or exists, exactly one");

export const TransactionRequest = z
  .object({
    ops: z.array(TxnOpRequest).min(1).max(limits.txnOpsMax),
    conditions: z.array(TxnConditionRequest).max(limits.txnConditionsMax).default([]),
    timeoutMs: z.number().int().min(1).max(limits.txnTimeoutMsMax).default(limits.txnTimeoutMsDefault),
    /** As for a write: how many replicas must have applied the commit before the reply. */
    consistency: WriteConsistency.default("log"),
  })
  .strict()
  .superRefine((r, ctx) => {
    const points = r.ops.reduce((n, op) => n + (op.op === "upsert" ? op.points.length : op.ids.length), 0);
    if (points > limits.pointsPerRequestMax) ctx.addIssue({ code: "custom", message: `a transaction touches at most ${limits.pointsPerRequestMax} points, this one ${points}`, path: ["ops"] });
  });
export type TransactionRequest = z.input<typeof TransactionRequest>;

export const TxnState = { Preparing: "preparing", Committed: "committed", Aborted: "aborted" } as const;
export type TxnState = (typeof TxnState)[keyof typeof TxnState];

/** A transaction's record: written `preparing` before any log entry; its CAS to `committed` is the commit point. */
export const TxnRecord = z
  .object({
    id: z.string().min(1).max(64),
    collection: z.string(),
    uid: z.string(),
    /** The gateway that runs it. */
    node: z.string(),
    state: z.enum(TxnState),
    /** Markers appended and locks released: nothing left for recovery. */
    done: z.boolean(),
    shards: z.array(z.number().int().min(0)).max(limits.shardsMax),
    /** Shard → its prepare's sequence, once appended. */
    prepareSeqs: z.record(z.string(), z.number().int().min(1)),
    createdAtMs: z.number(),
    deadlineAtMs: z.number(),
    decidedAtMs: z.number().optional(),
    reason: z.string().max(1024).optional(),
  })
  .strict();
export type TxnRecord = z.infer<typeof TxnRecord>;

/** A transaction id as `admin.txns.*` take it: it becomes part of a KV key, so a key's characters only. */
export const TxnId = z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, "must be a transaction id (letters, digits, _ and -, at most 64)");

/** `admin.txns.list`: newest first, filtered; `open`: only those not done yet (what recovery still looks at). */
export const TxnListRequest = z
  .object({
    collection: CollectionName.optional(),
    state: z.enum(TxnState).optional(),
    open: z.boolean().default(false),
    limit: z.number().int().min(1).max(limits.txnListMax).default(limits.txnListDefault),
  })
  .strict();
export type TxnListRequest = z.input<typeof TxnListRequest>;

/** `admin.txns.get` and `admin.txns.abort`. */
export const TxnIdRequest = z.object({ id: TxnId }).strict();

/** `admin.txns.list`'s answer: `more` when records were left out (past the limit, or past what one listing reads). */
export interface TxnList {
  txns: TxnRecord[];
  more: boolean;
}
