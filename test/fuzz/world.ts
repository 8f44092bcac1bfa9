/**
 * What the fuzzer knows about the node it attacks: the reference collections
 * (written once, then only read, attacked with refused writes, and compared with
 * their first reading at the end), the scratch collections every generated write
 * goes to, and the pool of names that generated creates and drops cycle through.
 */
import type { JadeClient } from "../../src/client/client.ts";
import type { CreateCollectionRequest, Metric, Quantization } from "../../src/runtime/schemas.ts";
import { randomPoints } from "../support/harness.ts";
import { setUpBackups, type BackupWorld } from "./backups.ts";

export type Role = "reference" | "scratch";

export interface CollectionSpec {
  name: string;
  role: Role;
  dimension: number;
  metric: Metric;
  quantization: Quantization;
  shards: number;
  sharding: "hash" | "range" | "vector";
  create: CreateCollectionRequest;
}

export interface World {
  nodeId: string;
  references: CollectionSpec[];
  scratch: CollectionSpec[];
  /** Where ingestion records go (the run's first phase): every good one has an id of its own. */
  ingest: CollectionSpec[];
  /** Names generated creates, restores and drops use; none exists when the run starts. */
  pool: string[];
  /** Collection uid by name, for replica requests (learned at setup). */
  uids: Map<string, string>;
  /** The backups taken at setup and the places backup requests may name (all below a temp dir of the run). */
  backups: BackupWorld;
}

function spec(name: string, role: Role, dimension: number, metric: Metric, quantization: Quantization, shards: number, extra: Partial<CreateCollectionRequest> = {}): CollectionSpec {
  const sharding = (extra.sharding as CollectionSpec["sharding"] | undefined) ?? "hash";
  return {
    name,
    role,
    dimension,
    metric,
    quantization,
    shards,
    sharding,
    create: { name, dimension, metric, shards, sharding, index: { quantization }, ...extra },
  };
}

export const referenceSpecs: readonly CollectionSpec[] = [
  spec("fz-ref-cos", "reference", 6, "cosine", "f32", 3),
  spec("fz-ref-l2h", "reference", 6, "l2", "f16", 2, { sharding: "vector", centroids: [[1, 1, 1, 1, 1, 1], [-1, -1, -1, -1, -1, -1]] }),
  spec("fz-ref-i8", "reference", 6, "cosine", "i8", 1),
];

export const scratchSpecs: readonly CollectionSpec[] = [
  spec("fz-s-cos", "scratch", 4, "cosine", "f32", 2),
  spec("fz-s-l2h", "scratch", 4, "l2", "f16", 1),
  spec("fz-s-ip", "scratch", 4, "ip", "f32", 2, { sharding: "range", splitPoints: ["m"] }),
  spec("fz-s-i8", "scratch", 4, "cosine", "i8", 1),
];

export const ingestSpecs: readonly CollectionSpec[] = [spec("fz-ing-cos", "scratch", 4, "cosine", "f32", 2), spec("fz-ing-l2h", "scratch", 4, "l2", "f16", 1)];

export const poolNames: readonly string[] = ["fz-p0", "fz-p1", "fz-p2"];

/** Points per reference collection. */
export const referencePointsCount = 120;

export function referencePoints(s: CollectionSpec): { id: string; vector: number[]; payload: Record<string, unknown> }[] {
  const vectors = randomPoints(referencePointsCount, s.dimension, s.name.length * 7919);
  const colors = ["red", "green", "blue"];
  return vectors.map((vector, i) => ({
    id: `r${i}`,
    vector,
    payload: { color: colors[i % 3]!, n: i, tags: [`t${i % 5}`, `t${i % 7}`], meta: { even: i % 2 === 0, constructor: "data" } },
  }));
}

/**
 * Creates every reference and scratch collection, writes the reference points, and takes the
 * setup backups into `backupRoot` (a temp dir of the run).
 */
export async function setUpWorld(client: JadeClient, nodeId: string, backupRoot: string): Promise<World> {
  const uids = new Map<string, string>();
  for (const s of [...referenceSpecs, ...scratchSpecs, ...ingestSpecs]) {
    const config = await client.createCollection(s.create);
    uids.set(s.name, config.uid);
  }
  for (const s of referenceSpecs) {
    await client.upsert(s.name, { points: referencePoints(s), consistency: "all" });
  }
  const backups = await setUpBackups(client, backupRoot);
  return { nodeId, references: [...referenceSpecs], scratch: [...scratchSpecs], ingest: [...ingestSpecs], pool: [...poolNames], uids, backups };
}

/** Everything a reader can see of the reference collections, read at strong consistency. */
export async function readReferences(client: JadeClient, world: World): Promise<unknown> {
  const reading: Record<string, unknown> = {};
  for (const s of world.references) {
    const points = referencePoints(s);
    const ids = points.map((p) => p.id);
    const queries = points.filter((_, i) => i % 15 === 0).map((p) => p.vector);
    reading[s.name] = {
      get: await client.get(s.name, { ids, withVectors: true, consistency: "strong" }),
      count: await client.count(s.name, { consistency: "strong" }),
      countRed: await client.count(s.name, { filter: { color: "red" }, consistency: "strong" }),
      searches: await Promise.all(queries.map((vector) => client.search(s.name, { vector, k: 10, withPayload: true, consistency: "strong" }))),
      filtered: await client.search(s.name, { vector: queries[0]!, k: 5, filter: { "meta.even": true }, consistency: "strong" }),
    };
  }
  return reading;
}

/** A cheap reading for after each batch that could have written: counts and one search per reference collection. */
export async function glanceReferences(client: JadeClient, world: World): Promise<unknown> {
  return Promise.all(
    world.references.map(async (s) => {
      const probe = referencePoints(s)[0]!.vector;
      const [count, search] = await Promise.all([
        client.count(s.name, { consistency: "strong" }),
        client.search(s.name, { vector: probe, k: 5, consistency: "strong" }),
      ]);
      return { name: s.name, count: count.count, hits: search.hits };
    }),
  );
}
