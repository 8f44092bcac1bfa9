/**
 * A KV bucket whose keys are listed from its stream's subjects, and whose deleted keys can be
 * dropped from it for good: every bucket of ours is one (nats/connect.ts). The transaction
 * records and point locks (actors/txn/) are keyed by ids that come and go by the thousand, and
 * recovery lists the live ones every second.
 *
 * Why not `kv.keys()`: measured here (nats.js 3.4, nats-server 2.9.10), a loop of `keys()`
 * beside a writer creating and deleting keys hung on its 14th call for good (over 100 s): its
 * push consumer ends on a message with nothing pending or on an idle heartbeat, and neither
 * came. Recovery's sweep waited on it and never ran again. Stream info with a subject filter
 * is one bounded request per 100,000 subjects (3,000 listed in 9 ms). Also, `keys()` creates a
 * consumer, and nats-server 2.9.10 places a one-replica consumer on a random peer of the
 * stream, a dead one included (`createGroupForConsumer`): with one server of three down, a
 * third of them never answer. A coordinator elected so could not list its migrations to
 * resume them, and one stayed half done for good (CI, 2026-12-06). Stream info is answered by
 * the stream's leader, which is alive whenever the stream is.
 *
 * Why drop deleted keys: a KV delete leaves a marker, which `keys()` and the subject listing
 * both walk, one per transaction for a day and one per point ever locked for good. A purge of
 * the key's subject up to a revision removes the marker, and nothing written after it.
 */
import { jetstreamManager, type JetStreamManager, type StoredMsg } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";

/** One stored entry of a key, as `ListedKv.revisions` and `latest` read it. */
export interface KvRevision {
  key: string;
  revision: number;
  operation: "PUT" | "DEL" | "PURGE";
  value: Uint8Array;
  json<T>(): T;
  string(): string;
}

const decoder = new TextDecoder();

function revisionOf(key: string, stored: StoredMsg): KvRevision {
  const operation = stored.header?.get("KV-Operation");
  const value = stored.data;
  return {
    key,
    revision: stored.seq,
    operation: operation === "DEL" || operation === "PURGE" ? operation : "PUT",
    value,
    json: <T>() => JSON.parse(decoder.decode(value)) as T,
    string: () => decoder.decode(value),
  };
}

/** KV keeps at most 64 revisions of a key (nats-server's limit on a bucket's history). */
const revisionsKeptMax = 64;

export interface ListedKv extends KV {
  /** The keys under `filter` (`>`, `prefix.>`) holding any entry: a deleted key's marker counts, so callers read each. */
  listKeys(filter?: string): Promise<string[]>;
  /** Removes the key's entries up to and including `throughRevision` (all of them when omitted): a marker no listing need walk again. */
  dropHistory(key: string, throughRevision?: number): Promise<void>;
  /** The key's stored entries, oldest first, one direct get each: `kv.history()` creates a consumer (see above). */
  revisions(key: string): Promise<KvRevision[]>;
  /**
   * The key's last entry as the stream's leader has it (null: none). `kv.get` is a direct get,
   * which any replica of the bucket answers: measured on three servers, a lock table's read
   * right after its own acknowledged delete still saw the lock in 7 of 233 transactions.
   */
  latest(key: string): Promise<KvRevision | null>;
}

/** An existing bucket, opened as a `ListedKv` (a client's, a CLI command's: nodes make theirs in connect.ts). */
export async function openListedKv(nc: NatsConnection, bucket: string): Promise<ListedKv> {
  return listedKv(await new Kvm(nc).open(bucket), await jetstreamManager(nc, { checkAPI: false }), bucket);
}

/** `kv` (bucket `bucket`) with the calls above; every other call is the library's own. */
export function listedKv(kv: KV, jsm: JetStreamManager, bucket: string): ListedKv {
  const stream = `KV_${bucket}`;
  const prefix = `$KV.${bucket}.`;
  return Object.assign(kv, {
    async listKeys(filter = ">"): Promise<string[]> {
      const info = await jsm.streams.info(stream, { subjects_filter: `${prefix}${filter}` });
      return Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(prefix.length));
    },
    async dropHistory(key: string, throughRevision?: number): Promise<void> {
      await jsm.streams.purge(stream, { filter: `${prefix}${key}`, ...(throughRevision === undefined ? {} : { seq: throughRevision + 1 }) });
    },
    async revisions(key: string): Promise<KvRevision[]> {
      const out: KvRevision[] = [];
      for (let seq = 1; out.length <= revisionsKeptMax; ) {
        const stored = await jsm.direct.getMessage(stream, { seq, next_by_subj: `${prefix}${key}` });
        if (!stored) break;
        out.push(revisionOf(key, stored));
        seq = stored.seq + 1;
      }
      return out;
    },
    async latest(key: string): Promise<KvRevision | null> {
      const stored = await jsm.streams.getMessage(stream, { last_by_subj: `${prefix}${key}` });
      return stored && revisionOf(key, stored);
    },
  });
}
