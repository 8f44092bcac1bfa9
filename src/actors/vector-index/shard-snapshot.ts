/**
 * Saving and loading a ShardIndex (the container is snapshot-file.ts).
 *
 * Save: usearch writes the graph on a thread of its own (usearch-native.ts: ~0.65 µs per point,
 * 162 ms at 250,000 × 128-d, which the worker's thread spent before) while the worker serves
 * searches; the live slots, the applied sequence and the record of which slots the graph holds
 * are copied as the save starts (`captureMoment`). Only the absorber and applies change them:
 * the absorber waits for the graph's save (Graph.saving), and applies that change a point wait
 * for the whole save (worker.ts), but those that only add points go on (ShardIndex.addsOnly):
 * they take slots the save left out. In a 1M import, four saves held every apply 1–5 s, the
 * longest wait from acknowledgement to searchable. The rest of the metadata is captured and
 * packed in 4 ms slices (it took 130 ms more in one piece), and the live points' vectors (only
 * theirs: `LiveRows`) are streamed from the shard's vector file with async I/O, so memory never
 * holds a second copy.
 *
 * Load: the checksum is verified streaming, the vectors are copied slice by slice into the new
 * shard's vector file, the usearch section is extracted to a temporary file and loaded. Live points the
 * saved graph did not hold go to the fresh buffer and are absorbed from there.
 */
import { randomUUID } from "node:crypto";
import { rm } from "node:fs/promises";
import type { Metric, Payload, Quantization } from "../../runtime/schemas.ts";
import { TimeSlicer } from "../../runtime/async.ts";
import { absorbSliceMsDefault } from "./absorber.ts";
import type { SavedSnapshot } from "./api.ts";
import { extractSection, openSnapshotFile, packUtf8Strings, readSection, scanSnapshotStream, writeSnapshotFile, type PackedArray } from "./snapshot-file.ts";
import type { ShardIndex } from "./shard-index.ts";
import { decodeStaged, type SequencerState } from "../../runtime/txn-sequencer.ts";

interface SnapshotMeta {
  appliedSeq: number;
  dimension: number;
  metric: Metric;
  quantization: Quantization;
  slotCount: number;
  slots: number[];
  ids: string[];
  /** Float64Array bytes: each listed slot's version. */
  versions: Uint8Array;
  payloads: (Payload | null)[];
  /** Uint8Array by slot: 1 where the saved graph holds the slot's vector. */
  inGraph: Uint8Array;
  /**
   * Staged transactions, writes waiting for them and recent outcomes (runtime/txn-sequencer.ts);
   * absent when there are none. Only clusters writing log format 2 stage anything, and no
   * build that ignores this field joins one (runtime/formats.ts).
   */
  txns?: SequencerState;
}

/** Saves are serialized per shard, and applies that change captured points wait for them: see the header. */
const saving = new WeakMap<ShardIndex, Promise<unknown>>();

/** Resolves when no save of `shard` is writing it (applies other than ShardIndex.addsOnly ones must wait for this). */
export function saveSettled(shard: ShardIndex): Promise<unknown> | undefined {
  return saving.get(shard);
}

/** What a save wrote (ShardIndex.save adds the time of the compaction before it). */
type WrittenSnapshot = Omit<SavedSnapshot, "compactionMs">;

/** Captures the shard now (or, if a save is still writing, right after it) and writes it to `path`. */
export function saveShard(shard: ShardIndex, path: string): Promise<WrittenSnapshot> {
  const previous = saving.get(shard);
  const run = previous ? previous.then(() => writeShard(shard, path)) : writeShard(shard, path);
  const settled = run.catch(() => undefined);
  saving.set(shard, settled);
  void settled.then(() => {
    if (saving.get(shard) === settled) saving.delete(shard);
  });
  return run;
}

async function writeShard(shard: ShardIndex, path: string): Promise<WrittenSnapshot> {
  const indexFile = `${path}.${randomUUID()}.usearch`;
  try {
    const graphSaved = shard.graph.save(indexFile);
    // The moment saved, taken with the graph: records that only add points may be applied from
    // here on (ShardIndex.addsOnly), into slots this leaves out.
    const moment = captureMoment(shard);
    await graphSaved;
    const slicer = new TimeSlicer(absorbSliceMsDefault);
    const meta = await captureMeta(shard, moment, slicer);
    const { inGraph } = moment;
    const { vectors: file, dimension } = shard.points;
    const rows = new LiveRows(meta.slots, dimension * 4);
    const vectors = { byteLength: rows.byteLength, read: (into: Uint8Array, position: number) => rows.each(position, into.byteLength, (at, filePosition, length) => file.readBytes(into.subarray(at, at + length), filePosition)) };
    const bytes = await writeSnapshotFile(path, { meta, slicer, vectors, indexFile });
    let unabsorbed = 0;
    for (const slot of meta.slots) unabsorbed += 1 - inGraph[slot]!;
    return { appliedSeq: meta.appliedSeq, bytes, points: meta.slots.length, unabsorbed };
  } finally {
    await rm(indexFile, { force: true });
  }
}

