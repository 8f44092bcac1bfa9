/**
 * Shard transfers (docs/architecture.md, "Migrations") — a transfer is a plain value (Qdrant style): "shard S of
 * collection C (incarnation uid) goes from node A to node B, because R". The coordinator plans
 * transfers (move, drain, rebalance, repair), stores each one's `migrationMachine` snapshot in
 * KV `jade_migrations` under `transfer.id`, and drives the placement through the pure,
 * idempotent transforms below:
 *
 * ```
 *   pending ── applyPrepare ──► learner ── applyCutover ──► cutOver
 *      ▲                           │
 *      └────── applyRollback ──────┘        (applyRollback of a cutOver placement: no change)
 * ```
 *
 * - A *learner* is an extra replica listed in the shard's `learners`: its node runs the replica
 *   (restores the newest snapshot, follows the log) but routers never read from it and it is
 *   not counted for write consistency or the replication factor.
 * - `cutOver`: the target is a full replica and the source (if any) is gone. This is also the
 *   goal state: a transform that finds it done returns the placement unchanged, so every step
 *   can be re-run (xstate re-runs the in-flight step when a new coordinator restores the
 *   migration) and CAS-retried after a conflict without harm.
 * - Each transform returns the very same object when nothing changes (no write needed), else
 *   a copy with `epoch + 1` (the placement's own version, as `planPlacement`), made by immer.
 *
 * Nothing here reads a clock or does I/O.
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import { produce, type Draft } from "immer";
import type { Placement, ShardPlacement } from "./placement.ts";
import { CollectionName } from "./schemas.ts";

// ───────────────────────────── the value ─────────────────────────────

export const TransferReason = z.enum(["move", "drain", "rebalance", "repair"]);
export type TransferReason = z.infer<typeof TransferReason>;

const NodeId = z.string().min(1).max(256);

/** Characters allowed in a NATS KV key (the id is the `jade_migrations` key). */
export const transferIdPattern = /^[-_=.a-zA-Z0-9]+$/;

export const Transfer = z
  .object({
    /** `transferId(...)` of the other fields: the key in KV `jade_migrations` */
    id: z.string().min(1).max(256).regex(transferIdPattern, "must be a NATS KV key (see transferId)"),
    collection: CollectionName,
    /** the collection incarnation: a transfer never applies to a re-created collection */
    uid: z.string().min(1),
    shard: z.number().int().min(0),
    /** node losing its replica; null = add a replica (restore the replication factor) */
    from: NodeId.nullable(),
    /** node gaining the replica */
    to: NodeId,
    reason: TransferReason,
    /** ISO time the coordinator planned it (informational: the machine never reads it) */
    createdAt: z.string().min(1),
  })
  .strict()
  .refine((t) => t.from !== t.to, { message: "from and to must differ", path: ["to"] });
export type Transfer = z.infer<typeof Transfer>;

export type TransferKey = Pick<Transfer, "collection" | "uid" | "shard" | "from" | "to">;

/**
 * Deterministic id of a transfer: `<collection>.<shard>.<16 hex of sha256(collection, uid,
 * shard, from, to)>`. The same move planned twice (e.g. by a new coordinator) gets the same id,
 * so creating its `jade_migrations` entry with `kv.create` is idempotent. Reason and time are
 * not part of it. A new transfer of the same move after a finished one (completed /
 * rolledBack / failed) reuses the key: the coordinator overwrites a *final* record only.
 */
export function transferId(t: TransferKey): string {
  const hash = createHash("sha256")
    .update(JSON.stringify([t.collection, t.uid, t.shard, t.from, t.to]))
    .digest("hex")
    .slice(0, 16);
  return `${t.collection}.${t.shard}.${hash}`;
}

/** Build a validated transfer with its id (throws a ZodError on invalid fields). */
export function makeTransfer(fields: Omit<Transfer, "id">): Transfer {
  return Transfer.parse({ ...fields, id: transferId(fields) });
}

// ───────────────────────────── progress ─────────────────────────────

