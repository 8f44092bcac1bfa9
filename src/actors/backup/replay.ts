/**
 * A shard rebuilt from a snapshot and log entries as a map id → point hash: enough to know
 * the shard's content digest at any sequence without an index. Applies entries by the
 * replicas' rules (an entry they skip as invalid is skipped here too), so the digest a backup
 * records is the one a replica restored from it reports.
 */
import { scanSnapshotPoints } from "../vector-index/shard-snapshot.ts";
import { digestOf, pointHash, type ContentDigest } from "../../runtime/content-digest.ts";
import { checkEntryValues, decodeEntry, EntryKind, isInvalidEntryError } from "../../runtime/log-entry.ts";
import type { CollectionConfig } from "../../runtime/schemas.ts";
import { spaceOf, type VectorSpace } from "../../runtime/vectors.ts";
import { decodeStaged, TxnSequencer, type Effect } from "../../runtime/txn-sequencer.ts";
import { versionOf } from "../vector-index/points.ts";
import type { StagedAtCut } from "./txn-cut.ts";

export class ShardReplay {
  /** id → its hash and version (the version answers a transaction's conditions, as on a replica). */
  readonly #points = new Map<string, { hash: bigint; version: number }>();
  readonly #txns = new TxnSequencer();
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
    const meta = await scanSnapshotPoints(chunks, name, (id, payload, vector, version) => this.#points.set(id, { hash: pointHash(id, payload, vector), version }));
    const found = `${meta.dimension}/${meta.metric}/${meta.quantization}`;
    if (found !== this.#expected) throw new Error(`${name}: snapshot is ${found} (dimension/metric/quantization), expected ${this.#expected}`);
    this.#txns.restore(meta.txns ?? { staged: [], held: [], outcomes: [] }, decodeStaged);
    this.seq = meta.appliedSeq;
  }

  /** Applies the entry at `seq`; one at or below what was applied is skipped (replays overlap). */
  apply(seq: number, data: Uint8Array): void {
    if (seq <= this.seq) return;
    if (seq !== this.seq + 1) throw new Error(`entry ${seq} follows ${this.seq}: entries ${this.seq + 1}–${seq - 1} are missing`);
    this.seq = seq;
    try {
      this.#applyEntry(seq, data);
    } catch (err) {
      if (!isInvalidEntryError(err)) throw err;
    }
  }

  #applyEntry(seq: number, data: Uint8Array): void {
    const entry = decodeEntry(data);
    checkEntryValues(entry, this.#space);
    this.#applyEffects(this.#txns.read(seq, entry, data, (id) => this.#points.get(id)?.version));
  }

  #applyEffects(effects: readonly Effect[]): void {
    for (const effect of effects) {
      if (effect.kind === EntryKind.Delete) {
        for (const id of effect.entry.ids) this.#points.delete(id);
        continue;
      }
      const { deleteIds, dimension, vectors, payloads, ids } = effect.entry;
      for (const id of deleteIds ?? []) this.#points.delete(id);
      const bytes = new Uint8Array(vectors.buffer, vectors.byteOffset, vectors.byteLength);
      // The last write of an id in one entry wins, as on a replica.
      ids.forEach((id, p) => this.#points.set(id, { hash: pointHash(id, payloads?.[p] ?? null, bytes.subarray(p * dimension * 4, (p + 1) * dimension * 4)), version: versionOf(effect.seq, p) }));
    }
  }

  /** Transactions staged at this point (their markers have not been replayed). */
  staged(): StagedAtCut[] {
    return this.#txns.staged().map(({ txn, prepareSeq }) => ({ txn, prepareSeq }));
  }

  digest(): ContentDigest {
    const points = this.#points;
    return digestOf((function* () {
      for (const p of points.values()) yield p.hash;
    })());
  }
}