/** Slots whose id, version and payload are copied between two pauses. */
const captureSliceSlots = 4096;

/** What a save packs: the metadata, its ids packed already (they unpack to `SnapshotMeta.ids`). */
type CapturedMeta = Omit<SnapshotMeta, "ids"> & { ids: PackedArray };

/** What a save holds, fixed as it starts; the rest of its metadata is the same slots' (captureMeta). */
interface Moment {
  appliedSeq: number;
  slotCount: number;
  /** The live slots, ascending. */
  slots: number[];
  inGraph: Uint8Array;
  txns?: SequencerState;
}

function captureMoment(shard: ShardIndex): Moment {
  const { points, txns } = shard;
  return {
    appliedSeq: shard.appliedSeq,
    slotCount: points.slotCount,
    slots: points.liveSlots(),
    inGraph: points.inGraph.slice(0, points.slotCount),
    ...(txns.empty ? {} : { txns: txns.state() }),
  };
}

/**
 * The metadata of the moment's points, copied in slices: applies that would change them wait
 * meanwhile, those that only add points do not (they take other slots). The ids go from the id
 * table's bytes straight into msgpack: as a string each, the 75,000 of a shard survived in the
 * worker's young generation until packed, and its scavenges during a save took up to 29 ms,
 * every search of the worker waiting.
 */
async function captureMeta(shard: ShardIndex, moment: Moment, slicer: TimeSlicer): Promise<CapturedMeta> {
  const { points, config } = shard;
  const { slots } = moment;
  const versions = new Float64Array(slots.length);
  const payloads = new Array<Payload | null>(slots.length);
  for (let i = 0; i < slots.length; i++) {
    const slot = slots[i]!;
    versions[i] = points.versions[slot]!;
    payloads[i] = points.payloads[slot] ?? null;
    if (i % captureSliceSlots === 0) await slicer.pause();
  }
  const ids = await packUtf8Strings(slots.length, { length: (i) => points.idUtf8Length(slots[i]!), copy: (i, into, at) => points.copyIdUtf8(slots[i]!, into, at) }, slicer);
  return {
    appliedSeq: moment.appliedSeq,
    dimension: config.dimension,
    metric: config.metric,
    quantization: config.index.quantization,
    slotCount: moment.slotCount,
    slots,
    ids,
    versions: new Uint8Array(versions.buffer),
    payloads,
    inGraph: moment.inGraph,
    ...(moment.txns ? { txns: moment.txns } : {}),
  };
}

export async function loadShard(shard: ShardIndex, path: string): Promise<ShardIndex> {
  const layout = await openSnapshotFile(path);
  const meta = layout.meta as SnapshotMeta;
  const { config } = shard;
  const expected = `${config.dimension}/${config.metric}/${config.index.quantization}`;
  const found = `${meta.dimension}/${meta.metric}/${meta.quantization}`;
  if (expected !== found) throw new Error(`${path}: snapshot is ${found} (dimension/metric/quantization), expected ${expected}`);
  // Version 2 held every slot up to slotCount; version 3 only the live ones, in slot order.
  const rowBytes = config.dimension * 4;
  const rows = layout.version === 2 ? undefined : new LiveRows(meta.slots, rowBytes);
  const expectedBytes = rows ? rows.byteLength : meta.slotCount * rowBytes;
  if (layout.vectorBytes !== expectedBytes) {
    throw new Error(`${path}: ${layout.vectorBytes} bytes of vectors, expected ${expectedBytes} (${rows ? meta.slots.length : meta.slotCount} rows of dimension ${config.dimension})`);
  }
  const file = shard.points.vectors;
  await readSection(path, layout.vectorsOffset, layout.vectorBytes, (chunk, position) => {
    if (!rows) return file.writeBytes(chunk, position);
    rows.each(position, chunk.byteLength, (at, filePosition, length) => file.writeBytes(chunk.subarray(at, at + length), filePosition));
  });
  const indexFile = `${path}.${randomUUID()}.usearch`;
  try {
    await extractSection(path, layout.indexOffset, layout.indexBytes, indexFile);
    shard.graph.load(indexFile);
  } finally {
    await rm(indexFile, { force: true });
  }
  // Copies: msgpack hands out views whose offsets need not be multiples of 8.
  const versions = new Float64Array(new Uint8Array(meta.versions).buffer);
  shard.points.restore(meta.slotCount, meta.slots, meta.ids, versions, meta.payloads);
  restoreIndexing(shard, meta.inGraph, meta.slots);
  if (meta.txns) shard.txns.restore(meta.txns, decodeStaged);
  shard.appliedSeq = meta.appliedSeq;
  return shard;
}

