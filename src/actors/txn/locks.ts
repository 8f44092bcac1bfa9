/**
 * Point locks for transactions, in KV `jade_locks` (decision 013): one key per point,
 * `<collection uid>.<sha-256 of the id>` (ids may hold characters a KV key may not), holding
 * `{txn, expiresAtMs}`. Taken with create-only writes in the keys' sorted order, so no cycle of
 * waiters can form; a held lock is waited for with a bounded back-off, an expired one taken over
 * by a CAS on its revision. A transaction that cannot have them all by its deadline holds none.
 *
 * First, every lock is tried once at the same time, waiting for none: when all are free (the
 * common case) that is one round trip instead of one per point — measured on this machine,
 * 10 points' locks took 4.7 ms in order. If any is held, what was taken is let go and they are
 * taken in order, waiting: the try never waits, so it cannot join a cycle of waiters either.
 */
import { createHash } from "node:crypto";
import type { KV, KvEntry } from "@nats-io/kv";
import { z } from "zod";
import { delay } from "../../runtime/async.ts";
import { ErrorCode, JadeError } from "../../runtime/errors.ts";

const LockValue = z.object({ txn: z.string(), expiresAtMs: z.number() }).strict();
type LockValue = z.infer<typeof LockValue>;

/** The waits between tries at a held lock: short first (most transactions take milliseconds), then capped. */
const retryDelayMinMs = 2;
const retryDelayMaxMs = 50;

export const lockKey = (uid: string, id: string): string => `${uid}.${createHash("sha256").update(id).digest("hex").slice(0, 40)}`;

/** A lock taken: its key, and the revision that took it (its release deletes exactly that, in one round trip). */
export interface HeldLock {
  key: string;
  revision: number;
}

export class LockTable {
  readonly #kv: KV;
  readonly #now: () => number;

  constructor(kv: KV, now: () => number = Date.now) {
    this.#kv = kv;
    this.#now = now;
  }

  /**
   * Locks every id for `txn` until `expiresAtMs`, waiting for held ones until `deadlineAtMs`;
   * on failure releases what it took and throws `conflict`.
   */
  async acquire(uid: string, ids: readonly string[], txn: string, expiresAtMs: number, deadlineAtMs: number): Promise<HeldLock[]> {
    const keys = [...new Set(ids.map((id) => lockKey(uid, id)))].sort();
    const value = JSON.stringify({ txn, expiresAtMs } satisfies LockValue);
    const tried = await Promise.all(keys.map((key) => this.#tryTake(key, txn, value)));
    const held = tried.filter((h): h is HeldLock => h !== undefined);
    if (held.length === keys.length) return held;
    await this.releaseHeld(held);
    const taken: HeldLock[] = [];
    try {
      for (const key of keys) taken.push(await this.#take(key, txn, value, deadlineAtMs));
      return taken;
    } catch (err) {
      await this.releaseHeld(taken);
      throw err;
    }
  }

  /** Deletes locks this table took, each only if still at the revision that took it (one taken over after expiry stays). */
  async releaseHeld(held: readonly HeldLock[]): Promise<void> {
    await Promise.all(held.map(({ key, revision }) => this.#kv.delete(key, { previousSeq: revision }).catch(() => undefined)));
  }

  /** Deletes the locks `txn` holds among `keys`, read first (recovery, which knows no revisions). */
  async release(keys: readonly string[], txn: string): Promise<void> {
    await Promise.all(
      keys.map(async (key) => {
        const entry = await this.#kv.get(key);
        if (entry?.operation !== "PUT" || lockOf(entry)?.txn !== txn) return;
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

  /** Takes the lock if it is free (never taken, released, or expired) or already `txn`'s; undefined when another holds it. */
  async #tryTake(key: string, txn: string, value: string): Promise<HeldLock | undefined> {
    const created = await this.#kv.create(key, value).catch(() => undefined);
    if (created !== undefined) return { key, revision: created };
    const entry = await this.#kv.get(key);
    const held = lockOf(entry);
    if (held?.txn === txn) return { key, revision: entry!.revision };
    // Released (a create-only write on a deleted key needs its revision), expired, or unreadable: taken over by CAS.
    const free = entry?.operation !== "PUT" || !held || held.expiresAtMs < this.#now();
    if (!free) return undefined;
    const revision = await this.#kv.update(key, value, entry?.revision ?? 0).catch(() => undefined);
    return revision === undefined ? undefined : { key, revision };
  }

  /** Takes the lock, waiting with a bounded back-off while another holds it, until `deadlineAtMs`. */
  async #take(key: string, txn: string, value: string, deadlineAtMs: number): Promise<HeldLock> {
    for (let wait = retryDelayMinMs; ; wait = Math.min(retryDelayMaxMs, wait * 2)) {
      const taken = await this.#tryTake(key, txn, value);
      if (taken) return taken;
      if (this.#now() + wait > deadlineAtMs) {
        const holder = lockOf(await this.#kv.get(key).catch(() => null))?.txn ?? "another transaction";
        throw new JadeError(ErrorCode.Conflict, `a point is locked by transaction ${holder}`, { details: { lockedBy: holder } });
      }
      await delay(wait);
    }
  }
}

/** The lock a KV entry holds; undefined for a deleted key or a value that is not a lock. */
function lockOf(entry: KvEntry | null): LockValue | undefined {
  if (entry?.operation !== "PUT") return undefined;
  try {
    return LockValue.safeParse(entry.json()).data;
  } catch {
    return undefined;
  }
}
