/**
 * The backup catalog (KV `jade_backups`) and the restore log (KV `jade_restores`): one key per
 * job id, its record as JSON. A running job rewrites its record every `heartbeatIntervalMs`
 * with its progress; one whose heartbeat stops (its node died) is failed by the leader's
 * sweep, so `list` never shows a dead job as running, nor a half-written backup as complete.
 */
import type { ListedKv } from "../../nats/kv-keys.ts";
import type { z } from "zod";
import { KvView } from "../../nats/kv-view.ts";
import { errorMessage } from "../../runtime/errors.ts";
import type { Logger } from "../../runtime/log.ts";

export const heartbeatIntervalMs = 1_000;
/** A running job silent this long is dead. */
export const heartbeatStaleMs = 15_000;

const encoder = new TextEncoder();

export class JobRecords<T extends { id: string; state: string; heartbeatAtMs: number }> {
  readonly #kv: ListedKv;
  readonly #schema: z.ZodType<T>;
  /**
   * The records as a watch keeps them, for what runs often and must not wait on KV: the status
   * (listing the keys of a bucket under a partitioned NATS held `cluster.status` past its
   * 10 s deadline in the chaos run) and the retention pass's holds.
   */
  readonly #view: KvView<T>;

  constructor(kv: ListedKv, schema: z.ZodType<T>, log: Logger) {
    this.#kv = kv;
    this.#schema = schema;
    this.#view = new KvView(kv, { decode: (entry) => schema.parse(entry.json()), log });
  }

  start(): Promise<void> {
    return this.#view.start();
  }

  stop(): Promise<void> {
    return this.#view.stop();
  }

  async get(id: string): Promise<T | undefined> {
    const entry = await this.#kv.get(id).catch(() => null);
    if (entry?.operation !== "PUT") return undefined;
    const parsed = this.#schema.safeParse(entry.json());
    return parsed.success ? parsed.data : undefined;
  }

  async put(record: T): Promise<void> {
    const revision = await this.#kv.put(record.id, encoder.encode(JSON.stringify(record)));
    this.#view.applyOwnWrite(record.id, record, revision);
  }

  async delete(id: string): Promise<void> {
    await this.#kv.purge(id);
    this.#view.applyOwnDelete(id);
  }

  /** Every record, oldest id first (ids sort by time). */
  async list(): Promise<T[]> {
    const out: T[] = [];
    for (const key of await this.#kv.listKeys()) {
      const record = await this.get(key);
      if (record) out.push(record);
    }
    return out.sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Running records whose heartbeat is fresh (from the watch): what retention must not purge under, what the status shows. */
  running(nowMs: number): T[] {
    return this.#view.values().filter((r) => r.state === "running" && nowMs - r.heartbeatAtMs < heartbeatStaleMs);
  }
}

/** A record still marked running whose node stopped beating. */
export function isStale(record: { state: string; heartbeatAtMs: number }, nowMs: number): boolean {
  return record.state === "running" && nowMs - record.heartbeatAtMs >= heartbeatStaleMs;
}

/**
 * Rewrites a running job's record every heartbeat with what `current()` returns, until
 * stopped; a failed write is logged and retried on the next beat (the job goes on).
 */
export function beat<T extends { id: string; state: string; heartbeatAtMs: number }>(
  records: JobRecords<T>,
  current: () => T,
  log: Logger,
): () => Promise<void> {
  let writing: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    writing = writing.then(() => records.put({ ...current(), heartbeatAtMs: Date.now() }).catch((err: unknown) => log.warn({ err: errorMessage(err) }, "job heartbeat not written; retrying")));
  }, heartbeatIntervalMs);
  return async () => {
    clearInterval(timer);
    await writing;
  };
}
