/**
 * `jade collections create|list|get|update|drop`. Options are checked to be integers
 * here; their ranges are the server's to check (one source of truth: schemas.ts).
 */
import type { Command } from "commander";
import { Metric, Quantization, type CollectionConfig, type CreateCollectionRequest } from "../../runtime/schemas.ts";
import { keyValues, printJson, printLine, table } from "../format.ts";
import { choice, integer, runWithClient, withClientOptions, type ClientOptions } from "./shared.ts";

const metrics = Metric.options;
const quantizations = Quantization.options;

interface CreateOptions extends ClientOptions {
  dimension: number;
  metric: Metric;
  shards?: number;
  replicas?: number;
  connectivity?: number;
  expansionAdd?: number;
  expansionSearch?: number;
  quantization?: Quantization;
  snapshotEvery?: number;
  snapshotIntervalMs?: number;
  pointInTimeMs?: number;
}

/** The create request from the options; only what the user gave, so the server's defaults apply to the rest. */
export function createRequest(name: string, o: CreateOptions): CreateCollectionRequest {
  const request: CreateCollectionRequest = { name, dimension: o.dimension, metric: o.metric };
  if (o.shards !== undefined) request.shards = o.shards;
  if (o.replicas !== undefined) request.replicas = o.replicas;
  const index: NonNullable<CreateCollectionRequest["index"]> = {};
  if (o.connectivity !== undefined) index.connectivity = o.connectivity;
  if (o.expansionAdd !== undefined) index.expansionAdd = o.expansionAdd;
  if (o.expansionSearch !== undefined) index.expansionSearch = o.expansionSearch;
  if (o.quantization !== undefined) index.quantization = o.quantization;
  if (Object.keys(index).length > 0) request.index = index;
  const snapshot: NonNullable<CreateCollectionRequest["snapshot"]> = {};
  if (o.snapshotEvery !== undefined) snapshot.everyEntries = o.snapshotEvery;
  if (o.snapshotIntervalMs !== undefined) snapshot.intervalMs = o.snapshotIntervalMs;
  if (Object.keys(snapshot).length > 0) request.snapshot = snapshot;
  if (o.pointInTimeMs !== undefined) request.retention = { pointInTimeMs: o.pointInTimeMs };
  return request;
}

export function describeCollection(c: CollectionConfig): string {
  return keyValues([
    ["name", c.name],
    ["dimension", c.dimension],
    ["metric", c.metric],
    ["shards", c.shards],
    ["replicas", c.replicas],
    ["sharding", c.sharding],
    ["index", `connectivity=${c.index.connectivity} expansionAdd=${c.index.expansionAdd} expansionSearch=${c.index.expansionSearch} quantization=${c.index.quantization}`],
    ["snapshot", `every ${c.snapshot.everyEntries} entries or ${c.snapshot.intervalMs === undefined ? "the cluster's snapshot.intervalMs" : `${c.snapshot.intervalMs} ms`}`],
    ["retention", `point-in-time window ${c.retention.pointInTimeMs === undefined ? "the cluster's retention.pointInTimeMs" : `${c.retention.pointInTimeMs} ms`}`],
    ["created", c.createdAt],
    ["uid", c.uid],
  ]);
}

export function registerCollectionCommands(program: Command): void {
  const collections = program.command("collections").description("create, list, inspect and drop collections");

  withClientOptions(
    collections
      .command("create <name>")
      .description("create a collection")
      .requiredOption("--dimension <n>", "vector dimension", integer(1))
      .addOption(choice("--metric <metric>", "distance metric", metrics).makeOptionMandatory())
      .option("--shards <n>", "number of shards (server default 1)", integer(1))
      .option("--replicas <n>", "replicas per shard (server default 1)", integer(1))
      .option("--connectivity <n>", "HNSW connectivity M (default 16)", integer(1))
      .option("--expansion-add <n>", "HNSW expansion at insert (default 128)", integer(1))
      .option("--expansion-search <n>", "HNSW expansion at search (default 64)", integer(1))
      .addOption(choice("--quantization <q>", "stored scalar type (i8 needs cosine; default f32)", quantizations))
      .option("--snapshot-every <n>", "snapshot a shard every N log entries (default 1000)", integer(1))
      .option("--snapshot-interval-ms <ms>", "or at most every MS milliseconds (default 30000)", integer(1))
      .option("--point-in-time-ms <ms>", "keep the log for point-in-time restores this far back; 0 = only what restores need (default 86400000)", integer(0)),
  ).action((name: string, o: CreateOptions) =>
    runWithClient(o, async (client) => {
      const config = await client.createCollection(createRequest(name, o));
      if (o.json) return printJson(config);
      printLine(`created collection ${config.name}`);
      printLine(describeCollection(config));
    }),
  );

  withClientOptions(collections.command("list").description("list the collections")).action((o: ClientOptions) =>
    runWithClient(o, async (client) => {
      const list = await client.listCollections();
      if (o.json) return printJson(list);
      if (list.length === 0) return printLine("no collections (create one with `jade collections create`)");
      printLine(
        table(
          ["name", "dimension", "metric", "shards", "replicas", "quantization", "created"],
          list.map((c) => [c.name, c.dimension, c.metric, c.shards, c.replicas, c.index.quantization, c.createdAt]),
        ),
      );
    }),
  );

  withClientOptions(collections.command("get <name>").description("show a collection's configuration")).action(
    (name: string, o: ClientOptions) =>
      runWithClient(o, async (client) => {
        const config = await client.getCollection(name);
        if (o.json) return printJson(config);
        printLine(describeCollection(config));
      }),
  );

  withClientOptions(
    collections
      .command("update <name>")
      .description("change a collection's retention")
      .requiredOption("--point-in-time-ms <ms>", "keep the log for point-in-time restores this far back; 0 = only what restores need", integer(0)),
  ).action((name: string, o: ClientOptions & { pointInTimeMs: number }) =>
    runWithClient(o, async (client) => {
      const config = await client.updateCollection({ name, retention: { pointInTimeMs: o.pointInTimeMs } });
      if (o.json) return printJson(config);
      printLine(`updated collection ${config.name}`);
      printLine(describeCollection(config));
    }),
  );

  withClientOptions(collections.command("drop <name>").description("drop a collection and all its data")).action(
    (name: string, o: ClientOptions) =>
      runWithClient(o, async (client) => {
        const result = await client.dropCollection(name);
        if (o.json) return printJson(result);
        printLine(`dropped collection ${result.dropped}`);
      }),
  );
}
