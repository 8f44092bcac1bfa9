/**
 * The simulation's KV buckets as JetStream keeps them (`jade_locks`, `jade_txns`): each key's
 * last entry, a PUT or a delete marker, at a bucket-wide revision; writes that expect a key's
 * last revision (create-only, CAS) fail otherwise. `kvClient` is the other side: the
 * @nats-io/kv calls the transaction code makes, each a request over the simulated network (its
 * faults, its timeouts), with the library's behaviour where the code relies on it.
 */
import type { ListedKv } from "../../src/nats/kv-keys.ts";
import { TIMING } from "./config.ts";
import type { Endpoint, World } from "./world.ts";

/** JetStream's refusal of a write whose expected last revision is not the key's. */
export class WrongLastSequence extends Error {
  override readonly name = "WrongLastSequence";
}

export interface StoredEntry {
  key: string;
  /** undefined for a delete marker */
  value: string | undefined;
  operation: "PUT" | "DEL";
  revision: number;
  /** when the write was sent, and whether its writer heard it landed (the checkers tell a forgotten lock from a late request) */
  sentAt: number;
  acked: boolean;
}

export class SimBucket {
  private readonly last = new Map<string, StoredEntry>();
  private revision = 0;

  get(key: string): StoredEntry | undefined {
    return this.last.get(key);
  }

  /** A PUT sent at `sentAt`; with `previousSeq`, only if that is the key's last revision (0: never written). */
  put(sentAt: number, key: string, value: string, previousSeq?: number): number {
    return this.write(sentAt, key, value, previousSeq);
  }

  /** A delete marker sent at `sentAt`; with `previousSeq`, only if that is the key's last revision. */
  delete(sentAt: number, key: string, previousSeq?: number): number {
    return this.write(sentAt, key, undefined, previousSeq);
  }

  /** The keys whose last entry is a PUT, matching a filter (`>`, `<prefix>.>` or a key). */
  keys(filter: string): string[] {
    return this.subjects(filter).filter((key) => this.last.get(key)!.operation === "PUT");
  }

  /** The keys holding any entry, a delete marker too, matching a filter: what the stream's subjects list. */
  subjects(filter: string): string[] {
    const match = filter === ">" ? () => true : filter.endsWith(".>") ? (k: string) => k.startsWith(filter.slice(0, -1)) : (k: string) => k === filter;
    return [...this.last.keys()].filter(match);
  }

  /** A purge of the key's subject up to `throughRevision` (all of it without): nothing written later goes. */
  drop(key: string, throughRevision = Infinity): void {
    if ((this.last.get(key)?.revision ?? Infinity) <= throughRevision) this.last.delete(key);
  }

  /** The writer heard that its write landed. */
  acknowledge(key: string, revision: number): void {
    const e = this.last.get(key);
    if (e?.revision === revision) e.acked = true;
  }

  /** Every key's last entry that is a PUT, for the checkers (no network). */
  live(): StoredEntry[] {
    return [...this.last.values()].filter((e) => e.operation === "PUT");
  }

  private write(sentAt: number, key: string, value: string | undefined, previousSeq: number | undefined): number {
    const last = this.last.get(key)?.revision ?? 0;
    if (previousSeq !== undefined && previousSeq !== last) throw new WrongLastSequence(`wrong last sequence: ${last}`);
    this.revision += 1;
    this.last.set(key, { key, value, operation: value === undefined ? "DEL" : "PUT", revision: this.revision, sentAt, acked: false });
    return this.revision;
  }
}

/** What `get` answers: a copy of the entry as read (a KvEntry's fields the code reads). */
function entryOf(e: StoredEntry | undefined) {
  if (!e) return null;
  const { key, value, operation, revision } = e;
  return { key, revision, operation, string: () => value ?? "", json: <T>(): T => JSON.parse(value ?? "") as T };
}

/**
 * A @nats-io/kv client of `bucket` for the process `ep`; `onWrite` is told of every write sent
 * (the simulation's quiescence waits until none can still land).
 */
export function kvClient(w: World, ep: Endpoint, bucket: SimBucket, onWrite: () => void): ListedKv {
  // a crashed process sends nothing more (its requests already sent may still land)
  const call = <T>(op: () => T): Promise<T> => (ep.alive() ? w.call(ep, op, TIMING.requestTimeoutMs) : new Promise<T>(() => {}));
  const write = async (key: string, op: (sentAt: number) => number): Promise<number> => {
    onWrite();
    const sentAt = w.now();
    const revision = await call(() => op(sentAt));
    bucket.acknowledge(key, revision);
    return revision;
  };
  const get = (key: string) => call(() => entryOf(bucket.get(key)));
  const client = {
    get,
    // The simulated bucket has one copy: its reads are the leader's.
    latest: get,
    /** The library's: a write expecting no entry; failing that (any error), one at a delete marker's revision. */
    async create(key: string, value: string): Promise<number> {
      try {
        return await write(key, (at) => bucket.put(at, key, value, 0));
      } catch (firstErr) {
        const e = await get(key);
        if (e && e.operation !== "PUT") return write(key, (at) => bucket.put(at, key, value, e.revision));
        throw firstErr;
      }
    },
    /** Not async in the library either: a version of 0 throws before any request. */
    update(key: string, value: string, version: number): Promise<number> {
      if (version <= 0) throw new Error("version must be greater than 0");
      return write(key, (at) => bucket.put(at, key, value, version));
    },
    put: (key: string, value: string) => write(key, (at) => bucket.put(at, key, value)),
    async delete(key: string, opts?: { previousSeq?: number }): Promise<void> {
      await write(key, (at) => bucket.delete(at, key, opts?.previousSeq));
    },
    /** One request for the whole listing (nats/kv-keys.ts: the stream's subjects). */
    listKeys: (filter = ">") => call(() => bucket.subjects(filter)),
    async dropHistory(key: string, throughRevision?: number): Promise<void> {
      onWrite();
      await call(() => bucket.drop(key, throughRevision));
    },
  };
  return client as unknown as ListedKv;
}
