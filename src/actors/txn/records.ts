/**
 * Transaction records in KV `jade_txns` (decision 013): the log of decisions. A record is
 * created `preparing` before any of the transaction's log entries; the CAS that moves it to
 * `committed` is the commit point, and one to `aborted` rules it out, so of the gateway and
 * recovery deciding at once exactly one wins, and both read what it decided.
 *
 * A record lives under `open.<id>` until its markers are appended and its locks released, then
 * under `done.<id>` (kept a day, for `jade txns get`): recovery, which runs every second on the
 * coordinator, lists the open ones only, so a done record's `open.` key leaves no delete marker
 * behind (nats/kv-keys.ts). Records are read from the stream's leader (`ListedKv.latest`): a
 * direct get may be a replica's, one write behind (a lock table so read its own delete undone).
 */
import type { ListedKv } from "../../nats/kv-keys.ts";
import { ErrorCode, JadeError } from "../../runtime/errors.ts";
import { limits } from "../../runtime/limits.ts";
import { TxnRecord, TxnState } from "../../runtime/txn-schemas.ts";

const openPrefix = "open.";
const openKey = (id: string) => `${openPrefix}${id}`;
const doneKey = (id: string) => `done.${id}`;
/** KV reads a listing has in flight at once. */
const listReadsAtOnce = 32;

/** Open records this process wrote and may write again: a gateway's transaction lasts milliseconds, so a few thousand cover any rate seen here. */
const writtenKeptMax = 4_096;

interface Revised {
  record: TxnRecord;
  revision: number;
}

export class TxnRecords {
  readonly #kv: ListedKv;
  /**
   * What this process last wrote to each open record, at which revision: the next CAS is tried
   * with it before reading the record (a gateway writes its record four times in a row; measured,
   * the reads were a fifth of a transaction's time). A revision that moved on fails the CAS, and
   * the record is read then: a cache that can only save reads, never decide.
   */
  readonly #written = new Map<string, Revised>();

  constructor(kv: ListedKv) {
    this.#kv = kv;
  }

  /** Create-only: a retry that finds its own record is done. */
  async create(record: TxnRecord): Promise<void> {
    try {
      this.#remember(record, await this.#kv.create(openKey(record.id), JSON.stringify(record)));
    } catch (err) {
      if ((await this.get(record.id))?.node !== record.node) throw err;
    }
  }

  async get(id: string): Promise<TxnRecord | undefined> {
    for (const key of [openKey(id), doneKey(id)]) {
      const entry = await this.#kv.latest(key);
      if (entry?.operation === "PUT") return TxnRecord.parse(entry.json());
    }
    return undefined;
  }

  /** Moves a `preparing` record to `outcome`; answers what the record holds afterwards (a decision already made stands). */
  async decide(id: string, outcome: typeof TxnState.Committed | typeof TxnState.Aborted, change: Partial<Pick<TxnRecord, "prepareSeqs" | "reason">> = {}, nowMs = Date.now()): Promise<TxnState> {
    const after = await this.#update(id, (record) => (record.state === TxnState.Preparing ? { ...record, ...change, state: outcome, decidedAtMs: nowMs } : undefined));
    if (after) return after.state;
    const done = await this.get(id);
    if (done) return done.state;
    throw new JadeError(ErrorCode.NotFound, `no record of transaction ${id}`);
  }

  /** Records where the prepares are, while the record is `preparing` (recovery ends them from it). */
  async notePrepared(id: string, prepareSeqs: Record<string, number>): Promise<void> {
    await this.#update(id, (record) => (record.state === TxnState.Preparing ? { ...record, prepareSeqs } : undefined));
  }

