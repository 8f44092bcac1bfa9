/**
 * `npm run bench -- --suite backup`: backup and restore throughput against rebuilding by
 * re-importing the same data (decision 008), on one node (`jade start`) and its nats-server:
 *
 *   re-import   the data set upserted through the API until every shard's graph absorbed it;
 *   backup      a full backup to a directory (the collection's logs compacted to its snapshots
 *               first, as they are once the point-in-time window has passed), with the search
 *               QPS at concurrency 8 measured while it runs, three times, each backup between
 *               idle windows (its cost is against the mean of the two around it);
 *   restore     that backup restored under a new name, until every replica serves it and its
 *               digests match;
 *   PITR        (Fashion-MNIST) a collection without snapshots restored from its own log to 25,
 *               50 and 100 % of it: restore time against the log replayed;
 *   disk        bytes per live vector before and after compaction.
 *
 * Data sets: Fashion-MNIST (60k × 784) and `--backup-n` clustered 128-d vectors (1M by default).
 * Writes bench/results/<timestamp>-backup.json, latest-backup.json and backup.md.
 */
import { readdir, stat } from "node:fs/promises";
import path from "node:path";
import { JadeClient } from "../src/client/client.ts";
import { Encoding } from "../src/runtime/encoding.ts";
import type { ClusterStatus } from "../src/runtime/status.ts";
import type { BackupRecord } from "../src/runtime/backup-schemas.ts";
import { Harness, waitFor } from "../test/support/harness.ts";
import { worthResaving } from "../src/machines/replica-snapshots.ts";
import { fmt, ingest, index, kv, loadDataset, log, mean, onCleanup, once, resultsDir, round, searchBodies, section, table, writeResults } from "./common.ts";
import { clusteredDefaults, clusteredQueries, clusteredVectors } from "./datasets-clustered.ts";
import type { VectorSet } from "./datasets.ts";
import { barChart, writeReport } from "./plot.ts";
import { withTicker } from "./progress.ts";
import { startEmbeddedNats } from "../src/nats/embedded.ts";

export interface BackupBenchOptions {
  /** Clustered 128-d vectors of the second data set. */
  n: number;
  shards: number;
}

interface DatasetRun {
  dataset: string;
  vectors: number;
  dimension: number;
  reimportSeconds: number;
  backup: { seconds: number; bytes: number; vectorsPerSecond: number; mibPerSecond: number; snapshots: number; linkedSnapshots: number };
  restore: { seconds: number; vectorsPerSecond: number; mibPerSecond: number };
  restoreSpeedup: number;
  /**
   * Searches per second in the idle windows and during each backup between them; each drop is
   * against the mean of the idle windows on either side (the machine's speed drifts between
   * windows), `drop` their mean, `copyDrop` and `digestDrop` the same for each phase.
   */
  qps: { idle: number[]; during: number[]; drops: number[]; drop: number; copyDrop: number; digestDrop: number };
  /** Bytes per vector: the cluster's store (nats-server's directory) before and after compaction, and the node's checkpoints. */
  disk: { beforeCompaction: number; afterCompaction: number; checkpoints: number };
}

interface PitrPoint {
  share: number;
  entries: number;
  vectors: number;
  seconds: number;
}

const concurrency = 8;
/**
 * The QPS windows before and after a backup. This VM's search QPS drifts by ±20 % between
 * 5 s windows with nothing else running (685–1,220 at 1M × 128-d, c = 8, over 200 s), and
 * by several % between minute-long means: 10 s windows could not tell a 10 % cost from noise.
 */
const qpsBaselineMs = 60_000;
/** Backups measured per data set: single backups of 1M × 128-d cost 4 % to 17 % across runs. */
const backupsPerDataset = 3;
const mib = (bytes: number) => bytes / 2 ** 20;

async function dataBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) total += (await stat(path.join(entry.parentPath, entry.name)).catch(() => ({ size: 0 }))).size;
  }
  return total;
}

/**
 * How many of a backup's snapshot files are hard links to the node's checkpoints (a backup to a
 * directory on the node's filesystem links them; decision 008). Read right after the backup:
 * nothing is written meanwhile, so no newer checkpoint has replaced (unlinked) the original.
 */
async function linkedSnapshots(dir: string): Promise<{ snapshots: number; linked: number }> {
  const files = (await readdir(dir, { recursive: true })).filter((f) => f.endsWith(".snap"));
  const links = await Promise.all(files.map(async (f) => (await stat(path.join(dir, f))).nlink));
  return { snapshots: files.length, linked: links.filter((n) => n > 1).length };
}

