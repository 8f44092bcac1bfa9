/**
 * `jade diag [--out FILE]`: one bundle for a bug report or a support case, a tar.gz of
 *   status.json, collections.json, migrations.json, backups.json, config.json (KV jade_config),
 *   versions.json, logs.jsonl (every node's lines of the last hour, from JADE_LOGS), and per
 *   node nodes/<id>/info.json and nodes/<id>/metrics.txt (asked of each node over NATS);
 *   errors.json lists what could not be collected (a silent node), which never stops the rest.
 */
import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { openListedKv } from "../../nats/kv-keys.ts";
import { readLogLines } from "../../client/logs.ts";
import type { Command } from "commander";
import type { JadeClient } from "../../client/client.ts";
import { errorMessage, type Reply } from "../../runtime/errors.ts";
import { DiagOp, names, subjects } from "../../runtime/subjects.ts";
import { jadeVersion } from "../../runtime/version.ts";
import { printLine } from "../format.ts";
import { runWithClient, withClientOptions, type ClientOptions } from "./shared.ts";

/** How long a node gets to answer each diagnostics request. */
const nodeAnswerMsMax = 5_000;
/** Log lines the bundle holds at most (the stream keeps an hour, at most 64 MiB). */
const logLinesMax = 200_000;

interface DiagOptions extends ClientOptions {
  out?: string;
}

type Collect = (file: string, what: string, read: () => Promise<unknown>) => Promise<void>;

export function registerDiagCommand(program: Command): void {
  withClientOptions(
    program
      .command("diag")
      .description("collect status, config, every node's recent logs, metrics and versions into one tar.gz")
      .option("--out <file>", "where to write it (default: jade-diag-<time>.tar.gz here)"),
  ).action((o: DiagOptions) =>
    runWithClient(o, async (client) => {
      const stamp = new Date().toISOString().replace(/[:.]/g, "-");
      const out = path.resolve(o.out ?? `jade-diag-${stamp}.tar.gz`);
      const dir = await mkdtemp(path.join(os.tmpdir(), "jade-diag-"));
      const bundle = path.join(dir, `jade-diag-${stamp}`);
      try {
        await mkdir(bundle);
        const errors: { what: string; error: string }[] = [];
        const collect: Collect = async (file, what, read) => {
          try {
            const value = await read();
            await mkdir(path.dirname(path.join(bundle, file)), { recursive: true });
            await writeFile(path.join(bundle, file), typeof value === "string" ? value : `${JSON.stringify(value, null, 2)}\n`);
            printLine(`  ${what}`);
          } catch (err) {
            errors.push({ what, error: errorMessage(err) });
            printLine(`  ${what}: failed (${errorMessage(err)})`);
          }
        };
        printLine(`collecting into ${out}`);
        await collectCluster(client, collect);
        await writeFile(path.join(bundle, "errors.json"), `${JSON.stringify(errors, null, 2)}\n`);
        const tar = spawnSync("tar", ["-czf", out, "-C", dir, path.basename(bundle)], { encoding: "utf8" });
        if (tar.status !== 0) throw new Error(`tar failed: ${tar.error?.message ?? tar.stderr}`);
        printLine(`wrote ${out}${errors.length > 0 ? ` (${errors.length} parts could not be collected: errors.json)` : ""}`);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }),
  );
}

async function collectCluster(client: JadeClient, collect: Collect): Promise<void> {
  const status = await client.clusterStatus();
  await collect("status.json", "cluster status", async () => status);
  await collect("collections.json", "collections", () => client.listCollections());
  await collect("migrations.json", "migrations", () => client.admin("migrations"));
  await collect("backups.json", "backups and restores", async () => ({ backups: await client.listBackups(), restores: await client.listRestores() }));
  await collect("config.json", "configuration (KV jade_config)", () => readConfig(client));
  await collect("versions.json", "versions", async () => ({ cli: jadeVersion, node: process.version, natsServer: client.nc.info?.version, platform: `${process.platform}-${process.arch}` }));
  await collect("logs.jsonl", "logs of the last hour", () => readLogs(client));
  for (const n of status.nodes) {
    await collect(`nodes/${n.id}/info.json`, `node ${n.id}: info`, () => askNode(client, n.id, DiagOp.Info));
    await collect(`nodes/${n.id}/metrics.txt`, `node ${n.id}: metrics`, async () => (await askNode<{ text: string }>(client, n.id, DiagOp.Metrics)).text);
  }
}

async function askNode<T>(client: JadeClient, node: string, op: DiagOp): Promise<T> {
  const msg = await client.nc.request(subjects.diag(node, op), "", { timeout: nodeAnswerMsMax });
  const reply = msg.json<Reply<T>>();
  if (!reply.ok) throw new Error(`${reply.error.code}: ${reply.error.message}`);
  return reply.result;
}

async function readConfig(client: JadeClient): Promise<Record<string, unknown>> {
  const kv = await openListedKv(client.nc, names.configBucket);
  const out: Record<string, unknown> = {};
  for (const key of await kv.listKeys()) {
    const entry = await kv.get(key);
    if (entry?.operation === "PUT") out[key] = { value: entry.string(), revision: entry.revision, created: entry.created.toISOString() };
  }
  return out;
}

async function readLogs(client: JadeClient): Promise<string> {
  const lines: string[] = [];
  await readLogLines(client.nc, { sinceMs: 60 * 60_000 }, (line) => lines.push(line) < logLinesMax);
  return lines.length === 0 ? "" : `${lines.join("\n")}\n`;
}