/**
 * Each live point of a snapshot as it streams past (a backup copying it, a restore replaying
 * it), without loading it; the body's checksum is verified at the end. Returns what it covers.
 */
export async function scanSnapshotPoints(
  chunks: AsyncIterable<Uint8Array>,
  name: string,
  visit: (id: string, payload: Payload | null, vector: Uint8Array, version: number) => void,
): Promise<{ appliedSeq: number; dimension: number; metric: Metric; quantization: Quantization; count: number; txns?: SequencerState }> {
  let meta: SnapshotMeta | undefined;
  /** Version 2's row → point; undefined for version 3, whose rows are its points in order. */
  let pointOfRow: Map<number, number> | undefined;
  let versions = new Float64Array(0);
  let row = Buffer.alloc(0);
  let filled = 0;
  let rowIndex = 0;
  await scanSnapshotStream(chunks, name, {
    meta: (value, version) => {
      meta = value as SnapshotMeta;
      // Version 2 held a row for every slot up to slotCount; version 3 only the live ones, in order.
      if (version === 2) pointOfRow = new Map(meta.slots.map((slot, i) => [slot, i]));
      versions = new Float64Array(new Uint8Array(meta.versions).buffer);
      row = Buffer.alloc(meta.dimension * 4);
    },
    vectors: (bytes) => {
      for (let at = 0; at < bytes.byteLength; ) {
        const take = Math.min(row.byteLength - filled, bytes.byteLength - at);
        row.set(bytes.subarray(at, at + take), filled);
        filled += take;
        at += take;
        if (filled < row.byteLength) break;
        const point = pointOfRow ? pointOfRow.get(rowIndex) : rowIndex < meta!.slots.length ? rowIndex : undefined;
        rowIndex++;
        if (point !== undefined) visit(meta!.ids[point]!, meta!.payloads[point] ?? null, row, versions[point]!);
        filled = 0;
      }
    },
  });
  const m = meta!;
  return { appliedSeq: m.appliedSeq, dimension: m.dimension, metric: m.metric, quantization: m.quantization, count: m.slots.length, ...(m.txns ? { txns: m.txns } : {}) };
}

/**
 * The vector section of a version 3 snapshot: the live slots' rows back to back, in slot order.
 * Maps a byte range of the section onto the vector file, one call per run of consecutive
 * slots (without deletes that is one run, so one read per slice as before).
 */
export class LiveRows {
  readonly #slots: ArrayLike<number>;
  readonly #rowBytes: number;

  constructor(slots: ArrayLike<number>, rowBytes: number) {
    this.#slots = slots;
    this.#rowBytes = rowBytes;
  }

  get byteLength(): number {
    return this.#slots.length * this.#rowBytes;
  }

  /** Calls `visit(offset in the range, position in the vector file, length)` for `length` bytes of the section from `position`. */
  each(position: number, length: number, visit: (at: number, filePosition: number, length: number) => void): void {
    const rowBytes = this.#rowBytes;
    const end = position + length;
    let row = Math.floor(position / rowBytes);
    let at = position;
    while (at < end) {
      // A run: rows whose slots follow one another.
      let last = row;
      while (last + 1 < this.#slots.length && (last + 1) * rowBytes < end && this.#slots[last + 1] === this.#slots[last]! + 1) last++;
      const runEnd = Math.min(end, (last + 1) * rowBytes);
      const filePosition = this.#slots[row]! * rowBytes + (at - row * rowBytes);
      visit(at - position, filePosition, runEnd - at);
      at = runEnd;
      row = last + 1;
    }
  }
}

/** Marks what the loaded graph holds; live points it does not hold go to the fresh buffer. */
function restoreIndexing(shard: ShardIndex, savedInGraph: Uint8Array, slots: readonly number[]): void {
  const { points, fresh, graph } = shard;
  let inGraph = 0;
  for (const slot of slots) {
    if (savedInGraph[slot] === 1) {
      points.inGraph[slot] = 1;
      inGraph++;
    } else {
      points.freshChunk[slot] = fresh.push(slot, points.versions[slot]!, points.vector(slot), 0);
    }
  }
  if (graph.size !== inGraph) throw new Error(`snapshot: the usearch index holds ${graph.size} vectors, the metadata ${inGraph}`);
}
