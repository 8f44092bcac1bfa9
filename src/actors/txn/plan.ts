/**
 * A transaction request as the shard logs will carry it (decision 013): what becomes of each id
 * (its last op wins, as within one upsert), which shard holds it, and each touched shard's
 * prepare. Pure: the gateway plans, then locks and appends.
 */
import { columnsOf } from "../../runtime/columns.ts";
import { invalidArgument, JadeError } from "../../runtime/errors.ts";
import { EntryKind, type TxnCondition, type TxnPrepareEntry } from "../../runtime/log-entry.ts";
import type { CollectionConfig, Payload } from "../../runtime/schemas.ts";
import { resolveSharding } from "../../runtime/sharding/index.ts";
import type { TransactionRequest } from "../../runtime/txn-schemas.ts";
import type { z } from "zod";
import { spaceOf } from "../../runtime/vectors.ts";

type ParsedRequest = z.output<typeof TransactionRequest>;

/** One shard's part, without its deadline (set when the transaction starts). */
export type ShardPart = Omit<TxnPrepareEntry, "deadlineAtMs" | "txn" | "kind">;

export interface TxnPlanOut {
  /** Shard → its part, for every touched shard. */
  parts: Map<number, ShardPart>;
  /** Every id written or read, each once: what the locks cover. */
  lockIds: string[];
  upserted: number;
  deleted: number;
}

export function planTransaction(config: CollectionConfig, request: ParsedRequest): TxnPlanOut {
  const space = spaceOf(config);
  const sharding = resolveSharding(config);
  if (!sharding.idStable && request.conditions.length > 0) {
    throw invalidArgument(`conditions need a sharding that places an id by itself (hash or range); ${config.name} places points by their vectors`);
  }
  // Each id's last op, in request order.
  const final = new Map<string, { vector: Float32Array; payload: Payload | undefined } | null>();
  request.ops.forEach((op, i) => {
    if (op.op === "delete") {
      for (const id of op.ids) final.set(id, null);
      return;
    }
    let columns;
    try {
      columns = columnsOf(op.points, space);
    } catch (err) {
      // The same refusal as an upsert's, said of this op.
      if (err instanceof JadeError) throw new JadeError(err.code, `ops[${i}]: ${err.message}`, { details: err.details });
      throw err;
    }
    columns.ids.forEach((id, p) => final.set(id, { vector: columns.vectors.subarray(p * space.dimension, (p + 1) * space.dimension), payload: columns.payloads?.[p] ?? undefined }));
  });
  const writes = new Map<number, { ids: string[]; vectors: number[]; payloads: (Payload | null)[] }>();
  const deletes = new Map<number, string[]>();
  const add = <T>(map: Map<number, T[]>, shard: number, value: T) => (map.get(shard) ?? map.set(shard, []).get(shard)!).push(value);
  let upserted = 0;
  let deleted = 0;
  for (const [id, point] of final) {
    if (point === null) {
      deleted++;
      for (const shard of sharding.shardsForId(id)) add(deletes, shard, id);
      continue;
    }
    upserted++;
    const shard = sharding.shardOf(id, point.vector, 0);
    const part = writes.get(shard) ?? writes.set(shard, { ids: [], vectors: [], payloads: [] }).get(shard)!;
    part.ids.push(id);
    part.vectors.push(...point.vector);
    part.payloads.push(point.payload ?? null);
    // Placed by its vector: an earlier version may sit on any other shard, and goes.
    if (!sharding.idStable) for (const other of sharding.shardsForId(id)) if (other !== shard) add(deletes, other, id);
  }
  const conditions = new Map<number, TxnCondition[]>();
  for (const c of request.conditions) add(conditions, sharding.shardOf(c.id, [], 0), { id: c.id, ...(c.version !== undefined ? { version: c.version } : {}), ...(c.exists !== undefined ? { exists: c.exists } : {}) });

  const parts = new Map<number, ShardPart>();
  const shards = [...new Set([...writes.keys(), ...deletes.keys(), ...conditions.keys()])].sort((a, b) => a - b);
  for (const shard of shards) {
    const write = writes.get(shard);
    parts.set(shard, {
      ...(write
        ? { upsert: { ids: write.ids, dimension: config.dimension, vectors: Float32Array.from(write.vectors), ...(write.payloads.some((p) => p !== null) ? { payloads: write.payloads } : {}) } }
        : {}),
      deleteIds: deletes.get(shard) ?? [],
      conditions: conditions.get(shard) ?? [],
    });
  }
  const lockIds = [...new Set([...final.keys(), ...request.conditions.map((c) => c.id)])];
  return { parts, lockIds, upserted, deleted };
}

/** The prepare entry of one shard's part. */
export function prepareEntry(txn: string, part: ShardPart, deadlineAtMs: number): TxnPrepareEntry {
  return { kind: EntryKind.TxnPrepare, txn, ...part, deadlineAtMs };
}
