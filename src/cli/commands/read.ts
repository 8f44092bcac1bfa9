/** `jade search`, `jade count`, `jade get`: the read commands. */
import { readFile } from "node:fs/promises";
import path from "node:path";
import type { Command } from "commander";
import { ReadConsistency, readConsistencyDefault, type SearchRequest, type SessionToken } from "../../runtime/schemas.ts";
import { limits } from "../../runtime/limits.ts";
import { readFvecs } from "../fvecs.ts";
import {
  compactJson,
  formatCount,
  formatNumber,
  printJson,
  printLine,
  printNote,
  printPartialNote,
  table,
  vectorPreview,
  type Cell,
  type CoverageLike,
} from "../format.ts";
import { choice, CliError, integer, jsonObject, runWithClient, withClientOptions, type ClientOptions } from "./shared.ts";
import { errorMessage } from "../../runtime/errors.ts";

export const readLevels = ReadConsistency.options;
const consistencyHelp = "eventual = any replica; session = one that applied --token; strong = one that applied the whole log";

interface ReadOptions extends ClientOptions {
  consistency: ReadConsistency;
  token?: Record<string, unknown>;
  timeoutMs?: number;
}

interface SearchOptions extends ReadOptions {
  vector?: string;
  vectorFile?: string;
  k: number;
  filter?: Record<string, unknown>;
  withPayload?: boolean;
  withVectors?: boolean;
}

function readOptions(command: Command): Command {
  return command
    .addOption(choice("--consistency <level>", consistencyHelp, readLevels, readConsistencyDefault))
    .option("--token <json>", "session token from a write (JSON, e.g. '{\"0\":12}'); implies --consistency session", jsonObject)
    .option("--timeout-ms <ms>", "per-request deadline on the server", integer(1));
}

function readRequest(o: ReadOptions): { consistency: ReadConsistency; token?: SessionToken; timeoutMs?: number } {
  const request: { consistency: ReadConsistency; token?: SessionToken; timeoutMs?: number } = { consistency: o.consistency };
  if (o.token !== undefined) {
    request.token = o.token as SessionToken;
    if (o.consistency === "eventual") request.consistency = "session";
  }
  if (o.timeoutMs !== undefined) request.timeoutMs = o.timeoutMs;
  return request;
}

/** A query vector: a JSON array, a JSON object with a `vector` field, or (for .fvecs) the file's first row. */
export async function queryVector(o: { vector?: string; vectorFile?: string }): Promise<number[]> {
  if ((o.vector === undefined) === (o.vectorFile === undefined)) throw new CliError("give exactly one of --vector and --vector-file");
  if (o.vectorFile !== undefined && path.extname(o.vectorFile).toLowerCase() === ".fvecs") {
    for await (const { vector } of readFvecs(o.vectorFile)) return Array.from(vector);
    throw new CliError(`${o.vectorFile} holds no vectors`);
  }
  const where = o.vector !== undefined ? "--vector" : o.vectorFile!;
  const text = o.vector ?? (await readFile(o.vectorFile!, "utf8"));
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new CliError(`${where}: not valid JSON: ${errorMessage(err)}`);
  }
  if (typeof value === "object" && value !== null && !Array.isArray(value) && "vector" in value) value = value.vector;
  if (!Array.isArray(value) || !value.every((x) => typeof x === "number")) {
    throw new CliError(`${where}: expected a JSON array of numbers, like [0.1, 0.2, 0.3]`);
  }
  return value as number[];
}

export function registerReadCommands(program: Command): void {
  withClientOptions(
    readOptions(
      program
        .command("search <collection>")
        .description("find the k nearest points to a vector")
        .option("--vector <json>", "query vector as a JSON array, e.g. '[0.1,0.2,0.3]'")
        .option("--vector-file <file>", "read the query vector from a file (JSON array, JSON point, or .fvecs: first row)")
        .option("-k, --k <n>", "number of hits", integer(1, limits.kMax), 10)
        .option("--filter <json>", 'payload filter, e.g. \'{"color":"red","year":{"$gte":2020}}\'', jsonObject)
        .option("--with-payload", "return payloads")
        .option("--with-vectors", "return vectors"),
    ),
  ).action((collection: string, o: SearchOptions) =>
    runWithClient(o, async (client) => {
      const request: SearchRequest = { vector: await queryVector(o), k: o.k, ...readRequest(o) };
      if (o.filter !== undefined) request.filter = o.filter;
      if (o.withPayload) request.withPayload = true;
      if (o.withVectors) request.withVectors = true;
      const result = await client.search(collection, request);
      if (o.json) return printJson(result);
      if (result.hits.length === 0) printLine("no hits");
      else {
        const headers = ["#", "id", "distance"];
        if (o.withPayload) headers.push("payload");
        if (o.withVectors) headers.push("vector");
        const rows = result.hits.map((h, i) => {
          const row: Cell[] = [i + 1, h.id, formatNumber(h.distance)];
          if (o.withPayload) row.push(compactJson(h.payload));
          if (o.withVectors) row.push(vectorPreview(h.vector));
          return row;
        });
        printLine(table(headers, rows, { alignRight: [0, 2] }));
      }
      printPartialNote(result as CoverageLike);
    }),
  );

  withClientOptions(
    readOptions(
      program
        .command("count <collection>")
        .description("count the points (that match a filter)")
        .option("--filter <json>", "payload filter (JSON)", jsonObject),
    ),
  ).action((collection: string, o: ReadOptions & { filter?: Record<string, unknown> }) =>
    runWithClient(o, async (client) => {
      const result = await client.count(collection, { ...readRequest(o), ...(o.filter !== undefined ? { filter: o.filter } : {}) });
      if (o.json) return printJson(result);
      printLine(String(result.count));
      printPartialNote(result as CoverageLike);
    }),
  );

  withClientOptions(
    readOptions(
      program
        .command("get <collection> <ids...>")
        .description("fetch points by id")
        .option("--with-vectors", "return vectors"),
    ),
  ).action((collection: string, ids: string[], o: ReadOptions & { withVectors?: boolean }) =>
    runWithClient(o, async (client) => {
      const result = await client.get(collection, { ids, withVectors: o.withVectors === true, ...readRequest(o) });
      if (o.json) return printJson(result);
      if (result.points.length > 0) {
        const headers = o.withVectors ? ["id", "payload", "vector"] : ["id", "payload"];
        printLine(
          table(
            headers,
            result.points.map((p) => (o.withVectors ? [p.id, compactJson(p.payload, 60), vectorPreview(p.vector)] : [p.id, compactJson(p.payload, 100)])),
          ),
        );
      }
      const found = new Set(result.points.map((p) => p.id));
      const missing = [...new Set(ids)].filter((id) => !found.has(id));
      if (missing.length > 0) printNote(`not found: ${missing.slice(0, 20).join(", ")}${missing.length > 20 ? ` … (${formatCount(missing.length)} ids)` : ""}`);
      printPartialNote(result as CoverageLike);
    }),
  );
}
