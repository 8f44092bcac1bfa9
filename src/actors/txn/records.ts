/**
 * Transaction records in KV `jade_txns` (decision 013): the log of decisions. A record is
 * created `preparing` before any of the transaction's log entries; the CAS that moves it to
 * `committed` is the commit point, and one to `aborted` rules it out, so of the gateway and
 * recovery deciding at once exactly one wins, and both read what it decided.
 */
import type { KV } from "@nats-io/kv";
import { ErrorCode, JadeError } from "../../runtime/errors.ts";
import { TxnRecord, TxnState } from "../../runtime/txn-schemas.ts";

export class TxnRecords {
  readonly #kv: KV;

  constructor(kv: KV) {
    this.#kv = kv;
  }

  /** Create-only: a retry that finds its own record is done. */
  async create(record: TxnRecord): Promise<void> {
    try {
      await this.#kv.create(record.id, JSON.stringify(record));
    } catch (err) {
      if ((await this.get(record.id))?.node !== record.node) throw err;
    }
  }

  async get(id: string): Promise<TxnRecord | undefined> {
    const entry = await this.#kv.get(id);
    if (entry?.operation !== "PUT") return undefined;
    return TxnRecord.parse(entry.json());
  }

  /** Moves a `preparing` record to `outcome`; answers what the record holds afterwards (a decision already made stands). */
  async decide(id: string, outcome: typeof TxnState.Committed | typeof TxnState.Aborted, change: Partial<Pick<TxnRecord, "prepareSeqs" | "reason">> = {}, nowMs = Date.now()): Promise<TxnState> {
    for (;;) {
      const entry = await this.#kv.get(id);
      if (entry?.operation !== "PUT") throw new JadeError(ErrorCode.NotFound, `no record of transaction ${id}`);
      const record = TxnRecord.parse(entry.json());
      if (record.state !== TxnState.Preparing) return record.state;
      const decided: TxnRecord = { ...record, ...change, state: outcome, decidedAtMs: nowMs };
      if (await this.#kv.update(id, JSON.stringify(decided), entry.revision).then(() => true, () => false)) return outcome;
    }
  }

  /** Records where the prepares are, while the record is `preparing` (recovery ends them from it). */
  async notePrepared(id: string, prepareSeqs: Record<string, number>): Promise<void> {
    for (;;) {
      const entry = await this.#kv.get(id);
      if (entry?.operation !== "PUT") return;
      const record = TxnRecord.parse(entry.json());
      if (record.state !== TxnState.Preparing) return;
      if (await this.#kv.update(id, JSON.stringify({ ...record, prepareSeqs }), entry.revision).then(() => true, () => false)) return;
    }
  }

  /** Marks a decided record done (markers appended, locks released): recovery leaves it alone. */
  async markDone(id: string): Promise<void> {
    for (;;) {
      const entry = await this.#kv.get(id);
      if (entry?.operation !== "PUT") return;
      const record = TxnRecord.parse(entry.json());
      if (record.done || record.state === TxnState.Preparing) return;
      if (await this.#kv.update(id, JSON.stringify({ ...record, done: true }), entry.revision).then(() => true, () => false)) return;
    }
  }

  /** Every record still kept (a day after its last write). */
  async list(): Promise<TxnRecord[]> {
    const out: TxnRecord[] = [];
    for await (const key of await this.#kv.keys()) {
      const record = await this.get(key).catch(() => undefined);
      if (record) out.push(record);
    }
    return out.sort((a, b) => a.createdAtMs - b.createdAtMs);
  }
}
