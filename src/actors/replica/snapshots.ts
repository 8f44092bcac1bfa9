/**
 * Shard snapshots in the object store `jade_snapshots`, named
 * `<collection>/<shard>/<seq>` and tagged with the collection's uid (its
 * description) so a re-created collection never restores its predecessor.
 * Files move through disk on both sides: the index worker writes/reads a file,
 * and we stream it to/from JetStream without holding it in memory.
 */
import { createReadStream, createWriteStream } from "node:fs";
import { rm } from "node:fs/promises";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import type { ObjectInfo, ObjectStore } from "@nats-io/obj";
import { names, parseSnapshotObject } from "../../runtime/subjects.ts";

/** Waits until `bytes` more may pass (a transfer budget). */
export type Throttle = (bytes: number) => Promise<void>;

export interface SnapshotRef {
  name: string;
  seq: number;
}

/** Snapshots kept per shard: the newest plus one fallback in case the newest is unreadable. */
export const snapshotsKeptPerShard = 2;

export class SnapshotStore {
  readonly #store: ObjectStore;

  constructor(store: ObjectStore) {
    this.#store = store;
  }

  /** This incarnation's snapshots of the shard, newest first. */
  async list(collection: string, uid: string, shard: number): Promise<SnapshotRef[]> {
    const prefix = names.snapshotPrefix(collection, shard);
    const infos: ObjectInfo[] = await this.#store.list();
    return infos
      .filter((i) => !i.deleted && i.name.startsWith(prefix) && i.description === uid)
      .map((i) => ({ name: i.name, seq: parseSnapshotObject(i.name)?.seq ?? -1 }))
      .filter((r) => r.seq >= 0)
      .sort((a, b) => b.seq - a.seq);
  }

  /** Streams `file` into the store, paced by `throttle` so an upload never takes the node's whole CPU and disk. */
  async upload(collection: string, uid: string, shard: number, seq: number, file: string, throttle?: Throttle): Promise<SnapshotRef> {
    const name = names.snapshotObject(collection, shard, seq);
    const source = createReadStream(file);
    const paced = throttle ? source.pipe(pace(throttle)) : source;
    const body = Readable.toWeb(paced) as unknown as ReadableStream<Uint8Array>;
    await this.#store.put({ name, description: uid }, body);
    return { name, seq };
  }

  /** Streams a snapshot to `file`; `throttle` paces it chunk by chunk, `onBytes` sees each chunk pass (progress). */
  async download(name: string, file: string, options: { throttle?: Throttle; onBytes?: (bytes: number) => void } = {}): Promise<void> {
    const result = await this.#store.get(name);
    if (!result) throw new Error(`snapshot ${name} disappeared`);
    await pipeline(Readable.fromWeb(result.data as unknown as WebReadableStream<Uint8Array>), pace(options.throttle, options.onBytes), createWriteStream(file));
    const error = await result.error;
    if (error) {
      await rm(file, { force: true });
      throw error;
    }
  }

  /** Deletes all but the newest `snapshotsKeptPerShard` of the shard's snapshots. */
  async prune(collection: string, uid: string, shard: number): Promise<number> {
    const refs = await this.list(collection, uid, shard);
    const stale = refs.slice(snapshotsKeptPerShard);
    for (const ref of stale) await this.#store.delete(ref.name);
    return stale.length;
  }
}

/** Passes chunks on once `throttle` lets their bytes through, telling `onBytes` of each. */
function pace(throttle: Throttle | undefined, onBytes?: (bytes: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      const pass = () => {
        onBytes?.(chunk.byteLength);
        done(null, chunk);
      };
      if (throttle) throttle(chunk.byteLength).then(pass, done);
      else pass();
    },
  });
}
