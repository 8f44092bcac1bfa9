/**
 * `jade backup create|list|verify|delete` and `jade restore` / `jade restores` (docs/cli.md).
 * Backups and restores run on the coordinator; these commands start one and follow its record
 * with a progress bar until it ends (`--no-wait` returns at once with its id).
 */
import path from "node:path";
import cliProgress from "cli-progress";
import { InvalidArgumentError, type Command } from "commander";
import type { BackupLocation, BackupManifestSummary, BackupRecord, Progress, RestoreRecord } from "../../runtime/backup-schemas.ts";
import type { JadeClient } from "../../client/client.ts";
import type { JobWaitOptions } from "../../client/jobs.ts";
import { formatCount, printJson, printLine, table } from "../format.ts";
import { CliError, integer, runWithClient, withClientOptions, type ClientOptions } from "./shared.ts";

interface LocationOptions {
  to?: string;
  from?: string;
  bucket?: string;
}

function locationOf(dir: string | undefined, bucket: string | undefined): BackupLocation | undefined {
  if (dir !== undefined && bucket !== undefined) throw new CliError("give a directory or --bucket, not both");
  if (dir !== undefined) return { dir: path.resolve(dir) };
  return bucket !== undefined ? { bucket } : undefined;
}

function list(value: string): string[] {
  return value.split(",").map((s) => s.trim()).filter(Boolean);
}

/** `0:120,1:98` → [{shard, seq}…]. */
function seqList(value: string): { shard: number; seq: number }[] {
  return list(value).map((pair) => {
    const match = /^(\d+):(\d+)$/.exec(pair);
    if (!match) throw new InvalidArgumentError(`expected shard:seq[,shard:seq…], got ${JSON.stringify(pair)}`);
    return { shard: Number(match[1]), seq: Number(match[2]) };
  });
}

const mib = (bytes: number) => (bytes / (1024 * 1024)).toFixed(1);

/** Follows a job with a bar of bytes copied (stderr), unless the output is JSON. */
async function follow<T extends { progress: Progress }>(json: boolean | undefined, what: string, wait: (options: JobWaitOptions<T>) => Promise<T>): Promise<T> {
  if (json) return wait({});
  const bar = new cliProgress.SingleBar(
    { format: `${what} |{bar}| {percentage}% | {done}/{total} MiB | {shards} shards | ETA {eta_formatted}`, stream: process.stderr, hideCursor: true, etaBuffer: 20 },
    cliProgress.Presets.shades_classic,
  );
  bar.start(1, 0, { done: "0.0", total: "?", shards: "0/0" });
  try {
    return await wait({
      onProgress: ({ progress: p }) => {
        bar.setTotal(Math.max(1, p.bytesTotal));
        bar.update(Math.min(p.bytesDone, Math.max(1, p.bytesTotal)), { done: mib(p.bytesDone), total: mib(p.bytesTotal), shards: `${p.shardsDone}/${p.shardsTotal}` });
      },
    });
  } finally {
    bar.stop();
  }
}

function printBackups(backups: BackupRecord[]): void {
  if (backups.length === 0) return printLine("no backups");
  printLine(
    table(
      ["id", "state", "collections", "base", "points", "MiB", "where"],
      backups.map((b) => [
        b.id,
        b.state === "failed" ? `failed: ${b.error?.message ?? ""}` : b.state,
        b.collections.join(","),
        b.base ?? "-",
        b.points === undefined ? "-" : formatCount(b.points),
        b.bytes === undefined ? mib(b.progress.bytesDone) : mib(b.bytes),
        "dir" in b.location ? b.location.dir : `bucket ${b.location.bucket}`,
      ]),
    ),
  );
}

function printRestores(restores: RestoreRecord[]): void {
  if (restores.length === 0) return printLine("no restores");
  printLine(
    table(
      ["id", "state", "from", "collections", "points", "progress"],
      restores.map((r) => [
        r.id,
        r.state === "failed" ? `failed: ${r.error?.message ?? ""}` : r.state,
        "backup" in r.source ? `backup ${r.source.backup}` : `live ${r.source.live}`,
        r.collections.map((c) => (c.from === c.to ? c.to : `${c.from} → ${c.to}`)).join(", "),
        r.points === undefined ? "-" : formatCount(r.points),
        `${mib(r.progress.bytesDone)}/${mib(r.progress.bytesTotal)} MiB`,
      ]),
    ),
  );
}

async function backupCreate(client: JadeClient, o: ClientOptions & LocationOptions & { collections?: string[]; incrementalFrom?: string; mibPerSec?: number; wait: boolean }): Promise<void> {
  const to = locationOf(o.to, o.bucket);
  const started = await client.createBackup({
    ...(o.collections ? { collections: o.collections } : {}),
    ...(to ? { to } : {}),
    ...(o.incrementalFrom ? { incrementalFrom: o.incrementalFrom } : {}),
    ...(o.mibPerSec ? { bytesPerSecMax: o.mibPerSec * 1024 * 1024 } : {}),
  });
  if (!o.wait) return o.json ? printJson(started) : printLine(`backup ${started.id} started`);
  const done = await follow<BackupRecord>(o.json, "backing up", (options) => client.waitForBackup(started.id, options));
  if (o.json) return printJson(done);
  printLine(`backup ${done.id} complete: ${formatCount(done.points ?? 0)} points, ${mib(done.bytes ?? 0)} MiB`);
}

