/**
 * Placement records (runtime/placement.ts) in KV `jade_placement`, one key per collection.
 * Only the coordinator writes them, always by CAS on the entry's revision; every
 * node watches them to know which replicas to host and where to route reads.
 */
import type { ListedKv } from "../../nats/kv-keys.ts";
import { KvView, type Versioned } from "../../nats/kv-view.ts";
import type { Logger } from "../../runtime/log.ts";
import { PlacementRecord } from "../../runtime/placement.ts";
import { KeyedMutex } from "../../runtime/mutex.ts";

export interface StoredPlacement {
  record: PlacementRecord;
  revision: number;
}

function toStored({ value, revision }: Versioned<PlacementRecord>): StoredPlacement {
  return { record: value, revision };
}

export class PlacementStore {
  readonly #kv: ListedKv;
  /** Per collection: this process's read-modify-write sections (see `exclusive`). */
  readonly #locks = new KeyedMutex();
  readonly #view: KvView<PlacementRecord>;

  constructor(kv: ListedKv, log: Logger) {
    this.#kv = kv;
    this.#view = new KvView(kv, { decode: (entry) => PlacementRecord.parse(entry.json()), log: log.child({ actor: "placement" }) });
  }

  /** Starts the watch; resolves once the existing records are loaded. */
  start(): Promise<void> {
    return this.#view.start();
  }

  stop(): void {
    void this.#view.stop();
  }

  get(collection: string): StoredPlacement | undefined {
    const stored = this.#view.get(collection);
    return stored && toStored(stored);
  }

  all(): StoredPlacement[] {
    return this.#view.entries().map(([, stored]) => toStored(stored));
  }

  onChange(listener: (collection: string) => void): () => void {
    return this.#view.onChange(({ key }) => listener(key));
  }

  /**
   * Runs `fn` (read the record, decide, `write`) with no other `exclusive` section of the same
   * collection running in this process. The leader's reconcile loop and its migrations all
   * write placements; on nats-server 2.9 a clustered KV's CAS is only a pre-check outside
   * Raft (nats-server#4320), so two concurrent updates from the same revision can both
   * succeed and one silently undoes the other (a migration lost its learner that way and
   * stalled). Serializing the writers that share a process closes that window.
   */
  exclusive<T>(collection: string, fn: () => Promise<T>): Promise<T> {
    return this.#locks.run(collection, fn);
  }

  /** CAS write: create when `revision` is undefined, else update only if the entry is still at `revision`. */
  async write(record: PlacementRecord, revision: number | undefined): Promise<number> {
    const value = JSON.stringify(record);
    const written =
      revision === undefined ? await this.#kv.create(record.collection, value) : await this.#kv.update(record.collection, value, revision);
    // The writer's next decision must see its own write, before the watch delivers it.
    this.#view.applyOwnWrite(record.collection, record, written);
    return written;
  }

  async remove(collection: string, revision: number): Promise<void> {
    await this.#kv.delete(collection, { previousSeq: revision });
  }
}
