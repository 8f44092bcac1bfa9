/**
 * Shard snapshots in the object store, one bucket per snapshot, named
 * `jadesnap_<collection>_<shard>_<seq>` and described with the collection's uid so a
 * re-created collection never restores its predecessor. Once its upload completed, the
 * bucket's description says so (`<uid> complete`): only such buckets are snapshots; another is
 * an upload in progress or one a crash interrupted (the retention pass deletes those a newer
 * snapshot replaced).
 *
 * Why not seal the bucket, as object stores are meant to be: nats-server 2.9.10 then panics
 * on restart. Replaying its metadata log, it applies the bucket's creation (unsealed) to the
 * sealed stream it recovered from disk, the update fails ("can not unseal a sealed stream"),
 * and the error path dereferences a nil assignment (jetstream_cluster.go:3067). In CI a server
 * so crashed on each of six restarts in a row, for good. A description change never fails.
 * Files move through disk on both sides: the index worker writes/reads a file, and we stream
 * it to/from JetStream without holding it in memory.
 */
import { createReadStream, createWriteStream } from "node:fs";
import { rm } from "node:fs/promises";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createHash } from "node:crypto";
import { StorageType, type JetStreamClient } from "@nats-io/jetstream";
import { Objm } from "@nats-io/obj";
import { names, parseSnapshotBucket } from "../runtime/subjects.ts";
import { newestSnapshotFirst } from "../runtime/retention.ts";
import { pipeInto } from "../runtime/streams.ts";

/** Waits until `bytes` more may pass (a transfer budget). */
export type Throttle = (bytes: number) => Promise<void>;

export interface SnapshotRef {
  /** The snapshot's bucket. */
  name: string;
  seq: number;
}

/** A stored snapshot bucket, as the retention pass sees it. */
export interface StoredSnapshot extends SnapshotRef {
  collection: string;
  shard: number;
  /** The collection incarnation it belongs to. */
  uid: string;
  /** Its upload completed (see `completeDescription`). */
  complete: boolean;
  /** When its upload completed (or, while incomplete, when the bucket was made). */
  savedAtMs: number;
}

/** How a snapshot is read: `throttle` paces it chunk by chunk; `onSize` hears its size before the first chunk, `onBytes` each chunk pass (progress). */
export interface ReadOptions {
  throttle?: Throttle;
  onSize?: (bytes: number) => void;
  onBytes?: (bytes: number) => void;
}

/**
 * Bytes per object-store message of an upload (nats.js's default is 128 KiB). Per message the
 * node pays a publish, its ack and nats.js's bookkeeping, and per 64 KiB read a buffer more for
 * the GC: a 300 MB upload at the default pace cost the node 16–18.5 ms of CPU per MB (0.6 of a
 * core for ~9 s, beside every search of that time), 7.6–10.3 ms per MB in 1 MiB messages read
 * 1 MiB at a time (4 MiB: 7.1–8.8). Readers take any size: older snapshots read as before.
 */
export const uploadChunkBytes = 1 << 20;

export class SnapshotStore {
  readonly #js: JetStreamClient;
  readonly #objm: Objm;
  readonly #replicas: number;

  constructor(js: JetStreamClient, replicas: number) {
    this.#js = js;
    this.#objm = new Objm(js);
    this.#replicas = replicas;
  }

  /** This incarnation's complete snapshots of the shard, newest first (of one sequence, the last saved first). */
  async list(collection: string, uid: string, shard: number): Promise<SnapshotRef[]> {
    return (await this.all())
      .filter((s) => s.complete && s.collection === collection && s.shard === shard && s.uid === uid)
      .sort(newestSnapshotFirst);
  }

  /** Every snapshot bucket of every collection, complete or not, with one listing. */
  async all(): Promise<StoredSnapshot[]> {
    const out: StoredSnapshot[] = [];
    for await (const status of this.#objm.list()) {
      const parsed = parseSnapshotBucket(status.bucket);
      if (!parsed) continue;
      const { state, created } = status.streamInfo;
      const { uid, complete } = parseDescription(status.description, status.sealed);
      const savedAtMs = Date.parse(complete ? (state.last_ts ?? created) : created);
      out.push({ ...parsed, name: status.bucket, uid, complete, savedAtMs });
    }
    return out;
  }