async function restore(
  client: JadeClient,
  id: string | undefined,
  o: ClientOptions & LocationOptions & { collections?: string[]; as?: string; toTime?: string; toSeq?: { shard: number; seq: number }[]; fromLive?: string; wait: boolean },
): Promise<void> {
  if ((id === undefined) === (o.fromLive === undefined)) throw new CliError("name a backup id, or --from-live COLLECTION");
  const from = locationOf(o.from, o.bucket);
  const started = await client.restore({
    ...(id !== undefined ? { backup: id } : { live: o.fromLive! }),
    ...(from ? { from } : {}),
    ...(o.collections ? { collections: o.collections } : {}),
    ...(o.as ? { as: o.as } : {}),
    ...(o.toTime ? { toTime: o.toTime } : {}),
    ...(o.toSeq ? { toSeq: o.toSeq } : {}),
  });
  if (!o.wait) return o.json ? printJson(started) : printLine(`restore ${started.id} started`);
  const done = await follow<RestoreRecord>(o.json, "restoring", (options) => client.waitForRestore(started.id, options));
  if (o.json) return printJson(done);
  printLine(`restored ${done.collections.map((c) => c.to).join(", ")}: ${formatCount(done.points ?? 0)} points`);
}

export function registerBackupCommands(program: Command): void {
  const backup = program.command("backup").description("consistent backups of collections: full or incremental, to a directory or a bucket");
  withClientOptions(
    backup
      .command("create")
      .description("back up collections at one instant (a directory is on the node that runs the backup: the coordinator)")
      .option("--collections <a,b>", "collections to back up (default: all)", list)
      .option("--to <dir>", "write the backup under this directory")
      .option("--bucket <name>", "write the backup into this object-store bucket (default: jade-backups)")
      .option("--incremental-from <id>", "only what changed since this backup (kept beside it)")
      .option("--mib-per-sec <n>", "read at most this many MiB/s (default 16: searches keep their speed)", integer(1, 1024))
      .option("--no-wait", "return once it started, without following it"),
  ).action((o: ClientOptions & LocationOptions & { collections?: string[]; incrementalFrom?: string; mibPerSec?: number; wait: boolean }) => runWithClient(o, (client) => backupCreate(client, o)));
  withClientOptions(
    backup
      .command("list")
      .description("the backup catalog; with --from or --bucket, the backups kept there")
      .option("--from <dir>", "list the backups in this directory")
      .option("--bucket <name>", "list the backups in this bucket"),
  ).action((o: ClientOptions & LocationOptions) =>
    runWithClient(o, async (client) => {
      const from = locationOf(o.from, o.bucket);
      if (!from) {
        const backups = await client.listBackups();
        return o.json ? printJson({ backups }) : printBackups(backups);
      }
      const { manifests } = await client.admin<{ manifests: BackupManifestSummary[] }>("backup.list", { from });
      if (o.json) return printJson({ manifests });
      printLine(table(["id", "created", "collections", "base", "MiB"], manifests.map((m) => [m.id, m.createdAt, m.collections.join(","), m.base ?? "-", mib(m.bytes)])));
    }),
  );
  withClientOptions(
    backup
      .command("verify <id>")
      .description("re-read every file of a backup (and its bases) against its checksums")
      .option("--deep", "also restore it into a scratch collection and compare every shard's content digest")
      .option("--from <dir>", "a backup the catalog does not know, in this directory")
      .option("--bucket <name>", "…or in this bucket"),
  ).action((id: string, o: ClientOptions & LocationOptions & { deep?: boolean }) =>
    runWithClient(o, async (client) => {
      const from = locationOf(o.from, o.bucket);
      const result = await client.verifyBackup({ id, ...(from ? { from } : {}), ...(o.deep ? { deep: true } : {}) });
      if (o.json) return printJson(result);
      printLine(`backup ${id}: ${result.files} files, ${mib(result.bytes)} MiB, every checksum matches`);
      for (const d of result.deep ?? []) printLine(`  ${d.collection}: restored ${formatCount(d.points)} points, every shard's digest matches`);
    }),
  );
  withClientOptions(
    backup.command("delete <id>").description("delete a backup's files and its catalog entry").option("--force", "even if incremental backups build on it"),
  ).action((id: string, o: ClientOptions & { force?: boolean }) =>
    runWithClient(o, async (client) => {
      const result = await client.deleteBackup(id, { force: o.force ?? false });
      if (o.json) return printJson(result);
      printLine(`deleted backup ${result.deleted}`);
    }),
  );

  withClientOptions(
    program
      .command("restore [id]")
      .description("restore collections from a backup, or from the live logs (--from-live), optionally to a point in time")
      .option("--from <dir>", "a backup the catalog does not know, in this directory")
      .option("--bucket <name>", "…or in this bucket")
      .option("--collections <a,b>", "which of the backup's collections (default: all)", list)
      .option("--as <name>", "restore under this name (one collection)")
      .option("--to-time <iso8601>", "up to the last write at or before this instant")
      .option("--to-seq <shard:seq,…>", "up to these log sequences", seqList)
      .option("--from-live <collection>", "from the collection's own snapshots and logs, within its point-in-time window (needs --as)")
      .option("--no-wait", "return once it started, without following it"),
  ).action((id: string | undefined, o: ClientOptions & LocationOptions & { collections?: string[]; as?: string; toTime?: string; toSeq?: { shard: number; seq: number }[]; fromLive?: string; wait: boolean }) =>
    runWithClient(o, (client) => restore(client, id, o)),
  );
  withClientOptions(program.command("restores").description("restores, running and finished")).action((o: ClientOptions) =>
    runWithClient(o, async (client) => {
      const restores = await client.listRestores();
      return o.json ? printJson({ restores }) : printRestores(restores);
    }),
  );
}
