/**
 * The three engines of the peers benchmark behind one interface: raw usearch, hnswlib-node
 * and LanceDB, each an HNSW graph over the same vectors with the same graph parameters
 * (hnswGraph) and L2 distance, so their figures differ by implementation, not by setting.
 *
 * How each one changes its search-time expansion (ef) for the sweep:
 * - usearch: the JS binding takes expansion_search only in the Index constructor. The built
 *   index is saved once, and every other ef loads that file into a new Index constructed with
 *   it (the file stores the graph, not the expansion, so the loaded copy searches with the
 *   constructor's value; at the build's own ef it returns exactly the built index's answers).
 * - hnswlib-node: setEf.
 * - LanceDB: the query's `ef()` option.
 */
import { readdir, stat } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { connect, Index as LanceIndex, type Connection, type Table } from "@lancedb/lancedb";
import hnswlib from "hnswlib-node";
import { Index, MetricKind, ScalarKind } from "usearch";
import { pino } from "pino";
import { JadeClient } from "../src/client/client.ts";
import { startEmbeddedNats } from "../src/nats/embedded.ts";
import { JadeNode } from "../src/node.ts";
import { retryPaced } from "./common.ts";
import type { VectorSet } from "./datasets.ts";
import { withProgress, withTicker, yieldToEventLoop } from "./progress.ts";

// LanceDB checks Arrow objects with instanceof against the copy it requires itself (the CJS
// build); the ESM build that `import` would give is a different class and fails those checks.
const arrow = createRequire(import.meta.url)("apache-arrow") as typeof import("apache-arrow");

export const engineNames = ["jadevectordb", "usearch", "hnswlib", "lancedb"] as const;
export type EngineName = (typeof engineNames)[number];

/** Graph parameters shared by every engine; efDefault is the ef of the headline figures. */
export const hnswGraph = { connectivity: 16, expansionAdd: 128, efDefault: 64, graphParams: { connectivity: 16, expansionAdd: 128, expansionSearch: 64 } } as const;
export const k = 10;

/** The queries twice over: one matrix (usearch batches) and one array per query, each at byteOffset 0. */
export interface Queries {
  set: VectorSet;
  rows: Float32Array[];
}

export interface SearchEngine {
  readonly name: EngineName;
  /** The index in words, for the report. */
  readonly description: string;
  /** Threads the build uses: a number, or "all" where the library sizes its own pool. */
  readonly buildThreads: number | "all";
  /** Threads (or searches in flight) of searchParallel; undefined when there is none. */
  readonly parallelism?: number;
  build(train: VectorSet): Promise<void>;
  /** Bytes the index takes on disk; for LanceDB the whole table (vectors and index). */
  diskBytes(): Promise<number>;
  /** Later searches use this search-time expansion. */
  useEf(ef: number): Promise<void>;
  /** Whether useEf can take `ef` (JadeVectorDB sets it per collection, once); default every ef. */
  takesEf?(ef: number): boolean;
  /** The ids of the k nearest, for one query, on one thread. */
  search(query: Float32Array): Uint32Array | Promise<Uint32Array>;
  /** Every query with `parallelism` searches at a time; the answers are not kept. */
  searchParallel?(queries: Queries): Promise<void>;
  /** Frees the index; the caller removes the work directory afterwards. */
  close(): Promise<void>;
}

export function createEngine(name: EngineName, workDir: string): SearchEngine {
  switch (name) {
    case "jadevectordb":
      return new JadeEngine(workDir);
    case "usearch":
      return new UsearchEngine(workDir);
    case "hnswlib":
      return new HnswlibEngine(workDir);
    case "lancedb":
      return new LanceEngine(workDir);
  }
}

/** Sum of the sizes of every file under `dir`. */
async function directoryBytes(dir: string): Promise<number> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const sizes = await Promise.all(entries.filter((e) => e.isFile()).map(async (e) => (await stat(path.join(e.parentPath, e.name))).size));
  return sizes.reduce((sum, size) => sum + size, 0);
}

// ---------------------------------------------------------------------------------------------
// JadeVectorDB: a node in this process on its own nats-server, reached through the SDK

