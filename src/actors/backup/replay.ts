/**
 * A shard rebuilt from a snapshot and log entries as a map id → point hash: enough to know
 * the shard's content digest at any sequence without an index. Applies entries by the
 * replicas' rules (an entry they skip as invalid is skipped here too), so the digest a backup
 * records is the one a replica restored from it reports.
 */
import { scanSnapshotPoints } from "../vector-index/shard-snapshot.ts";
import { digestOf, pointHash, type ContentDigest } from "../../runtime/content-digest.ts";
import { checkUpsertValues, decodeEntry, EntryKind, isInvalidEntryError } from "../../runtime/log-entry.ts";
import type { CollectionConfig } from "../../runtime/schemas.ts";
import { spaceOf, type VectorSpace } from "../../runtime/vectors.ts";

export class ShardReplay {
  readonly #points = new Map<string, bigint>();
  readonly #space: VectorSpace;
  readonly #expected: string;
  /** The last sequence applied. */
  seq = 0;

  constructor(config: Pick<CollectionConfig, "dimension" | "metric" | "index">) {
    this.#space = spaceOf(config);
    this.#expected = `${config.dimension}/${config.metric}/${config.index.quantization}`;
  }

  /** Starts over from a snapshot streaming past (its checksum is verified as it is read). */
  async loadSnapshot(chunks: AsyncIterable<Uint8Array>, name: string): Promise<void> {
    this.#points.clear();
    const meta = await scanSnapshotPoints(chunks, name, (id, payload, vector) => this.#points.set(id, pointHash(id, payload, vector)));
    const found = `${meta.dimension}/${meta.metric}/${meta.quantization}`;
    if (found !== this.#expected) throw new Error(`${name}: snapshot is ${found} (dimension/metric/quantization), expected ${this.#expected}`);
    this.seq = meta.appliedSeq;
  }

  /** Applies the entry at `seq`; one at or below what was applied is skipped (replays overlap). */
  apply(seq: number, data: Uint8Array): void {
    if (seq <= this.seq) return;
    if (seq !== this.seq + 1) throw new Error(`entry ${seq} follows ${this.seq}: entries ${this.seq + 1}–${seq - 1} are missing`);
    this.seq = seq;
    let entry;
    try {
      entry = decodeEntry(data);
      if (entry.kind === EntryKind.Upsert) checkUpsertValues(entry, this.#space);
    } catch (err) {
      if (isInvalidEntryError(err)) return;
      throw err;
    }
    if (entry.kind === EntryKind.Delete) {
      for (const id of entry.ids) this.#points.delete(id);
      return;
    }
    for (const id of entry.deleteIds ?? []) this.#points.delete(id);
    const { dimension, vectors, payloads } = entry;
    const bytes = new Uint8Array(vectors.buffer, vectors.byteOffset, vectors.byteLength);
    entry.ids.forEach((id, p) => this.#points.set(id, pointHash(id, payloads?.[p] ?? null, bytes.subarray(p * dimension * 4, (p + 1) * dimension * 4))));
  }

  digest(): ContentDigest {
    return digestOf(this.#points.values());
  }
}
