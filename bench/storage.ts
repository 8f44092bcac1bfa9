/**
 * `npm run bench -- --suite storage`: what the disk holds per live vector while the same ids
 * are overwritten, before and after log compaction (decision 007). `jade dev` (one node and its
 * nats-server, one data directory), a collection of `--storage-n` ids (128-d, a small payload
 * each) in 4 shards, written `--storage-rounds` times:
 *
 *   kept       the point-in-time window at its default (24 h): every entry stays in the log;
 *   compacted  the window set to 0: the logs are purged to the newest snapshots;
 *   deleted    half the ids deleted, compacted again.
 *
 * Each phase reports the data directory (JetStream store + object store + checkpoints) per
 * live vector and as a multiple of the live vectors as raw float32 plus payloads.
 * Writes bench/results/<timestamp>-storage.json, latest-storage.json and storage.md.
 */
import { readdir, stat, mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { Harness, waitFor } from "../test/support/harness.ts";
import { JadeClient } from "../src/client/client.ts";
import { fmt, kv, log, onCleanup, once, resultsDir, retryPaced, round, section, table } from "./common.ts";
import { barChart, writeReport } from "./plot.ts";
import { withProgress } from "./progress.ts";

export interface StorageOptions {
  n: number;
  rounds: number;
}

const dimension = 128;
const batch = 1_000;
/** Bytes of one payload as JSON (`{"n":123456}`), counted as the live data it is. */
const payloadBytes = 12;

interface Phase {
  phase: string;
  live: number;
  dataBytes: number;
  bytesPerVector: number;
  /** dataBytes ÷ (live × (4 × dimension + payload)). */
  ofRaw: number;
  logBytes: number;
  parts: Record<Part, number>;
}

type Part = "logs" | "snapshots" | "checkpoints" | "other";

/** Bytes under `dir` by what they are: shard logs, snapshot buckets, local checkpoints, the rest (KV, scratch). */
async function bytesUnder(dir: string): Promise<Record<Part, number>> {
  const parts: Record<Part, number> = { logs: 0, snapshots: 0, checkpoints: 0, other: 0 };
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    const part: Part = file.includes("/streams/jade-log-") ? "logs" : file.includes("/streams/OBJ_jadesnap_") ? "snapshots" : file.includes("/checkpoints/") ? "checkpoints" : "other";
    parts[part] += (await stat(file).catch(() => ({ size: 0 }))).size;
  }
  return parts;
}

/** Deterministic vectors: row r of round k, no two alike. */
function vectors(from: number, count: number, round: number): Float32Array {
  const out = new Float32Array(count * dimension);
  for (let r = 0; r < count; r++) for (let j = 0; j < dimension; j++) out[r * dimension + j] = Math.sin((from + r) * 0.37 + j * 1.3 + round * 0.11);
  return out;
}

