/**
 * Local checkpoints: each replica keeps its own latest saved index on the
 * node's disk, `<dir>/<uid>/<shard>-<seq>.snap` (the snapshot container, so it
 * is checksummed and written atomically). A restarted node loads it and replays
 * only the delta from the shard log instead of downloading a full snapshot —
 * when it is still valid: the file reads back, the collection incarnation (uid)
 * matches, and the log still holds every entry after it.
 */
import { link, mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import path from "node:path";

export interface CheckpointRef {
  file: string;
  seq: number;
}

const checkpointName = /^(\d+)-(\d+)\.snap$/;
const offerName = /^(\d+)-(\d+)\.offer$/;
/** An offered checkpoint stays readable this long after it was offered, whatever newer checkpoints replace it. */
export const offerTtlMs = 30 * 60_000;

export class LocalCheckpoints {
  readonly #dir: string;

  constructor(dir: string) {
    this.#dir = dir;
  }

  /** The newest checkpoint of the shard, if any. */
  async latest(uid: string, shard: number): Promise<CheckpointRef | undefined> {
    return (await this.#list(uid, shard))[0];
  }

  /** A fresh path to save into; `commit` then gives it its final name. */
  async scratchFile(uid: string, shard: number): Promise<string> {
    const dir = path.join(this.#dir, uid);
    await mkdir(dir, { recursive: true });
    return path.join(dir, `${shard}.${process.hrtime.bigint()}.saving`);
  }

  /** Makes a saved file the shard's checkpoint at `seq` and deletes the older ones. */
  async commit(uid: string, shard: number, savedFile: string, seq: number): Promise<CheckpointRef> {
    const file = path.join(this.#dir, uid, `${shard}-${seq}.snap`);
    await rename(savedFile, file);
    for (const older of await this.#list(uid, shard)) {
      if (older.file !== file) await rm(older.file, { force: true });
    }
    return { file, seq };
  }

  /**
   * Offers the newest checkpoint to a replica that copies it: a hard link that a newer
   * checkpoint does not delete, so a copy slower than the snapshot interval still finishes.
   * Offers older than `offerTtlMs` are deleted as new ones are made.
   */
  async offer(uid: string, shard: number): Promise<CheckpointRef | undefined> {
    const latest = await this.latest(uid, shard);
    if (!latest) return undefined;
    const file = path.join(this.#dir, uid, `${shard}-${latest.seq}.offer`);
    await link(latest.file, file).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "EEXIST") throw err;
    });
    for (const old of await this.#list(uid, shard, offerName)) {
      if (old.file === file) continue;
      const { mtimeMs } = await stat(old.file).catch(() => ({ mtimeMs: 0 }));
      if (Date.now() - mtimeMs > offerTtlMs) await rm(old.file, { force: true });
    }
    return { file, seq: latest.seq };
  }

  /**
   * Hard-links the shard's newest checkpoint into `dir` for a reader that must not lose it
   * halfway (a backup), if `accept` takes its sequence: a newer checkpoint deletes the
   * original, not the link. Undefined when there is none, it is refused, or no link can be
   * made (replaced meanwhile, or `dir` on another filesystem): the caller reads elsewhere.
   */
  async pin(uid: string, shard: number, dir: string, accept: (seq: number) => boolean): Promise<CheckpointRef | undefined> {
    const latest = await this.latest(uid, shard);
    if (!latest || !accept(latest.seq)) return undefined;
    await mkdir(dir, { recursive: true });
    const file = path.join(dir, `${uid}-${shard}-${latest.seq}.snap`);
    try {
      await link(latest.file, file);
    } catch {
      return undefined;
    }
    return { file, seq: latest.seq };
  }

  /** The offered checkpoint at `seq`, if it is still there. */
  async offered(uid: string, shard: number, seq: number): Promise<string | undefined> {
    return (await this.#list(uid, shard, offerName)).find((ref) => ref.seq === seq)?.file;
  }

  /** Deletes the shard's checkpoint at `seq` (a copy offered to a peer stays until its offer expires). */
  async discard(uid: string, shard: number, seq: number): Promise<void> {
    await rm(path.join(this.#dir, uid, `${shard}-${seq}.snap`), { force: true });
  }

  /** Deletes the shard's checkpoints and offers. */
  async drop(uid: string, shard: number): Promise<void> {
    for (const ref of [...(await this.#list(uid, shard)), ...(await this.#list(uid, shard, offerName))]) await rm(ref.file, { force: true });
  }

  /** Deletes the checkpoints of collection incarnations `keep(uid)` rejects, and leftovers of interrupted saves and old offers. */
  async sweep(keep: (uid: string) => boolean): Promise<number> {
    let removed = 0;
    for (const uid of await readdir(this.#dir).catch(() => [] as string[])) {
      const dir = path.join(this.#dir, uid);
      const files = await readdir(dir).catch(() => [] as string[]);
      for (const name of files) {
        const match = checkpointName.exec(name);
        const stale = match ? !keep(uid) : name.endsWith(".saving") || name.endsWith(".tmp") || offerName.test(name);
        if (stale) {
          await rm(path.join(dir, name), { force: true });
          removed++;
        }
      }
      if (files.length > 0 && (await readdir(dir).catch(() => [])).length === 0) await rm(dir, { recursive: true, force: true });
    }
    return removed;
  }

  async #list(uid: string, shard: number, pattern = checkpointName): Promise<CheckpointRef[]> {
    const dir = path.join(this.#dir, uid);
    const files = await readdir(dir).catch(() => [] as string[]);
    return files
      .map((name) => ({ name, match: pattern.exec(name) }))
      .filter(({ match }) => match !== null && Number(match[1]) === shard)
      .map(({ name, match }) => ({ file: path.join(dir, name), seq: Number(match![2]) }))
      .sort((a, b) => b.seq - a.seq);
  }
}
