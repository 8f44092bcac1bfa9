/**
 * `npm run bench -- --suite compression`: would compressing the large messages pay (issue 13,
 * item 8)? The large messages are shard-log entries (upsert batches: what replication and
 * restores carry) and checkpoint files (what a joining replica copies from a peer, a snapshot
 * upload and a backup carry). For each, on Fashion-MNIST (image pixels: many exact zeros)
 * and on clustered 128-d vectors (dense floats, like model embeddings): the compressed size and
 * the compress and decompress speed of gzip (level 1 and 6) and brotli (quality 1), on one core.
 * A compression pays where its speed is well above the bytes per second it saves: compared
 * with the transfer budget (2 MiB/s by default) and a 1 Gbit/s link (~119 MiB/s).
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { brotliCompressSync, brotliDecompressSync, constants, gunzipSync, gzipSync } from "node:zlib";
import type { ShardIndexConfig } from "../src/actors/vector-index/api.ts";
import { ShardIndex } from "../src/actors/vector-index/shard-index.ts";
import { encodeEntry, EntryKind } from "../src/runtime/log-entry.ts";
import { fmt, kv, loadDataset, machineInfo, onCleanup, section, table, writeResults } from "./common.ts";
import { clusteredVectors } from "./datasets-clustered.ts";
import type { VectorSet } from "./datasets.ts";

const mib = 1024 * 1024;
const linkBytesPerSec = 1e9 / 8;
const transferBudgetBytesPerSec = 2 * mib;

const codecs = {
  "gzip 1": { compress: (b: Buffer) => gzipSync(b, { level: 1 }), decompress: gunzipSync },
  "gzip 6": { compress: (b: Buffer) => gzipSync(b, { level: 6 }), decompress: gunzipSync },
  "brotli 1": { compress: (b: Buffer) => brotliCompressSync(b, { params: { [constants.BROTLI_PARAM_QUALITY]: 1 } }), decompress: brotliDecompressSync },
} as const;

interface Row {
  dataset: string;
  message: string;
  codec: string;
  bytes: number;
  ratio: number;
  compressMiBps: number;
  decompressMiBps: number;
}

/** One upsert entry of `count` points, as the writer puts it in a shard log. */
function logEntry(set: VectorSet, count: number): Buffer {
  const vectors = set.data.slice(0, count * set.dimension);
  const ids = Array.from({ length: count }, (_, i) => `doc-${i}`);
  return Buffer.from(encodeEntry({ kind: EntryKind.Upsert, ids, payloads: ids.map((_, i) => ({ lang: i % 2 ? "en" : "de", n: i })), dimension: set.dimension, vectors }));
}

/** A checkpoint file of the set's first `count` points, as a replica saves it. */
async function checkpoint(set: VectorSet, count: number, dir: string): Promise<Buffer> {
  const config: ShardIndexConfig = { dimension: set.dimension, metric: "l2", index: { connectivity: 16, expansionAdd: 128, expansionSearch: 64, quantization: "f32" } };
  const shard = new ShardIndex(config);
  for (let start = 0, seq = 1; start < count; start += 1000, seq++) {
    const n = Math.min(1000, count - start);
    const ids = Array.from({ length: n }, (_, i) => `p${start + i}`);
    shard.apply([{ seq, data: encodeEntry({ kind: EntryKind.Upsert, ids, payloads: ids.map(() => null), dimension: set.dimension, vectors: set.data.slice(start * set.dimension, (start + n) * set.dimension) }) }]);
  }
  while (shard.pendingRows > 0) shard.absorb(performance.now() + 1_000);
  const file = path.join(dir, `checkpoint-${set.dimension}.snap`);
  await shard.save(file);
  shard.close();
  return readFile(file);
}

function measure(dataset: string, message: string, input: Buffer): Row[] {
  return Object.entries(codecs).map(([codec, { compress, decompress }]) => {
    const repeat = Math.max(1, Math.ceil((64 * mib) / input.byteLength));
    let packed = compress(input);
    let started = performance.now();
    for (let i = 0; i < repeat; i++) packed = compress(input);
    const compressMs = (performance.now() - started) / repeat;
    started = performance.now();
    for (let i = 0; i < repeat; i++) decompress(packed);
    const decompressMs = (performance.now() - started) / repeat;
    return {
      dataset,
      message,
      codec,
      bytes: input.byteLength,
      ratio: packed.byteLength / input.byteLength,
      compressMiBps: input.byteLength / mib / (compressMs / 1000),
      decompressMiBps: input.byteLength / mib / (decompressMs / 1000),
    };
  });
}

/**
 * How much faster a transfer moves its logical bytes with the codec, through a pipe of
 * `pipeBytesPerSec` when compressing and decompressing overlap with the sending: the slowest of
 * the three stages sets the pace. Above 1 it pays.
 */
function speedup(row: Row, pipeBytesPerSec: number): number {
  const pipe = pipeBytesPerSec / row.ratio;
  const paced = Math.min(pipe, row.compressMiBps * mib, row.decompressMiBps * mib);
  return paced / pipeBytesPerSec;
}

export async function runCompression(opts: { limit: number }): Promise<void> {
  const startedAt = new Date();
  section("Would compressing the large messages pay?");
  kv("machine", JSON.stringify(machineInfo()));
  const dir = await mkdtemp(path.join(os.tmpdir(), "jade-bench-compression-"));
  onCleanup(() => rm(dir, { recursive: true, force: true }));
  const fashion = (await loadDataset(opts.limit, 10)).train;
  const dense = clusteredVectors({ count: opts.limit, dimension: 128, clusters: 64, seed: 7 });
  const rows: Row[] = [];
  for (const [name, set] of [["fashion-mnist 784-d", fashion], ["clustered 128-d", dense]] as const) {
    rows.push(...measure(name, "log entry (1,000 points)", logEntry(set, 1_000)));
    rows.push(...measure(name, `checkpoint (${fmt(set.count)} points)`, await checkpoint(set, set.count, dir)));
  }
  table(
    ["dataset", "message", "codec", "MiB", "compressed to", "compress MiB/s", "decompress MiB/s", "× at 2 MiB/s budget", "× at 1 Gbit/s"],
    rows.map((r) => [r.dataset, r.message, r.codec, fmt(r.bytes / mib, 2), `${fmt(r.ratio * 100, 1)} %`, fmt(r.compressMiBps), fmt(r.decompressMiBps), fmt(speedup(r, transferBudgetBytesPerSec), 2), fmt(speedup(r, linkBytesPerSec), 2)]),
  );
  const files = await writeResults("compression", startedAt, { startedAt: startedAt.toISOString(), machine: machineInfo(), rows: rows.map((r) => ({ ...r, atBudget: speedup(r, transferBudgetBytesPerSec), atGbit: speedup(r, linkBytesPerSec) })) });
  kv("results", files.join(", "));
}