export async function runStorage(opts: StorageOptions): Promise<void> {
  section(`storage: ${fmt(opts.n)} ids × ${dimension}-d written ${opts.rounds} times, one node`);
  const harness = new Harness();
  onCleanup(() => harness.close());
  const dataDir = await harness.tempDir("jade-bench-dev-");
  const dev = await harness.spawnJade(["dev", "--data", dataDir, "--nats-port", "0", "--http-port", "0"]);
  const client = await JadeClient.connect({ servers: dev.natsUrl, name: "jade-bench-storage", timeoutMs: 120_000 });
  onCleanup(once(() => client.close()));
  await client.createCollection({ name: "churn", dimension, metric: "l2", shards: 4, snapshot: { everyEntries: 1_000_000, intervalMs: 2_000 } });

  const ids = Array.from({ length: opts.n }, (_, i) => `id-${i}`);
  await withProgress("write", opts.n * opts.rounds, async (advance) => {
    let done = 0;
    for (let round = 0; round < opts.rounds; round++) {
      for (let from = 0; from < opts.n; from += batch) {
        const slice = ids.slice(from, from + batch);
        const payloads = slice.map((_, i) => ({ n: from + i }));
        await retryPaced(() => client.upsertColumns("churn", { ids: slice, vectors: vectors(from, slice.length, round), payloads }));
        advance((done += slice.length));
      }
    }
  });

  const liveRaw = (live: number) => live * (4 * dimension + payloadBytes);
  const measure = async (phase: string, live: number): Promise<Phase> => {
    const status = (await client.clusterStatus()).collections.find((c) => c.name === "churn")!;
    const logBytes = status.shards.reduce((sum, s) => sum + (s.log?.bytes ?? 0), 0);
    const parts = await bytesUnder(dataDir);
    const dataBytes = parts.logs + parts.snapshots + parts.checkpoints + parts.other;
    const result = { phase, live, dataBytes, bytesPerVector: round(dataBytes / live, 1), ofRaw: round(dataBytes / liveRaw(live), 2), logBytes, parts };
    const mib = (b: number) => fmt(b / 2 ** 20, 1);
    kv(phase, `${mib(dataBytes)} MiB on disk (logs ${mib(parts.logs)}, snapshots ${mib(parts.snapshots)}, checkpoints ${mib(parts.checkpoints)}, other ${mib(parts.other)}), ${fmt(result.bytesPerVector)} B per live vector = ${fmt(result.ofRaw, 2)} × raw`);
    return result;
  };
  /**
   * Every shard applied all, and (window 0) saved a snapshot of it and purged its log to there;
   * the retention state must be one that saw the log's current end.
   */
  const settled = (purged: boolean) =>
    waitFor(
      async () => {
        const status = (await client.clusterStatus()).collections.find((c) => c.name === "churn");
        return (
          status?.shards.every(
            (s) => s.log && s.replicas.every((r) => r.lag === 0 && r.pending === 0 && r.lastSeq === s.log!.lastSeq) && (!purged || (s.log.messages === 0 && s.log.floor === s.log.lastSeq)),
          ) ?? false
        );
      },
      { what: "the shards settled", timeoutMs: 600_000 },
    );

  await settled(false);
  const phases = [await measure("kept (24 h window)", opts.n)];
  await client.updateCollection({ name: "churn", retention: { pointInTimeMs: 0 } });
  await settled(true);
  phases.push(await measure("compacted (window 0)", opts.n));
  for (let from = 0; from < opts.n; from += 2 * batch) await client.delete("churn", { ids: ids.slice(from, from + batch) });
  const live = opts.n - Math.ceil(opts.n / (2 * batch)) * batch;
  await settled(true);
  phases.push(await measure("half deleted, compacted", live));

  const mib = (b: number) => fmt(b / 2 ** 20, 1);
  table(
    ["phase", "live vectors", "data MiB", "logs", "snapshots", "checkpoints", "other", "B / live vector", "× raw"],
    phases.map((p) => [p.phase, fmt(p.live), mib(p.dataBytes), mib(p.parts.logs), mib(p.parts.snapshots), mib(p.parts.checkpoints), mib(p.parts.other), fmt(p.bytesPerVector), fmt(p.ofRaw, 2)]),
  );
  const result = { suite: "storage", at: new Date().toISOString(), options: { ...opts, dimension, payloadBytes }, phases };
  const stamp = result.at.replace(/[:]/g, "-");
  await mkdir(resultsDir, { recursive: true });
  await writeFile(path.join(resultsDir, `${stamp}-storage.json`), JSON.stringify(result, null, 2) + "\n");
  await writeFile(path.join(resultsDir, "latest-storage.json"), JSON.stringify(result, null, 2) + "\n");
  const markdown = [
    `${fmt(opts.n)} ids × ${dimension}-d (payload ~${payloadBytes} B) written ${opts.rounds} times into 4 shards on \`jade dev\`; its data directory = JetStream store + object store + checkpoints.`,
    "",
    "| phase | live vectors | data MiB | logs | snapshots | checkpoints | other | B per live vector | × raw float32 + payloads |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...phases.map((p) => `| ${p.phase} | ${fmt(p.live)} | ${mib(p.dataBytes)} | ${mib(p.parts.logs)} | ${mib(p.parts.snapshots)} | ${mib(p.parts.checkpoints)} | ${mib(p.parts.other)} | ${fmt(p.bytesPerVector)} | ${fmt(p.ofRaw, 2)} |`),
  ].join("\n");
  const chart = await barChart({ title: "disk per live vector (× raw float32 + payloads)", category: { field: "phase", title: "" }, value: { field: "ofRaw", title: "× raw" }, data: phases.map((p) => ({ phase: p.phase, ofRaw: p.ofRaw })) });
  const files = await writeReport(resultsDir, "storage", { title: "JadeVectorDB storage: disk per live vector", sections: [{ heading: "Overwrites, compaction and deletes", markdown, charts: [{ file: "storage-disk.svg", title: "disk per live vector", svg: chart }] }] });
  for (const f of files) log(`  ${f}`);
}