const jadeBatchRows = 1_000;
const jadeRequestsInFlight = 4;
/** Searches in flight for the parallel figure: the core benchmark's c=8. */
const jadeSearchesInFlight = 8;

class JadeEngine implements SearchEngine {
  readonly name = "jadevectordb";
  readonly description = `JadeVectorDB ${"(this repository)"}: one node and an embedded nats-server, 1 shard, f32, connectivity ${hnswGraph.connectivity}, expansionAdd ${hnswGraph.expansionAdd}, expansionSearch ${hnswGraph.efDefault} (set per collection: no sweep); upserts of ${jadeBatchRows} through the SDK (msgpack, ${jadeRequestsInFlight} in flight), timed until every point is in the graph; searches through NATS request/reply; ${jadeSearchesInFlight} in flight for the parallel figure; memory leaves out the node's JS heap (bench --suite scale measures the whole process)`;
  readonly buildThreads = "all" as const;
  readonly parallelism = jadeSearchesInFlight;
  private stop: (() => Promise<void>) | undefined;
  private client: JadeClient | undefined;

  constructor(private readonly workDir: string) {}

  async build(train: VectorSet): Promise<void> {
    const nats = await startEmbeddedNats({ dataDir: path.join(this.workDir, "nats") });
    const node = await JadeNode.start({ servers: [nats.url], dataDir: path.join(this.workDir, "node"), log: pino({ level: "warn" }) });
    const client = await JadeClient.connect({ servers: nats.url, timeoutMs: 120_000 });
    this.client = client;
    this.stop = async () => {
      await client.close();
      await node.stop();
      await nats.stop();
    };
    await client.createCollection({ name: "peers", dimension: train.dimension, metric: "l2", shards: 1, index: { ...hnswGraph.graphParams, quantization: "f32" } });
    await withProgress("jadevectordb upsert", train.count, async (advance) => {
      let next = 0;
      let done = 0;
      const sender = async () => {
        for (let from = next; from < train.count; from = next) {
          next = from + jadeBatchRows;
          const to = Math.min(train.count, from + jadeBatchRows);
          const ids = Array.from({ length: to - from }, (_, i) => String(from + i));
          await retryPaced(() => client.upsertColumns("peers", { ids, vectors: train.data.subarray(from * train.dimension, to * train.dimension), requestId: `peers-${from}` }));
          advance((done += to - from));
        }
      };
      await Promise.all(Array.from({ length: jadeRequestsInFlight }, sender));
    });
    await withTicker("jadevectordb indexing", () => indexed(client, train.count));
  }

  async diskBytes(): Promise<number> {
    return directoryBytes(this.workDir);
  }

  takesEf(ef: number): boolean {
    return ef === hnswGraph.efDefault;
  }

  async useEf(ef: number): Promise<void> {
    if (!this.takesEf(ef)) throw new Error(`JadeVectorDB sets expansionSearch per collection; this one has ${hnswGraph.efDefault}`);
  }

  async search(query: Float32Array): Promise<Uint32Array> {
    const { hits } = await this.client!.search("peers", { vector: query, k });
    return Uint32Array.from(hits, (h) => Number(h.id));
  }

  async searchParallel(queries: Queries): Promise<void> {
    let next = 0;
    const loop = async () => {
      for (let q = next++; q < queries.rows.length; q = next++) await this.client!.search("peers", { vector: queries.rows[q]!, k });
    };
    await Promise.all(Array.from({ length: jadeSearchesInFlight }, loop));
  }

  async close(): Promise<void> {
    await this.stop?.();
    this.client = undefined;
  }
}