/** Searches cycled over `bodies` at concurrency 8 until `until` resolves (or for `forMs`); returns QPS. */
async function qpsWhile(client: JadeClient, collection: string, bodies: readonly Uint8Array[], stop: { until?: Promise<unknown>; forMs?: number }, onQuery?: () => void): Promise<number> {
  const subject = `jade.v1.${collection}.search`;
  let done = false;
  const ended = stop.until ?? new Promise((r) => setTimeout(r, stop.forMs));
  const end = () => {
    done = true;
  };
  ended.then(end, end);
  let queries = 0;
  let next = 0;
  const started = performance.now();
  const loop = async () => {
    while (!done) {
      const reply = await client.requestRaw(subject, bodies[next++ % bodies.length]!, 30_000, undefined, Encoding.Msgpack);
      if (!reply.ok) throw new Error(`search failed: ${reply.error.code}: ${reply.error.message}`);
      queries++;
      onQuery?.();
    }
  };
  await Promise.all([...Array.from({ length: concurrency }, loop), ended]);
  return queries / ((performance.now() - started) / 1000);
}

interface PhaseQps {
  qps: number;
  seconds: number;
}

/**
 * Splits the searches made during a backup by its phase: copying (until every shard's files are
 * written) or digesting (reading them back), from the job's progress polled twice a second.
 */
class BackupPhases {
  readonly #counts = { copy: 0, digest: 0 };
  readonly #ms = { copy: 0, digest: 0 };
  #phase: "copy" | "digest" = "copy";
  #since = performance.now();
  readonly #poll: NodeJS.Timeout;