export const TransferProgress = z.object({
  /** last log sequence the target reported applied */
  appliedSeq: z.number().int(),
  /** last log sequence of the shard stream as the target reported it */
  targetSeq: z.number().int(),
  /** bytes the target reported copied (snapshot download + log), as last reported */
  bytesCopied: z.number(),
  /**
   * what `bytesCopied` reads once the snapshot or checkpoint the target is copying is in; while
   * `bytesCopied` is below it the target is still copying. 0: no copy started (records written
   * before this field existed read 0 too).
   */
  copyGoalBytes: z.number().default(0),
  /** wall-clock ms (the START event's `atMs`) */
  startedAtMs: z.number(),
  /**
   * estimated ms until the target's lag is within the cutover threshold; while it is still
   * copying, until the copy is in (the replay after it covers only what the log gained since the
   * copied state). null = unknown
   */
  etaMs: z.number().nullable(),
});
export type TransferProgress = z.infer<typeof TransferProgress>;

/** Is the target still copying a snapshot or checkpoint (its copied bytes below the copy's goal)? */
export function copying(p: Pick<TransferProgress, "bytesCopied" | "copyGoalBytes">): boolean {
  return p.bytesCopied < p.copyGoalBytes;
}

/** One progress report of the target, stamped by the watcher (wall-clock ms). */
export interface ProgressSample {
  atMs: number;
  appliedSeq: number;
  targetSeq: number;
  /** bytes copied so far, and what they read once the copy under way is in (both 0 when unreported) */
  bytes?: number;
  copyGoalBytes?: number;
}

const finite = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x);

/**
 * ETA (ms) for the target's lag (`targetSeq - appliedSeq`) to fall to `lagMax`, from the
 * first and last usable samples: the lag closes at (applied rate − log growth rate); the
 * applied-sequence rate alone would promise too much while writes keep arriving.
 * 0 when already within `lagMax`; null with fewer than two samples, no elapsed time, or a lag
 * that is not closing (the target would never catch up at this rate).
 */
export function estimateEta(samples: readonly ProgressSample[], lagMax = 0): number | null {
  const usable = samples.filter((s) => finite(s.atMs) && finite(s.appliedSeq) && finite(s.targetSeq));
  const last = usable.at(-1);
  if (!last) return null;
  if (sampleCopying(last)) return estimateCopyEta(usable.filter((s) => s.copyGoalBytes === last.copyGoalBytes && finite(s.bytes)), last);
  const lagOf = (s: ProgressSample) => Math.max(0, s.targetSeq - s.appliedSeq);
  const remaining = lagOf(last) - Math.max(0, finite(lagMax) ? lagMax : 0);
  if (remaining <= 0) return 0;
  const first = usable[0]!;
  const dt = last.atMs - first.atMs;
  if (!(dt > 0)) return null;
  const closingPerMs = (lagOf(first) - lagOf(last)) / dt;
  if (!(closingPerMs > 0)) return null;
  return Math.ceil(remaining / closingPerMs);
}

const sampleCopying = (s: ProgressSample): boolean => finite(s.bytes) && finite(s.copyGoalBytes) && s.bytes < s.copyGoalBytes;

/** ETA (ms) of the copy under way, from the byte rate since the first sample of this copy; null without one. */
function estimateCopyEta(sameCopy: readonly ProgressSample[], last: ProgressSample): number | null {
  const first = sameCopy[0];
  if (!first) return null;
  const dt = last.atMs - first.atMs;
  const perMs = (last.bytes! - first.bytes!) / dt;
  if (!(dt > 0) || !(perMs > 0)) return null;
  return Math.ceil((last.copyGoalBytes! - last.bytes!) / perMs);
}

// ───────────────────────────── placement transforms ─────────────────────────────

/** Thrown by a transform (and should be by an effect) when a transfer cannot apply: never retried. */
export class TransferError extends Error {
  readonly code = "obsolete" as const;
  constructor(message: string) {
    super(message);
    this.name = "TransferError";
  }
}

/** Is this rejection permanent (`code: "obsolete"`)? Anything else is transient. */
export function isObsoleteError(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as { code?: unknown }).code === "obsolete";
}

/**
 * Where `placement` stands for `t`:
 * - `pending`: the target is neither a learner nor a replica;
 * - `learner`: prepared (the target is a learner);
 * - `cutOver`: the goal holds (the target is a replica, the source is not);
 * - `invalid`: other collection, no such shard, or the target already a replica next to the
 *   source (nothing to move) or both a learner and a replica.
 */
export type TransferPhase = "pending" | "learner" | "cutOver" | "invalid";

