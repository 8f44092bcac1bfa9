/**
 * Transaction records in KV `jade_txns` (decision 013): the log of decisions. A record is
 * created `preparing` before any of the transaction's log entries; the CAS that moves it to
 * `committed` is the commit point, and one to `aborted` rules it out, so of the gateway and
 * recovery deciding at once exactly one wins, and both read what it decided.
 *
 * A record lives under `open.<id>` until its markers are appended and its locks released, then
 * under `done.<id>` (kept a day, for `jade txns get`): recovery, which runs every second on the
 * coordinator, lists the open ones only.
 */
import type { KV } from "@nats-io/kv";
import { ErrorCode, JadeError } from "../../runtime/errors.ts";
import { TxnRecord, TxnState } from "../../runtime/txn-schemas.ts";

const openPrefix = "open.";
const openKey = (id: string) => `${openPrefix}${id}`;
const doneKey = (id: string) => `done.${id}`;

export class TxnRecords {
  readonly #kv: KV;

  constructor(kv: KV) {
    this.#kv = kv;
  }

  /** Create-only: a retry that finds its own record is done. */
  async create(record: TxnRecord): Promise<void> {
    try {
      await this.#kv.create(openKey(record.id), JSON.stringify(record));
    } catch (err) {
      if ((await this.get(record.id))?.node !== record.node) throw err;
    }
  }

  async get(id: string): Promise<TxnRecord | undefined> {
    for (const key of [openKey(id), doneKey(id)]) {
      const entry = await this.#kv.get(key);
      if (entry?.operation === "PUT") return TxnRecord.parse(entry.json());
    }
    return undefined;
  }

  /** Moves a `preparing` record to `outcome`; answers what the record holds afterwards (a decision already made stands). */
  async decide(id: string, outcome: typeof TxnState.Committed | typeof TxnState.Aborted, change: Partial<Pick<TxnRecord, "prepareSeqs" | "reason">> = {}, nowMs = Date.now()): Promise<TxnState> {
    for (;;) {
      const entry = await this.#kv.get(openKey(id));
      if (entry?.operation !== "PUT") {
        const done = await this.get(id);
        if (done) return done.state;
        throw new JadeError(ErrorCode.NotFound, `no record of transaction ${id}`);
      }
      const record = TxnRecord.parse(entry.json());
      if (record.state !== TxnState.Preparing) return record.state;
      const decided: TxnRecord = { ...record, ...change, state: outcome, decidedAtMs: nowMs };
      if (await this.#kv.update(openKey(id), JSON.stringify(decided), entry.revision).then(() => true, () => false)) return outcome;
    }
  }

  /** Records where the prepares are, while the record is `preparing` (recovery ends them from it). */
  async notePrepared(id: string, prepareSeqs: Record<string, number>): Promise<void> {
    for (;;) {
      const entry = await this.#kv.get(openKey(id));
      if (entry?.operation !== "PUT") return;
      const record = TxnRecord.parse(entry.json());
      if (record.state !== TxnState.Preparing) return;
      if (await this.#kv.update(openKey(id), JSON.stringify({ ...record, prepareSeqs }), entry.revision).then(() => true, () => false)) return;
    }
  }

  /** Marks a decided record done (markers appended, locks released): it moves out of recovery's sight. */
  async markDone(id: string): Promise<void> {
    const entry = await this.#kv.get(openKey(id));
    if (entry?.operation !== "PUT") return;
    const record = TxnRecord.parse(entry.json());
    if (record.state === TxnState.Preparing) return;
    // Written before the open one goes: a record is never missing from both.
    await this.#kv.put(doneKey(id), JSON.stringify({ ...record, done: true }));
    await this.#kv.delete(openKey(id), { previousSeq: entry.revision }).catch(() => undefined);
  }

  /** The records not done yet: what recovery looks at. */
  async open(): Promise<TxnRecord[]> {
    return this.#list(`${openPrefix}>`);
  }

  /** Every record still kept (a day after its last write), oldest first. */
  async list(): Promise<TxnRecord[]> {
    return this.#list(">");
  }

  async #list(filter: string): Promise<TxnRecord[]> {
    const out: TxnRecord[] = [];
    for await (const key of await this.#kv.keys(filter)) {
      const entry = await this.#kv.get(key).catch(() => null);
      const record = entry?.operation === "PUT" ? TxnRecord.safeParse(entry.json()).data : undefined;
      if (record) out.push(record);
    }
    return out.sort((a, b) => a.createdAtMs - b.createdAtMs);
  }
}