  constructor(client: JadeClient, id: string) {
    this.#poll = setInterval(() => {
      void client.listBackups().then((records) => {
        const progress = records.find((r) => r.id === id)?.progress;
        if (this.#phase === "copy" && progress && progress.shardsTotal > 0 && progress.shardsDone >= progress.shardsTotal) this.#switch();
      }, () => undefined);
    }, 500);
  }

  query(): void {
    this.#counts[this.#phase]++;
  }

  #switch(): void {
    const now = performance.now();
    this.#ms.copy += now - this.#since;
    this.#since = now;
    this.#phase = "digest";
  }

  end(): { copy: PhaseQps; digest: PhaseQps } {
    clearInterval(this.#poll);
    this.#ms[this.#phase] += performance.now() - this.#since;
    const of = (phase: "copy" | "digest"): PhaseQps => ({ qps: this.#ms[phase] > 0 ? (1000 * this.#counts[phase]) / this.#ms[phase] : 0, seconds: this.#ms[phase] / 1000 });
    return { copy: of("copy"), digest: of("digest") };
  }
}

interface TimedBackup {
  record: BackupRecord;
  seconds: number;
  during: number;
  phases: { copy: PhaseQps; digest: PhaseQps };
}

/** One full backup of `name` to `dir`, searched at c = 8 throughout. */
async function timedBackup(client: JadeClient, name: string, bodies: readonly Uint8Array[], dir: string): Promise<TimedBackup> {
  const startedAt = performance.now();
  const started = await client.createBackup({ collections: [name], to: { dir } });
  const finished = client.waitForBackup(started.id, { timeoutMs: 3_600_000 });
  const phases = new BackupPhases(client, started.id);
  const during = await qpsWhile(client, name, bodies, { until: finished }, () => phases.query());
  return { record: await finished, seconds: (performance.now() - startedAt) / 1000, during, phases: phases.end() };
}

function shardsOf(status: ClusterStatus, name: string) {
  return status.collections.find((c) => c.name === name)?.shards ?? [];
}

/**
 * Every shard saved a snapshot of everything and purged its log to it (window 0), and that
 * snapshot's graph holds its points (none left for a restore to index again: a re-save, if due, came).
 */
async function compacted(client: JadeClient, name: string): Promise<void> {
  await client.updateCollection({ name, retention: { pointInTimeMs: 0 } });
  await waitFor(
    async () => {
      const shards = shardsOf(await client.clusterStatus(), name);
      const purged = shards.length > 0 && shards.every((s) => s.log && s.log.lastSeq > 0 && s.log.messages === 0 && s.log.floor === s.log.lastSeq && s.replicas.every((r) => r.lastSeq === s.log!.lastSeq));
      return purged && shards.every((s) => s.replicas.every((r) => r.pending === 0 && !worthResaving(r.snapshotUnabsorbed ?? 0, r.count ?? 0)));
    },
    { what: `${name} compacted to its snapshots`, timeoutMs: 900_000 },
  );
}

async function runDataset(client: JadeClient, dataDir: string, backupDir: string, name: string, train: VectorSet, queries: VectorSet, shards: number): Promise<DatasetRun> {
  section(`backup: ${name}, ${fmt(train.count)} × ${train.dimension}-d, ${shards} shards`);
  await client.createCollection({ name, dimension: train.dimension, metric: "l2", shards, index, snapshot: { everyEntries: 1_000_000, intervalMs: 5_000 } });
  const imported = await ingest(client, train, { collection: name, batch: 1_000, concurrency: 4, consistency: "log", label: `${name} ` });
  kv("re-import (to fully indexed)", `${fmt(imported.indexedSeconds, 1)} s = ${fmt(train.count / imported.indexedSeconds)} vectors/s`);
  // The cluster's store (logs and shared snapshots); the node's own checkpoints are counted apart.
  const store = path.join(dataDir, "nats");
  const beforeCompaction = await dataBytes(store);
  await withTicker("compacting to snapshots", () => compacted(client, name));
  // Replaced snapshots go one grace period (a snapshot interval) after the purge: one per shard left.
  await waitFor(async () => (await readdir(path.join(dataDir, "nats"), { recursive: true })).filter((f) => /streams\/OBJ_jadesnap_[^/]+$/.test(String(f))).length === shards, {
    what: "one snapshot per shard",
    timeoutMs: 120_000,
  });
  const afterCompaction = await dataBytes(store);
  const checkpoints = await dataBytes(path.join(dataDir, "node", "checkpoints"));
  kv("store per vector", `${fmt(beforeCompaction / train.count)} B with the whole log, ${fmt(afterCompaction / train.count)} B compacted; the node's checkpoints ${fmt(checkpoints / train.count)} B`);

  const bodies = searchBodies(queries);
  // Idle, backup, idle, backup, …, idle: each backup's cost is against the idle windows on either side.
  const idle = [await qpsWhile(client, name, bodies, { forMs: qpsBaselineMs })];
  const backups: TimedBackup[] = [];
  for (let rep = 0; rep < backupsPerDataset; rep++) {
    backups.push(await timedBackup(client, name, bodies, backupDir));
    idle.push(await qpsWhile(client, name, bodies, { forMs: qpsBaselineMs }));
  }
  const backup = backups.at(-1)!.record;
  const bytes = backup.bytes ?? 0;
  const { snapshots, linked } = await linkedSnapshots(path.join(backupDir, backup.id));
  kv("snapshot files", `${snapshots}, ${linked} of them hard links to the node's checkpoints (the rest copied)`);
  const backupSeconds = mean(backups.map((b) => b.seconds));
  kv("backup", `${fmt(backupSeconds, 1)} s (mean of ${backups.length}), ${fmt(mib(bytes), 1)} MiB = ${fmt(mib(bytes) / backupSeconds, 1)} MiB/s, ${fmt(train.count / backupSeconds)} vectors/s`);
  const costs = backups.map((b, i) => {
    const around = (idle[i]! + idle[i + 1]!) / 2;
    return { total: 1 - b.during / around, copy: 1 - b.phases.copy.qps / around, digest: 1 - b.phases.digest.qps / around };
  });
  const drop = mean(costs.map((c) => c.total));
  kv("search QPS (c=8), idle", idle.map((q) => fmt(q)).join(", "));
  kv("  during each backup", backups.map((b, i) => `${fmt(b.during)} (${fmt(100 * costs[i]!.total, 1)} % lower; copy ${fmt(100 * costs[i]!.copy, 1)} %, digest ${fmt(100 * costs[i]!.digest, 1)} %)`).join(", "));
  kv("  cost", `${fmt(100 * drop, 1)} % (mean), ${fmt(100 * Math.min(...costs.map((c) => c.total)), 1)}–${fmt(100 * Math.max(...costs.map((c) => c.total)), 1)} %`);

  const restoreStarted = performance.now();
  const restore = await client.restore({ backup: backup.id, as: `${name}-restored` });
  await withTicker("restoring", () => client.waitForRestore(restore.id, { timeoutMs: 3_600_000 }));
  const restoreSeconds = (performance.now() - restoreStarted) / 1000;
  kv("restore (to serving, digests checked)", `${fmt(restoreSeconds, 1)} s = ${fmt(train.count / restoreSeconds)} vectors/s, ${fmt(mib(bytes) / restoreSeconds, 1)} MiB/s: ${fmt(imported.indexedSeconds / restoreSeconds, 1)} × faster than re-importing`);
  await client.dropCollection(`${name}-restored`);
  return {
    dataset: name,
    vectors: train.count,
    dimension: train.dimension,
    reimportSeconds: round(imported.indexedSeconds, 2),
    backup: { seconds: round(backupSeconds, 2), bytes, vectorsPerSecond: Math.round(train.count / backupSeconds), mibPerSecond: round(mib(bytes) / backupSeconds, 1), snapshots, linkedSnapshots: linked },
    restore: { seconds: round(restoreSeconds, 2), vectorsPerSecond: Math.round(train.count / restoreSeconds), mibPerSecond: round(mib(bytes) / restoreSeconds, 1) },
    restoreSpeedup: round(imported.indexedSeconds / restoreSeconds, 2),
    qps: {
      idle: idle.map(Math.round),
      during: backups.map((b) => Math.round(b.during)),
      drops: costs.map((c) => round(c.total, 3)),
      drop: round(drop, 3),
      copyDrop: round(mean(costs.map((c) => c.copy)), 3),
      digestDrop: round(mean(costs.map((c) => c.digest)), 3),
    },
    disk: { beforeCompaction: Math.round(beforeCompaction / train.count), afterCompaction: Math.round(afterCompaction / train.count), checkpoints: Math.round(checkpoints / train.count) },
  };
}

/** Restores of a snapshot-less collection from its own log, to a share of it: time against entries replayed. */
async function runPitr(client: JadeClient, train: VectorSet): Promise<PitrPoint[]> {
  section(`point-in-time restore from the live log: ${fmt(train.count)} × ${train.dimension}-d, no snapshot`);
  const name = "pitr";
  await client.createCollection({ name, dimension: train.dimension, metric: "l2", shards: 1, index, snapshot: { everyEntries: 1_000_000, intervalMs: 86_400_000 } });
  await ingest(client, train, { collection: name, batch: 1_000, concurrency: 4, consistency: "log", label: "pitr " });
  const last = shardsOf(await client.clusterStatus(), name)[0]!.log?.lastSeq ?? Math.ceil(train.count / 1_000);
  const points: PitrPoint[] = [];
  for (const share of [0.25, 0.5, 1]) {
    const seq = Math.max(1, Math.round(last * share));
    const started = performance.now();
    const restore = await client.restore({ live: name, as: "pitr-at", toSeq: [{ shard: 0, seq }] });
    const done = await withTicker(`restoring to ${share * 100} %`, () => client.waitForRestore(restore.id, { timeoutMs: 3_600_000 }));
    const seconds = (performance.now() - started) / 1000;
    points.push({ share, entries: seq, vectors: done.points ?? 0, seconds: round(seconds, 2) });
    kv(`to ${share * 100} % (${fmt(seq)} entries)`, `${fmt(seconds, 1)} s, ${fmt((done.points ?? 0) / seconds)} vectors/s`);
    await client.dropCollection("pitr-at");
  }
  return points;
}

export async function runBackupBench(opts: BackupBenchOptions): Promise<void> {
  const startedAt = new Date();
  const harness = new Harness();
  onCleanup(() => harness.close());
  const dataDir = await harness.tempDir("jade-bench-node-");
  const backupDir = await harness.tempDir("jade-bench-backups-");
  // A node as deployed (`jade start` beside its nats-server), not `jade dev`: a node keeps its
  // checkpoints, which a backup copies without going through nats-server. `jade dev` drops a
  // checkpoint once it is uploaded (node and store share a disk), so its backups read every
  // snapshot out of the object store (decision 008).
  const nats = await startEmbeddedNats({ dataDir: path.join(dataDir, "nats"), serverName: "jade-bench-backup" });
  onCleanup(() => nats.stop());
  const node = await harness.spawnJade(["start", "--nats", nats.url, "--data", path.join(dataDir, "node"), "--http-port", "0"]);
  let stopping = false;
  onCleanup(async () => void (stopping = true));
  // A node that dies mid-run would leave the benchmark waiting on it: say why, and stop.
  node.process.once("exit", (code, signal) => {
    if (stopping) return;
    log(`jade start exited (${code ?? signal}); its last output:\n${node.output.slice(-40).join("\n")}`);
    process.exit(1);
  });
  const client = await JadeClient.connect({ servers: nats.url, name: "jade-bench-backup", timeoutMs: 120_000 });
  onCleanup(once(() => client.close()));

  const fashion = await loadDataset(60_000, 1_000);
  const runs = [await runDataset(client, dataDir, backupDir, "fashion-mnist", fashion.train, fashion.queries, opts.shards)];
  const pitr = await runPitr(client, fashion.train);
  await client.dropCollection("fashion-mnist");
  await client.dropCollection("pitr");
  const spec = { ...clusteredDefaults, count: opts.n };
  const clustered = await withTicker(`generating ${fmt(opts.n)} clustered vectors`, async () => clusteredVectors(spec));
  runs.push(await runDataset(client, dataDir, backupDir, "clustered", clustered, clusteredQueries(spec, { count: 1_000, seed: 2 }), opts.shards));

  table(
    ["data set", "vectors", "re-import s", "backup s", "backup MiB/s", "snapshots linked", "restore s", "restore vectors/s", "restore ×", "QPS idle", "QPS during", "drop (mean)", "copy", "digest", "store B/vector kept", "store B/vector compacted", "checkpoints B/vector"],
    runs.map((r) => [
      r.dataset,
      fmt(r.vectors),
      fmt(r.reimportSeconds, 1),
      fmt(r.backup.seconds, 1),
      fmt(r.backup.mibPerSecond, 1),
      `${r.backup.linkedSnapshots} / ${r.backup.snapshots}`,
      fmt(r.restore.seconds, 1),
      fmt(r.restore.vectorsPerSecond),
      fmt(r.restoreSpeedup, 1),
      r.qps.idle.map((q) => fmt(q)).join(" "),
      r.qps.during.map((q) => fmt(q)).join(" "),
      `${fmt(100 * r.qps.drop, 1)} %`,
      `${fmt(100 * r.qps.copyDrop, 1)} %`,
      `${fmt(100 * r.qps.digestDrop, 1)} %`,
      fmt(r.disk.beforeCompaction),
      fmt(r.disk.afterCompaction),
      fmt(r.disk.checkpoints),
    ]),
  );
  const result = { suite: "backup", at: startedAt.toISOString(), options: opts, runs, pitr };
  for (const f of await writeResults("backup", startedAt, result)) log(`  ${f}`);
  const markdown = [
    `One node (\`jade start\`, keeping its checkpoints) and its nats-server, ${opts.shards} shards, backups to a directory on the same disk (so the snapshot files the node holds are hard-linked, not copied); QPS at concurrency ${concurrency}.`,
    "",
    "| data set | vectors | re-import to indexed (s) | backup (s) | backup MiB/s | snapshots hard-linked | restore to serving (s) | restore vectors/s | restore vs re-import | QPS idle (between backups) | QPS during each backup | cost (mean; range) | copying | digesting | store B/vector with log | store B/vector compacted | node checkpoints B/vector |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...runs.map(
      (r) =>
        `| ${r.dataset} | ${fmt(r.vectors)} | ${fmt(r.reimportSeconds, 1)} | ${fmt(r.backup.seconds, 1)} | ${fmt(r.backup.mibPerSecond, 1)} | ${r.backup.linkedSnapshots} / ${r.backup.snapshots} | ${fmt(r.restore.seconds, 1)} | ${fmt(r.restore.vectorsPerSecond)} | ${fmt(r.restoreSpeedup, 1)} × | ${r.qps.idle.map((q) => fmt(q)).join(", ")} | ${r.qps.during.map((q) => fmt(q)).join(", ")} | ${fmt(100 * r.qps.drop, 1)} %; ${r.qps.drops.map((d) => fmt(100 * d, 1)).join(", ")} % | ${fmt(100 * r.qps.copyDrop, 1)} % | ${fmt(100 * r.qps.digestDrop, 1)} % | ${fmt(r.disk.beforeCompaction)} | ${fmt(r.disk.afterCompaction)} | ${fmt(r.disk.checkpoints)} |`,
    ),
    "",
    "Point-in-time restore from the live log of a collection without snapshots (Fashion-MNIST, 1 shard): every replayed entry is indexed again.",
    "",
    "| share of the log | entries | vectors | seconds |",
    "| ---: | ---: | ---: | ---: |",
    ...pitr.map((p) => `| ${p.share * 100} % | ${fmt(p.entries)} | ${fmt(p.vectors)} | ${fmt(p.seconds, 1)} |`),
  ].join("\n");
  const chart = await barChart({
    title: "seconds to get the data back",
    category: { field: "what", title: "" },
    value: { field: "seconds", title: "seconds" },
    data: runs.flatMap((r) => [
      { what: `${r.dataset}: re-import`, seconds: r.reimportSeconds },
      { what: `${r.dataset}: restore`, seconds: r.restore.seconds },
    ]),
  });
  const files = await writeReport(resultsDir, "backup", { title: "JadeVectorDB backup and restore", sections: [{ heading: "Restore against re-import", markdown, charts: [{ file: "backup-restore.svg", title: "restore vs re-import", svg: chart }] }] });
  for (const f of files) log(`  ${f}`);
}
