/** `jade upsert`, `jade import`, `jade delete`: the write commands. */
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import cliProgress from "cli-progress";
import type { Command } from "commander";
import type { JadeClient } from "../../client/client.ts";
import { errorMessage } from "../../runtime/errors.ts";
import { limits } from "../../runtime/limits.ts";
import type { TransactionRequest } from "../../runtime/txn-schemas.ts";
import { WriteConsistency, writeConsistencyDefault } from "../../runtime/schemas.ts";
import { spaceOf, type VectorSpace } from "../../runtime/vectors.ts";
import { fvecsInfo } from "../fvecs.ts";
import { formatCount, formatSeconds, plural, printJson, printLine, printNote, printWarning } from "../format.ts";
import { fvecsRowIssue, openPointFile, readFvecsFor, readPointLines } from "./points.ts";
import { BatchSender } from "./sender.ts";
import { choice, CliError, exitCodes, integer, runWithClient, withClientOptions, type ClientOptions } from "./shared.ts";

export const writeLevels = WriteConsistency.options;
const consistencyHelp = "log = durable in the log; one|quorum|all = applied by that many replicas";

/** Skipped lines are each reported up to this many; then only counted. */
const warningsShownMax = 20;

class SkipReporter {
  count = 0;
  report(where: string, reason: string): void {
    this.count++;
    if (this.count <= warningsShownMax) printWarning(`${where} skipped: ${reason}`);
    else if (this.count === warningsShownMax + 1) printWarning("more skipped lines follow; only their number is reported");
  }
}

interface UpsertOptions extends ClientOptions {
  batch: number;
  consistency: WriteConsistency;
}

interface ImportOptions extends UpsertOptions {
  concurrency: number;
  idPrefix: string;
  format?: "jsonl" | "fvecs";
}

interface DeleteOptions extends ClientOptions {
  consistency: WriteConsistency;
}

export function registerWriteCommands(program: Command): void {
  withClientOptions(
    program
      .command("upsert <collection> [file]")
      .description('upsert points from JSON lines ({"id","vector","payload"?} per line), read from FILE or stdin')
      .option("--batch <n>", "points per request", integer(1, limits.pointsPerRequestMax), 500)
      .addOption(choice("--consistency <level>", consistencyHelp, writeLevels, writeConsistencyDefault)),
  ).action((collection: string, file: string | undefined, o: UpsertOptions) =>
    runWithClient(o, async (client) => {
      const config = await client.getCollection(collection);
      if (!file && process.stdin.isTTY) process.stderr.write("reading points from stdin (one JSON object per line; end with Ctrl-D)\n");
      const input: Readable = file ? openPointFile(file) : process.stdin.setEncoding("utf8");
      const started = performance.now();
      const sender = new BatchSender(client, { collection, dimension: config.dimension, batch: o.batch, concurrency: 1, consistency: o.consistency });
      const skipped = new SkipReporter();
      await sendAll(sender, input, async () => {
        for await (const p of readPointLines(input, spaceOf(config))) {
          if (p.ok) await sender.add(p.point);
          else if (p.reason) skipped.report(`line ${p.line}`, p.reason);
        }
      });
      const seconds = (performance.now() - started) / 1000;
      if (o.json) {
        printJson({ upserted: sender.acked, batches: sender.batches, skipped: skipped.count, seconds, token: sender.token });
      } else {
        printLine(
          `upserted ${plural(sender.acked, "point")} in ${plural(sender.batches, "batch", "batches")} (${formatSeconds(seconds * 1000)} s)` +
            (skipped.count > 0 ? `; skipped ${plural(skipped.count, "malformed line")}` : ""),
        );
        if (sender.acked > 0) printLine(`session token: ${JSON.stringify(sender.token)}`);
      }
      if (skipped.count > 0) process.exitCode = exitCodes.failed;
    }),
  );

  withClientOptions(
    program
      .command("import <collection> <file>")
      .description("bulk-load a JSON lines (.jsonl/.json) or .fvecs file, with a progress bar")
      .option("--batch <n>", "points per request", integer(1, limits.pointsPerRequestMax), 500)
      .option("--concurrency <n>", "requests in flight", integer(1), 4)
      .addOption(choice("--consistency <level>", consistencyHelp, writeLevels, writeConsistencyDefault))
      .option("--id-prefix <prefix>", ".fvecs: id of row N is PREFIX + N (0-based)", "")
      .addOption(choice("--format <format>", "file format (default: from the extension; .fvecs or JSON lines)", ["jsonl", "fvecs"] as const)),
  ).action((collection: string, file: string, o: ImportOptions) =>
    runWithClient(o, async (client) => {
      const config = await client.getCollection(collection);
      const format = o.format ?? (path.extname(file).toLowerCase() === ".fvecs" ? "fvecs" : "jsonl");
      const result = await importFile(client, collection, spaceOf(config), file, format, o);
      if (o.json) printJson(result);
      else {
        printLine(
          `imported ${plural(result.vectors, "vector")} in ${result.seconds.toFixed(2)} s (${formatCount(Math.round(result.vectorsPerSecond))} vectors/s)` +
            (result.skipped > 0 ? `; skipped ${plural(result.skipped, format === "fvecs" ? "row" : "malformed line")}` : ""),
        );
      }
      if (result.skipped > 0) process.exitCode = exitCodes.failed;
    }),
  );

  withClientOptions(
    program
      .command("transaction <collection> [file]")
      .description('run a transaction, every op on every shard or none: {"ops": [{"op": "upsert", "points": […]} | {"op": "delete", "ids": […]}], "conditions"?: [{"id", "version"} | {"id", "exists"}], "timeoutMs"?} as JSON, from FILE or stdin'),
  ).action((collection: string, file: string | undefined, o: ClientOptions) =>
    runWithClient(o, async (client) => {
      if (!file && process.stdin.isTTY) process.stderr.write("reading the transaction from stdin (JSON; end with Ctrl-D)\n");
      const text = file ? await readFile(file, "utf8") : await readStdin();
      let request: TransactionRequest;
      try {
        request = JSON.parse(text) as TransactionRequest;
      } catch (err) {
        throw new CliError(`the transaction is not JSON: ${errorMessage(err)}`);
      }
      const result = await client.transaction(collection, request);
      if (o.json) return printJson(result);
      printLine(`transaction ${result.id} committed: upserted ${plural(result.upserted, "point")}, deleted ${plural(result.deleted, "id")}`);
      printLine(`session token: ${JSON.stringify(result.token)}`);
    }),
  );

  withClientOptions(
    program
      .command("delete <collection> <ids...>")
      .description("delete points by id")
      .addOption(choice("--consistency <level>", consistencyHelp, writeLevels, writeConsistencyDefault)),
  ).action((collection: string, ids: string[], o: DeleteOptions) =>
    runWithClient(o, async (client) => {
      const result = await client.delete(collection, { ids, consistency: o.consistency });
      if (o.json) return printJson(result);
      printLine(`deleted ${plural(result.deleted, "id")} (ids that did not exist are counted too)`);
      printLine(`session token: ${JSON.stringify(result.token)}`);
    }),
  );
}