  /**
   * Streams `file` into a new bucket, paced by `throttle` so an upload never takes the node's
   * whole CPU and disk, then marks it complete. A failed upload deletes its bucket.
   */
  async upload(collection: string, uid: string, shard: number, seq: number, file: string, throttle?: Throttle): Promise<SnapshotRef> {
    const name = names.snapshotBucket(collection, shard, seq, Date.now());
    const store = await this.#objm.create(name, { description: uid, replicas: this.#replicas, storage: StorageType.File });
    // `create` opens a bucket that exists: never write into (or, failing, delete) another upload's.
    const { streamInfo, sealed, description } = await store.status();
    if (sealed || description !== uid || streamInfo.state.messages > 0) throw new Error(`snapshot bucket ${name} is another upload's`);
    try {
      const source = createReadStream(file, { highWaterMark: uploadChunkBytes });
      // A file deleted under the upload (a replica restarting discards a checkpoint) fails it.
      const paced = throttle ? pipeInto(source, pace(throttle)) : source;
      const body = Readable.toWeb(paced) as unknown as ReadableStream<Uint8Array>;
      await store.put({ name: names.snapshotObject, options: { max_chunk_size: uploadChunkBytes } }, body);
      const jsm = await this.#js.jetstreamManager(false);
      await jsm.streams.update(streamInfo.config.name, { description: completeDescription(uid) });
    } catch (err) {
      await store.destroy().catch(() => undefined);
      throw err;
    }
    return { name, seq };
  }

  /** Streams a snapshot to `file` (see `read` for the options). */
  async download(name: string, file: string, options: ReadOptions = {}): Promise<void> {
    try {
      await pipeline(Readable.from(this.read(name, options)), createWriteStream(file));
    } catch (err) {
      await rm(file, { force: true });
      throw err;
    }
  }

  /**
   * A snapshot's bytes, chunk by chunk, each let through by `throttle` first, its sha256 checked
   * against the object's at the end. Read with an ordered pull consumer rather than nats.js's
   * `get`, whose push consumer delivers as fast as the server sends: a reader slower than that
   * (a throttled backup on a busy node) had one stall for good with 17 MB of 92 left.
   */
  async *read(name: string, options: ReadOptions = {}): AsyncGenerator<Uint8Array> {
    const store = await this.#objm.open(name);
    const info = await store.info(names.snapshotObject);
    if (!info) throw new Error(`snapshot ${name} disappeared`);
    options.onSize?.(info.size);
    if (info.size === 0) return;
    const consumer = await this.#js.consumers.get(`OBJ_${name}`, { filter_subjects: `$O.${name}.C.${info.nuid}` });
    const messages = await consumer.consume({ max_messages: 8 });
    const hash = createHash("sha256");
    let received = 0;
    try {
      for await (const m of messages) {
        hash.update(m.data);
        received += m.data.byteLength;
        await options.throttle?.(m.data.byteLength);
        options.onBytes?.(m.data.byteLength);
        yield m.data;
        if (m.info.pending === 0 || received >= info.size) break;
      }
    } finally {
      await messages.stop();
    }
    const expected = Buffer.from(info.digest.replace(/^SHA-256=/, ""), "base64url");
    if (received !== info.size || !hash.digest().equals(expected)) throw new Error(`snapshot ${name}: received ${received} of ${info.size} bytes, or a digest that differs from the stored one`);
  }

  /** A snapshot's size in bytes. */
  async size(name: string): Promise<number> {
    const info = await (await this.#objm.open(name)).info(names.snapshotObject);
    if (!info) throw new Error(`snapshot ${name} disappeared`);
    return info.size;
  }

  /** Deletes a snapshot (its bucket and stream: the disk is given back). */
  async delete(name: string): Promise<void> {
    const store = await this.#objm.open(name, false);
    await store.destroy();
  }
}

const completeSuffix = " complete";

/** The description of a bucket whose upload completed. */
function completeDescription(uid: string): string {
  return `${uid}${completeSuffix}`;
}

/** A bucket's collection uid and whether its upload completed (buckets of earlier builds were sealed instead). */
function parseDescription(description: string, sealed: boolean): { uid: string; complete: boolean } {
  if (description.endsWith(completeSuffix)) return { uid: description.slice(0, -completeSuffix.length), complete: true };
  return { uid: description, complete: sealed };
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