export function transferPhase(placement: Placement, t: TransferKey): TransferPhase {
  if (placement.collection !== t.collection) return "invalid";
  const s = placement.shards.find((x) => x.shard === t.shard);
  if (!s) return "invalid";
  const isReplica = s.replicas.includes(t.to);
  if ((s.learners ?? []).includes(t.to)) return isReplica ? "invalid" : "learner";
  if (isReplica) return t.from !== null && s.replicas.includes(t.from) ? "invalid" : "cutOver";
  return "pending";
}

/**
 * Applies `change` to the shard's entry of a draft and bumps the epoch. immer's `produce` keeps
 * every untouched part shared and returns the placement frozen, so a stored placement cannot be
 * changed behind the KV record it came from.
 */
function withShard<P extends Placement>(placement: P, shard: number, change: (s: Draft<ShardPlacement>) => void): P {
  return produce(placement, (draft) => {
    const entry = draft.shards.find((s) => s.shard === shard);
    if (!entry) throw new Error(`bug: no shard ${shard} in the placement of ${placement.collection}`);
    change(entry);
    draft.epoch += 1;
  });
}

/** Removes `node` from a list field, deleting the field when it empties (records never hold `[]`). */
function removeFrom(s: Draft<ShardPlacement>, field: "learners" | "draining", node: string): void {
  const kept = (s[field] ?? []).filter((n) => n !== node);
  if (kept.length > 0) s[field] = kept;
  else delete s[field];
}

/** Add the target as a learner. Unchanged if already a learner or cut over; throws if invalid. */
export function applyPrepare<P extends Placement>(placement: P, t: TransferKey): P {
  const phase = transferPhase(placement, t);
  if (phase === "learner" || phase === "cutOver") return placement;
  if (phase === "invalid") throw new TransferError(`cannot prepare ${describe(t)}: ${whyInvalid(placement, t)}`);
  return withShard(placement, t.shard, (s) => {
    s.learners = [...(s.learners ?? []), t.to];
  });
}

/**
 * Promote the learner to a full replica in the source's position (appended when `from` is null
 * or the source is already gone) and drop the source. Unchanged if already cut over; throws
 * if the target is not a learner (someone removed it: it must not serve un-caught-up).
 */
export function applyCutover<P extends Placement>(placement: P, t: TransferKey): P {
  const phase = transferPhase(placement, t);
  if (phase === "cutOver") return placement;
  if (phase !== "learner") {
    throw new TransferError(
      `cannot cut over ${describe(t)}: ${phase === "pending" ? "the target is not a learner" : whyInvalid(placement, t)}`,
    );
  }
  return withShard(placement, t.shard, (s) => {
    const at = t.from === null ? -1 : s.replicas.indexOf(t.from);
    if (at >= 0) s.replicas[at] = t.to;
    else s.replicas.push(t.to);
    removeFrom(s, "learners", t.to);
  });
}

/** Remove the target's learner entry. Unchanged when there is none — including after a cutover. */
export function applyRollback<P extends Placement>(placement: P, t: TransferKey): P {
  if (transferPhase(placement, t) !== "learner") return placement;
  return withShard(placement, t.shard, (s) => removeFrom(s, "learners", t.to));
}

/** After a cutover: the source keeps its replica, unrouted, while in-flight reads finish. Unchanged if already draining. */
export function markDraining<P extends Placement>(placement: P, shard: number, node: string): P {
  if (placement.shards.find((s) => s.shard === shard)?.draining?.includes(node)) return placement;
  return withShard(placement, shard, (s) => {
    s.draining = [...(s.draining ?? []), node];
  });
}

/** The drain is over: the source's replica is released. Unchanged if it was not draining. */
export function releaseDraining<P extends Placement>(placement: P, shard: number, node: string): P {
  if (!placement.shards.find((s) => s.shard === shard)?.draining?.includes(node)) return placement;
  return withShard(placement, shard, (s) => removeFrom(s, "draining", node));
}

function describe(t: TransferKey): string {
  return `${t.collection}/${t.shard} ${t.from ?? "(new)"} → ${t.to}`;
}

function whyInvalid(placement: Placement, t: TransferKey): string {
  if (placement.collection !== t.collection) return `placement is for '${placement.collection}'`;
  const s = placement.shards.find((x) => x.shard === t.shard);
  if (!s) return `no shard ${t.shard}`;
  if ((s.learners ?? []).includes(t.to) && s.replicas.includes(t.to)) return `${t.to} is both a learner and a replica`;
  return `${t.to} already holds a replica next to ${t.from}`;
}