/** Waits until the collection holds `count` points and its graph absorbed them all. */
async function indexed(client: JadeClient, count: number): Promise<void> {
  for (;;) {
    const c = (await client.clusterStatus()).collections.find((x) => x.name === "peers");
    const replicas = c?.shards.flatMap((s) => s.replicas) ?? [];
    if (replicas.length > 0 && replicas.every((r) => r.count === count && r.pending === 0)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

// ---------------------------------------------------------------------------------------------
// usearch

/** Vectors per add() call: large enough for both threads to stay busy, small enough for a live bar. */
const usearchAddChunkRows = 1_000;
const usearchBuildThreads = 2;
const usearchBatchThreads = 2;

class UsearchEngine implements SearchEngine {
  readonly name = "usearch";
  readonly description = `usearch HNSW, f32, connectivity ${hnswGraph.connectivity}, expansion_add ${hnswGraph.expansionAdd}; add with ${usearchBuildThreads} threads, search 1 thread per query; batch of all queries on ${usearchBatchThreads} threads`;
  readonly buildThreads = usearchBuildThreads;
  readonly parallelism = usearchBatchThreads;
  private built: Index | undefined;
  private active: Index | undefined;
  private savedFile: string | undefined;
  private dimension = 0;

  constructor(private readonly workDir: string) {}

  private newIndex(ef: number): Index {
    return new Index({
      dimensions: this.dimension,
      metric: MetricKind.L2sq,
      quantization: ScalarKind.F32,
      connectivity: hnswGraph.connectivity,
      expansion_add: hnswGraph.expansionAdd,
      expansion_search: ef,
      multi: false,
    });
  }

  async build(train: VectorSet): Promise<void> {
    this.dimension = train.dimension;
    const index = this.newIndex(hnswGraph.efDefault);
    await withProgress("usearch add", train.count, async (advance) => {
      for (let from = 0; from < train.count; from += usearchAddChunkRows) {
        const to = Math.min(train.count, from + usearchAddChunkRows);
        const keys = BigUint64Array.from({ length: to - from }, (_, i) => BigInt(from + i));
        // slice(), not subarray(): usearch reads a typed array from the start of its buffer.
        index.add(keys, train.data.slice(from * train.dimension, to * train.dimension), usearchBuildThreads);
        advance(to);
        await yieldToEventLoop();
      }
    });
    this.built = index;
    this.active = index;
  }

  private saved(): string {
    if (this.savedFile === undefined) {
      const file = path.join(this.workDir, "index.usearch");
      this.built!.save(file);
      this.savedFile = file;
    }
    return this.savedFile;
  }

  async diskBytes(): Promise<number> {
    return (await stat(this.saved())).size;
  }

  async useEf(ef: number): Promise<void> {
    this.active = undefined; // drop the previous copy before loading the next
    if (ef === hnswGraph.efDefault) {
      this.active = this.built;
      return;
    }
    const copy = this.newIndex(ef);
    copy.load(this.saved());
    this.active = copy;
  }

  search(query: Float32Array): Uint32Array {
    return Uint32Array.from(this.active!.search(query, k, 1).keys, Number);
  }

  async searchParallel(queries: Queries): Promise<void> {
    this.active!.search(queries.set.data, k, usearchBatchThreads);
  }

  async close(): Promise<void> {
    this.built = undefined;
    this.active = undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// hnswlib-node

/** hnswlib's default seed for level assignment, kept explicit so reruns build the same graph. */
const hnswlibRandomSeed = 100;
const hnswlibProgressEveryRows = 1_000;

class HnswlibEngine implements SearchEngine {
  readonly name = "hnswlib";
  readonly description = `hnswlib-node HNSW, f32, M ${hnswGraph.connectivity}, efConstruction ${hnswGraph.expansionAdd}; the binding adds on one thread, searches one query at a time, and takes plain arrays only (the Float32Array → number[] copy is inside the timings)`;
  readonly buildThreads = 1;
  private index: hnswlib.HierarchicalNSW | undefined;

  constructor(private readonly workDir: string) {}

  async build(train: VectorSet): Promise<void> {
    const index = new hnswlib.HierarchicalNSW("l2", train.dimension);
    index.initIndex({ maxElements: train.count, m: hnswGraph.connectivity, efConstruction: hnswGraph.expansionAdd, randomSeed: hnswlibRandomSeed });
    await withProgress("hnswlib add", train.count, async (advance) => {
      for (let i = 0; i < train.count; i++) {
        index.addPoint(Array.from(train.data.subarray(i * train.dimension, (i + 1) * train.dimension)), i);
        if ((i + 1) % hnswlibProgressEveryRows === 0 || i + 1 === train.count) {
          advance(i + 1);
          await yieldToEventLoop();
        }
      }
    });
    this.index = index;
  }

  async diskBytes(): Promise<number> {
    const file = path.join(this.workDir, "index.hnswlib");
    this.index!.writeIndexSync(file);
    return (await stat(file)).size;
  }

  async useEf(ef: number): Promise<void> {
    this.index!.setEf(ef);
  }

  search(query: Float32Array): Uint32Array {
    return Uint32Array.from(this.index!.searchKnn(Array.from(query), k).neighbors);
  }

  async close(): Promise<void> {
    this.index = undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// LanceDB

/** Rows per table.add(): each add is a commit (a new fragment and manifest), so not too many. */
const lanceWriteBatchRows = 10_000;
/** One IVF partition: a single HNSW graph over all rows, as the other engines build. */
const lancePartitions = 1;
const lanceParallelQueries = 2;
const lanceTableName = "vectors";

class LanceEngine implements SearchEngine {
  readonly name = "lancedb";
  readonly description = `LanceDB IVF_HNSW_SQ (${lancePartitions} partition, m ${hnswGraph.connectivity}, efConstruction ${hnswGraph.expansionAdd}, 8-bit scalar quantization, no refine: its quantized distances alone rank the results, which caps recall on tightly clustered data), on-disk table; LanceDB sizes its own thread pools; ${lanceParallelQueries} queries in flight for the parallel figure`;
  readonly buildThreads = "all";
  readonly parallelism = lanceParallelQueries;
  private db: Connection | undefined;
  private table: Table | undefined;
  private ef: number = hnswGraph.efDefault;

  constructor(private readonly workDir: string) {}

  private schema(dimension: number) {
    const item = new arrow.Field("item", new arrow.Float32(), true);
    return new arrow.Schema([new arrow.Field("id", new arrow.Int32(), false), new arrow.Field("vector", new arrow.FixedSizeList(dimension, item), false)]);
  }

  /** Rows [from, to) as an Arrow table, built from the Float32Array without per-row objects. */
  private rows(train: VectorSet, from: number, to: number) {
    const schema = this.schema(train.dimension);
    const length = to - from;
    const values = arrow.makeData({ type: new arrow.Float32(), length: length * train.dimension, data: train.data.slice(from * train.dimension, to * train.dimension) });
    const vectors = arrow.makeData({ type: schema.fields[1]!.type, length, nullCount: 0, child: values });
    const ids = arrow.makeData({ type: new arrow.Int32(), length, data: Int32Array.from({ length }, (_, i) => from + i) });
    const struct = arrow.makeData({ type: new arrow.Struct(schema.fields), length, nullCount: 0, children: [ids, vectors] });
    return new arrow.Table([new arrow.RecordBatch(schema, struct)]);
  }

  async build(train: VectorSet): Promise<void> {
    this.db = await connect(path.join(this.workDir, "lancedb"));
    const table = await this.db.createEmptyTable(lanceTableName, this.schema(train.dimension));
    this.table = table;
    await withProgress("lancedb write", train.count, async (advance) => {
      for (let from = 0; from < train.count; from += lanceWriteBatchRows) {
        const to = Math.min(train.count, from + lanceWriteBatchRows);
        await table.add(this.rows(train, from, to));
        advance(to);
      }
    });
    const config = LanceIndex.hnswSq({ distanceType: "l2", numPartitions: lancePartitions, m: hnswGraph.connectivity, efConstruction: hnswGraph.expansionAdd });
    await withTicker("lancedb index", () => table.createIndex("vector", { config }));
  }

  async diskBytes(): Promise<number> {
    return directoryBytes(path.join(this.workDir, "lancedb"));
  }

  async useEf(ef: number): Promise<void> {
    this.ef = ef;
  }

  async search(query: Float32Array): Promise<Uint32Array> {
    // Selecting _distance too avoids Lance's deprecation warning about auto-projected scores.
    const result = await this.table!.vectorSearch(query).distanceType("l2").ef(this.ef).limit(k).select(["id", "_distance"]).toArrow();
    return Uint32Array.from(result.getChild("id")!.toArray() as Int32Array);
  }

  async searchParallel(queries: Queries): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < queries.rows.length) await this.search(queries.rows[next++]!);
    };
    await Promise.all(Array.from({ length: lanceParallelQueries }, worker));
  }

  async close(): Promise<void> {
    this.table?.close();
    this.db?.close();
    this.table = undefined;
    this.db = undefined;
  }
}