/** Runs `produce`; on failure, waits for the batches in flight and says how far it got, then rethrows. */
async function sendAll(sender: BatchSender, input: Readable | undefined, produce: () => Promise<void>): Promise<void> {
  try {
    await produce();
    await sender.finish();
  } catch (err) {
    input?.destroy();
    await sender.abandon();
    if (sender.sent > 0) printNote(`${plural(sender.acked, "point")} of this run were written before the error`);
    throw err;
  }
}

export interface ImportResult {
  vectors: number;
  skipped: number;
  seconds: number;
  vectorsPerSecond: number;
  token: Record<string, number>;
}

async function importFile(
  client: JadeClient,
  collection: string,
  space: VectorSpace,
  file: string,
  format: "jsonl" | "fvecs",
  o: ImportOptions,
): Promise<ImportResult> {
  // Progress: vectors for .fvecs (the count is known from the size), bytes for JSON lines.
  let total: number;
  if (format === "fvecs") {
    const info = await fvecsInfo(file);
    if (info.rows > 0 && info.dimension !== space.dimension) {
      throw new CliError(`${file} holds dimension-${info.dimension} vectors; collection ${collection} has dimension ${space.dimension}`);
    }
    total = info.rows;
  } else {
    total = (await stat(file)).size;
  }
  const bar = new cliProgress.SingleBar(
    {
      format: "importing |{bar}| {percentage}% | {vectors} vectors | {rate} vectors/s | ETA {eta_formatted}",
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: false,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
  const started = performance.now();
  let progress = 0;
  const rate = (vectors: number) => Math.round(vectors / Math.max(1e-3, (performance.now() - started) / 1000));
  const sender = new BatchSender(client, {
    collection,
    dimension: space.dimension,
    batch: o.batch,
    concurrency: o.concurrency,
    consistency: o.consistency,
    onAck: (points, weight) => {
      progress = Math.min(total, progress + (format === "fvecs" ? points : weight));
      bar.update(progress, { vectors: formatCount(sender.acked), rate: formatCount(rate(sender.acked)) });
    },
  });
  bar.start(total, 0, { vectors: "0", rate: "0" });
  const skipped = new SkipReporter();
  let input: Readable | undefined;
  try {
    await sendAll(sender, undefined, async () => {
      if (format === "fvecs") {
        for await (const chunk of readFvecsFor(file, space)) {
          for (let r = 0; r < chunk.rows; r++) {
            const issue = fvecsRowIssue(chunk, r, space);
            if (issue) skipped.report(`row ${chunk.firstRow + r}`, issue);
            else await sender.addRow(`${o.idPrefix}${chunk.firstRow + r}`, chunk.values, r * chunk.dimension);
          }
        }
      } else {
        input = openPointFile(file);
        for await (const p of readPointLines(input, space)) {
          if (p.ok) await sender.add(p.point, p.bytes);
          else {
            sender.addWeight(p.bytes);
            if (p.reason) skipped.report(`line ${p.line}`, p.reason);
          }
        }
      }
    });
  } finally {
    bar.stop();
    input?.destroy();
  }
  const seconds = (performance.now() - started) / 1000;
  return { vectors: sender.acked, skipped: skipped.count, seconds, vectorsPerSecond: sender.acked / Math.max(seconds, 1e-6), token: sender.token };
}

async function readStdin(): Promise<string> {
  let text = "";
  for await (const chunk of process.stdin.setEncoding("utf8")) text += chunk as string;
  return text;
}