  /** Marks a decided record done (markers appended, locks released): it moves out of recovery's sight. */
  async markDone(id: string): Promise<void> {
    for (let known = this.#written.get(id); ; known = undefined) {
      const open = known ?? (await this.#readOpen(id));
      if (!open || open.record.state === TxnState.Preparing) break;
      // Written before the open one goes: a record is never missing from both.
      await this.#kv.put(doneKey(id), JSON.stringify({ ...open.record, done: true }));
      const deleted = await this.#kv.delete(openKey(id), { previousSeq: open.revision }).then(
        () => true,
        () => false,
      );
      // Its marker goes too: no write can follow on a decided record's open key (a CAS needs the
      // revision the marker replaced, and only a new transaction creates one). Left behind, the
      // marker costs listings only, so a failure here is not the record's.
      if (deleted) await this.#kv.dropHistory(openKey(id)).catch(() => undefined);
      if (deleted || !known) break;
    }
    this.#written.delete(id);
  }

  /** Applies `next` to the open record by CAS, trying what this process wrote first; the record afterwards, undefined when none is open. */
  async #update(id: string, next: (record: TxnRecord) => TxnRecord | undefined): Promise<TxnRecord | undefined> {
    for (let known = this.#written.get(id); ; known = undefined) {
      const open = known ?? (await this.#readOpen(id));
      if (!open) return undefined;
      const updated = next(open.record);
      if (!updated) {
        if (!known) return open.record;
        continue; // What this process wrote may be behind: decide from the record itself.
      }
      const revision = await this.#kv.update(openKey(id), JSON.stringify(updated), open.revision).catch(() => undefined);
      if (revision !== undefined) {
        this.#remember(updated, revision);
        return updated;
      }
    }
  }

  async #readOpen(id: string): Promise<Revised | undefined> {
    const entry = await this.#kv.latest(openKey(id));
    return entry?.operation === "PUT" ? { record: TxnRecord.parse(entry.json()), revision: entry.revision } : undefined;
  }

  #remember(record: TxnRecord, revision: number): void {
    this.#written.delete(record.id);
    this.#written.set(record.id, { record, revision });
    if (this.#written.size > writtenKeptMax) this.#written.delete(this.#written.keys().next().value!);
  }

  /** The records not done yet: what recovery looks at. */
  async open(): Promise<TxnRecord[]> {
    return this.#list(`${openPrefix}>`);
  }

  /**
   * Records newest first (`jade txns list`), as many as `limit` that `match`, reading at most
   * `limits.txnListScanMax` of them. A gateway's ids begin with their creation time in base 36,
   * so the keys' order is the records' without reading them; the page itself is ordered by
   * `createdAtMs`. `more`: records were left out.
   */
  async newest(options: { openOnly: boolean; limit: number; match: (record: TxnRecord) => boolean }): Promise<{ records: TxnRecord[]; more: boolean }> {
    const ids = new Set<string>();
    for (const key of await this.#kv.listKeys(options.openOnly ? `${openPrefix}>` : ">")) ids.add(key.slice(key.indexOf(".") + 1));
    const newestFirst = [...ids].sort().reverse();
    const records: TxnRecord[] = [];
    let read = 0;
    while (read < newestFirst.length && read < limits.txnListScanMax && records.length <= options.limit) {
      const batch = newestFirst.slice(read, Math.min(read + listReadsAtOnce, limits.txnListScanMax));
      read += batch.length;
      // Read through get(): a record moving from open to done meanwhile is found under its new key.
      const found = await Promise.all(batch.map((id) => this.get(id).catch(() => undefined)));
      for (const record of found) if (record && (!options.openOnly || !record.done) && options.match(record)) records.push(record);
    }
    records.sort((a, b) => b.createdAtMs - a.createdAtMs);
    return { records: records.slice(0, options.limit), more: records.length > options.limit || read < newestFirst.length };
  }

  async #list(filter: string): Promise<TxnRecord[]> {
    const keys = await this.#kv.listKeys(filter);
    const out: TxnRecord[] = [];
    for (let i = 0; i < keys.length; i += listReadsAtOnce) {
      const entries = await Promise.all(keys.slice(i, i + listReadsAtOnce).map((key) => this.#kv.latest(key).catch(() => null)));
      for (const entry of entries) {
        const record = entry?.operation === "PUT" ? TxnRecord.safeParse(entry.json()).data : undefined;
        if (record) out.push(record);
      }
    }
    return out.sort((a, b) => a.createdAtMs - b.createdAtMs);
  }
}
