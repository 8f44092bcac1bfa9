/**
 * Point locks for transactions, in KV `jade_locks` (decision 013): one key per point,
 * `<collection uid>.<sha-256 of the id>` (ids may hold characters a KV key may not), holding
 * `{txn, expiresAtMs}`. Taken with create-only writes in the keys' sorted order, so no cycle of
 * waiters can form; a held lock is waited for with a bounded back-off, an expired one taken over
 * by a CAS on its revision. A transaction that cannot have them all by its deadline holds none.
 */
import { createHash } from "node:crypto";
import type { KV } from "@nats-io/kv";
import { z } from "zod";
import { delay } from "../../runtime/async.ts";
import { ErrorCode, JadeError } from "../../runtime/errors.ts";

const LockValue = z.object({ txn: z.string(), expiresAtMs: z.number() }).strict();
type LockValue = z.infer<typeof LockValue>;

/** The waits between tries at a held lock: short first (most transactions take milliseconds), then capped. */
const retryDelayMinMs = 2;
const retryDelayMaxMs = 50;

export const lockKey = (uid: string, id: string): string => `${uid}.${createHash("sha256").update(id).digest("hex").slice(0, 40)}`;

export class LockTable {
  readonly #kv: KV;
  readonly #now: () => number;

  constructor(kv: KV, now: () => number = Date.now) {
    this.#kv = kv;
    this.#now = now;
  }

  /**
   * Locks every id for `txn` until `expiresAtMs`, in sorted key order, waiting for held ones
   * until `deadlineAtMs`; on failure releases what it took and throws `conflict`.
   * Returns the keys taken.
   */
  async acquire(uid: string, ids: readonly string[], txn: string, expiresAtMs: number, deadlineAtMs: number): Promise<string[]> {
    const keys = [...new Set(ids.map((id) => lockKey(uid, id)))].sort();
    const value = JSON.stringify({ txn, expiresAtMs } satisfies LockValue);
    const taken: string[] = [];
    try {
      for (const key of keys) {
        await this.#take(key, txn, value, deadlineAtMs);
        taken.push(key);
      }
      return keys;
    } catch (err) {
      await this.release(taken, txn);
      throw err;
    }
  }

  /** Deletes the locks `txn` holds among `keys` (another's, taken over after expiry, stays). */
  async release(keys: readonly string[], txn: string): Promise<void> {
    await Promise.all(
      keys.map(async (key) => {
        const entry = await this.#kv.get(key);
        if (entry?.operation !== "PUT" || LockValue.safeParse(entry.json()).data?.txn !== txn) return;
        await this.#kv.delete(key, { previousSeq: entry.revision }).catch(() => undefined);
      }),
    );
  }

  /** Deletes every lock `txn` holds on points of the collection incarnation `uid` (recovery, which does not know the ids). */
  async releaseAll(uid: string, txn: string): Promise<void> {
    const keys: string[] = [];
    for await (const key of await this.#kv.keys(`${uid}.>`)) keys.push(key);
    await this.release(keys, txn);
  }

  async #take(key: string, txn: string, value: string, deadlineAtMs: number): Promise<void> {
    for (let wait = retryDelayMinMs; ; wait = Math.min(retryDelayMaxMs, wait * 2)) {
      const created = await this.#kv.create(key, value).then(
        () => true,
        () => false,
      );
      if (created) return;
      const entry = await this.#kv.get(key);
      if (entry?.operation !== "PUT") {
        // Deleted: a create-only write on a deleted key needs its revision.
        if (await this.#kv.update(key, value, entry?.revision ?? 0).then(() => true, () => false)) return;
        continue;
      }
      const held = LockValue.safeParse(entry.json()).data;
      if (held?.txn === txn) return;
      if (!held || held.expiresAtMs < this.#now()) {
        if (await this.#kv.update(key, value, entry.revision).then(() => true, () => false)) return;
        continue;
      }
      if (this.#now() + wait > deadlineAtMs) throw new JadeError(ErrorCode.Conflict, `a point is locked by transaction ${held.txn}`, { details: { lockedBy: held.txn } });
      await delay(wait);
    }
  }
}
