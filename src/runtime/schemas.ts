/**
 * One zod schema per API message; TypeScript types are derived from them.
 * `parse` (checks.ts) turns a zod failure into an `invalid_argument` JadeError.
 */
import { z } from "zod";
import { limits } from "./limits.ts";
import { isJsonObject, payloadIssue } from "./payload.ts";
import { collectionNamePattern, reservedNames } from "./subjects.ts";
import { describeValue, quote, tokenIssue } from "./text.ts";
import { shapeIssue, vectorIssue, type VectorSpace } from "./vectors.ts";

export const Metric = z.enum(["cosine", "l2", "ip"]);
export type Metric = z.infer<typeof Metric>;

export const Quantization = z.enum(["f32", "f16", "i8"]);
export type Quantization = z.infer<typeof Quantization>;

/** A concrete sharding strategy: what a stored CollectionConfig holds (see docs/sharding.md). */
export const ShardingName = z.enum(["hash", "range", "vector"]);
export type ShardingName = z.infer<typeof ShardingName>;
/** What a create request may ask for: a strategy, or `auto`, which is resolved to one at create time. */
export const ShardingRequestName = z.enum(["hash", "range", "vector", "auto"]);
export type ShardingRequestName = z.infer<typeof ShardingRequestName>;

export const CollectionName = z
  .string()
  .regex(collectionNamePattern, "must match ^[a-zA-Z0-9_-]{1,64}$ (a NATS subject token)")
  .refine((n) => !reservedNames.has(n), "is a reserved word");

export const IndexParams = z
  .object({
    connectivity: z.number().int().min(2).max(128).default(16),
    expansionAdd: z.number().int().min(1).max(4096).default(128),
    expansionSearch: z.number().int().min(1).max(4096).default(64),
    quantization: Quantization.default("f32"),
  })
  .strict();
export type IndexParams = z.infer<typeof IndexParams>;

/** The cluster's snapshot interval and point-in-time window when no one set them (actors/config). */
export const snapshotIntervalMsDefault = 30_000;
export const pointInTimeMsDefault = 24 * 3_600_000;

export const SnapshotPolicy = z
  .object({
    everyEntries: z.number().int().min(1).max(1_000_000).default(1_000),
    /** Unset: the cluster's setting (`jade config`, snapshot.intervalMs), live. */
    intervalMs: z.number().int().min(100).max(86_400_000).optional(),
  })
  .strict();
export type SnapshotPolicy = z.infer<typeof SnapshotPolicy>;

/** How long each shard log keeps entries a restore no longer needs (decision 007). */
export const RetentionPolicy = z
  .object({
    /** Point-in-time restore reaches back this far; 0 keeps only what restores need. Unset: the cluster's setting (retention.pointInTimeMs, default 24 h), live. */
    pointInTimeMs: z.number().int().min(0).max(limits.pointInTimeMsMax).optional(),
  })
  .strict();
export type RetentionPolicy = z.infer<typeof RetentionPolicy>;

/**
 * Adds an issue that also stops the refinements of the objects around the value (zod runs
 * them despite custom issues by default): checkShardingFields may then assume a valid
 * `sample`, where a `null` vector used to reach it and answer `internal`.
 */
function refuse(ctx: z.RefinementCtx, message: string, path: PropertyKey[] = []): void {
  ctx.addIssue({ code: "custom", path, message, continue: false });
}

/** A point id (also a range split point): 1 – 256 UTF-8 bytes, well-formed Unicode, no control characters. */
export const PointId = z.string().superRefine((id, ctx) => {
  const issue = tokenIssue(id, limits.idBytesMax);
  if (issue) refuse(ctx, issue);
});

/**
 * A vector: a non-empty array of finite float32 numbers (see vectors.ts; a collection's
 * own rules are checked by `checkVector` once it is known). One plain loop rather than a
 * zod schema per element: a 1,000 × 784 upsert holds 784k numbers, and per-element
 * schemas cost ~0.8 µs each.
 */
export const Vector = z.custom<number[]>().superRefine((value, ctx) => {
  const issue = shapeIssue(value);
  if (issue) refuse(ctx, issue.message, issue.path);
}).meta({ type: "array", items: { type: "number" }, description: "a vector: finite numbers, as many as the collection's dimension" });

/** Little-endian float32 values as bytes (a msgpack bin): how the binary encoding carries vectors (encoding.ts). */
export const Float32Bytes = z.custom<Uint8Array>().superRefine((value, ctx) => {
  if (!(value instanceof Uint8Array)) return refuse(ctx, `must be float32 bytes, got ${describeValue(value)}`);
  if (value.byteLength === 0 || value.byteLength % 4 !== 0) refuse(ctx, `must be a non-empty multiple of 4 bytes (float32 values), got ${value.byteLength}`);
}).meta({ type: "string", contentEncoding: "binary", description: "little-endian float32 values back to back (a msgpack bin; msgpack bodies only)" });

/** A vector as a request may carry it: an array of numbers, or (msgpack) its float32 bytes. */
export const VectorInput = z.custom<number[] | Uint8Array>().superRefine((value, ctx) => {
  if (value instanceof Uint8Array) {
    if (value.byteLength > limits.dimensionMax * 4) return refuse(ctx, `has ${value.byteLength / 4} numbers, at most ${limits.dimensionMax} are allowed`);
    if (value.byteLength === 0 || value.byteLength % 4 !== 0) return refuse(ctx, `must be a non-empty multiple of 4 bytes (float32 values), got ${value.byteLength}`);
    return;
  }
  const issue = shapeIssue(value);
  if (issue) refuse(ctx, issue.message, issue.path);
}).meta({ type: "array", items: { type: "number" }, description: "a vector: finite numbers, as many as the collection's dimension (in msgpack also a bin of float32 values)" });
export type VectorInput = z.infer<typeof VectorInput>;

export const CreateCollectionRequest = z
  .object({
    name: CollectionName,
    dimension: z.number().int().min(1).max(limits.dimensionMax),
    metric: Metric,
    shards: z.number().int().min(1).max(limits.shardsMax).default(1),
    replicas: z.number().int().min(1).max(limits.replicasMax).default(1),
    sharding: ShardingRequestName.default("hash"),
    /** range: shards − 1 strictly increasing ids; shard = number of split points ≤ id. */
    splitPoints: z.array(PointId).max(limits.shardsMax - 1).optional(),
    /** vector/auto: training vectors for k-means (not stored). */
    sample: z.array(Vector).max(limits.shardingSampleVectorsMax).optional(),
    /** vector/auto: the shards' centroids, instead of a sample. */
    centroids: z.array(Vector).max(limits.shardsMax).optional(),
    index: IndexParams.default(IndexParams.parse({})),
    snapshot: SnapshotPolicy.default(SnapshotPolicy.parse({})),
    retention: RetentionPolicy.default(RetentionPolicy.parse({})),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.index.quantization === "i8" && c.metric !== "cosine") {
      ctx.addIssue({
        code: "custom",
        path: ["index", "quantization"],
        message: "i8 quantization normalises vectors, so it is only valid with metric cosine",
      });
    }
    checkShardingFields(c, (path, message) => ctx.addIssue({ code: "custom", path, message }));
  });
export type CreateCollectionRequest = z.input<typeof CreateCollectionRequest>;
/** A create request after defaults: what the catalog turns into a CollectionConfig. */
export type CreateCollectionParsed = z.output<typeof CreateCollectionRequest>;

/** The sharding fields' rules, one issue per broken rule (the first offending element only). */
function checkShardingFields(
  c: {
    dimension: number;
    metric: Metric;
    shards: number;
    sharding: ShardingRequestName;
    splitPoints?: string[] | undefined;
    sample?: number[][] | undefined;
    centroids?: number[][] | undefined;
    index: { quantization: Quantization };
  },
  issue: (path: (string | number)[], message: string) => void,
): void {
  if (c.sharding === "range") {
    if (c.splitPoints === undefined) {
      issue(["splitPoints"], `is required with sharding range: ${c.shards - 1} strictly increasing ids (shards − 1)`);
    } else if (c.splitPoints.length !== c.shards - 1) {
      issue(["splitPoints"], `must hold shards − 1 = ${c.shards - 1} ids, got ${c.splitPoints.length}`);
    } else {
      const bad = c.splitPoints.findIndex((p, i) => i > 0 && !(c.splitPoints![i - 1]! < p));
      if (bad > 0) issue(["splitPoints", bad], "must be strictly increasing (JS string order): greater than the previous split point");
    }
  } else if (c.splitPoints !== undefined) {
    issue(["splitPoints"], "is only valid with sharding range");
  }

  const byVector = c.sharding === "vector" || c.sharding === "auto";
  for (const field of ["sample", "centroids"] as const) {
    if (c[field] !== undefined && !byVector) issue([field], "is only valid with sharding vector or auto");
  }
  if (!byVector) return;
  if (c.sample !== undefined && c.centroids !== undefined) {
    issue(["sample"], "give either sample or centroids, not both");
    return;
  }
  if (c.sharding === "vector" && c.sample === undefined && c.centroids === undefined) {
    issue(["sample"], "sharding vector needs a sample (training vectors for k-means) or centroids");
  }
  // Training vectors and centroids live in the collection's space: the same rules as its points.
  const space: VectorSpace = { dimension: c.dimension, metric: c.metric, quantization: c.index.quantization };
  const checkVectors = (field: "sample" | "centroids", vectors: number[][]) => {
    for (let i = 0; i < vectors.length; i++) {
      const bad = vectorIssue(vectors[i]!, space);
      if (bad) return void issue([field, i, ...bad.path], bad.message);
    }
    return true;
  };
  if (c.sample !== undefined) {
    if (c.sample.length < c.shards) issue(["sample"], `must hold at least shards = ${c.shards} vectors, got ${c.sample.length}`);
    else if (c.sample.length * c.dimension > limits.shardingSampleValuesMax) {
      issue(
        ["sample"],
        `holds ${c.sample.length * c.dimension} numbers (vectors × dimension), at most ${limits.shardingSampleValuesMax} are allowed`,
      );
    } else checkVectors("sample", c.sample);
  }
  if (c.centroids !== undefined) {
    if (c.centroids.length !== c.shards) issue(["centroids"], `must hold exactly shards = ${c.shards} vectors, got ${c.centroids.length}`);
    else if (checkVectors("centroids", c.centroids) && c.metric === "ip") {
      const zero = c.centroids.findIndex((v) => v.every((x) => x === 0));
      if (zero >= 0) issue(["centroids", zero], "must not be all zeros with metric ip (it has no direction)");
    }
  }
}

/** What is stored in KV `jade_collections` and returned by collections.get. */
export const CollectionConfig = z.object({
  name: z.string(),
  dimension: z.number().int(),
  metric: Metric,
  shards: z.number().int(),
  replicas: z.number().int(),
  sharding: ShardingName,
  /** Set when the request asked for `auto`; `sharding` holds what it resolved to. */
  shardingRequested: ShardingRequestName.optional(),
  /** range: the shards − 1 split points. */
  splitPoints: z.array(z.string()).optional(),
  /** vector: one centroid per shard (unit length for cosine/ip when trained). */
  centroids: z.array(z.array(z.number())).optional(),
  index: IndexParams,
  snapshot: SnapshotPolicy,
  /** Configs stored before retention existed read as the default. */
  retention: RetentionPolicy.default(RetentionPolicy.parse({})),
  createdAt: z.string(),
  /** A new incarnation per create, so a re-created collection never reads an old one's snapshots. */
  uid: z.string(),
  /**
   * Set while a restore builds the collection (decision 008): `loading` (its logs and snapshots
   * are being written; nothing else sees it), then `starting` (replicas load it; the API still
   * refuses it). Removed once every shard serves exactly what was restored.
   */
  restoring: z.object({ id: z.string(), phase: z.enum(["loading", "starting"]) }).strict().optional(),
});
export type CollectionConfig = z.infer<typeof CollectionConfig>;

export const NameRequest = z.object({ name: CollectionName }).strict();

/** `collections.update`: the settings that may change after create (the rest shape the data). */
export const UpdateCollectionRequest = z
  .object({
    name: CollectionName,
    retention: RetentionPolicy,
  })
  .strict();
export type UpdateCollectionRequest = z.input<typeof UpdateCollectionRequest>;
export const EmptyRequest = z.object({}).strict();

/** A JSON object stored exactly as sent, within the limits of payload.ts. */
export const Payload = z.custom<Record<string, unknown>>().superRefine((value, ctx) => {
  const issue = payloadIssue(value);
  if (issue) refuse(ctx, issue.message, issue.path);
}).meta({ type: "object", description: "a JSON object stored with the point, exactly as sent" });
export type Payload = z.infer<typeof Payload>;

export const Point = z.object({ id: PointId, vector: VectorInput, payload: Payload.optional() }).strict();
export type Point = z.infer<typeof Point>;

export const WriteConsistency = z.enum(["log", "one", "quorum", "all"]);
export type WriteConsistency = z.infer<typeof WriteConsistency>;
export const ReadConsistency = z.enum(["eventual", "session", "strong"]);
export type ReadConsistency = z.infer<typeof ReadConsistency>;
/** What a request that names no level gets (the CLI shows the same defaults). */
export const writeConsistencyDefault: WriteConsistency = "log";
export const readConsistencyDefault: ReadConsistency = "eventual";

/**
 * `{<shard>: seq}`: the log position a write reached on each shard it touched. Shards are
 * written as the writer writes them (`"0"`, `"12"`, never `"012"`), so a key that names no
 * shard is refused rather than ignored; whether the shard exists and the sequence is
 * within its log is checked against the collection (`checkToken`, the read router).
 */
export const SessionToken = z.custom<Record<string, number>>().superRefine((value, ctx) => {
  if (!isJsonObject(value)) return refuse(ctx, 'must be an object {"<shard>": sequence}');
  const keys = Object.keys(value);
  if (keys.length > limits.shardsMax) return refuse(ctx, `names ${keys.length} shards, at most ${limits.shardsMax} exist`);
  for (const key of keys) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(key)) {
      return refuse(ctx, `key ${quote(key)} is not a shard number (0, 1, 2, …)`);
    }
    const seq = value[key];
    if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 0) {
      return refuse(ctx, `must be a log sequence: an integer from 0 to 2^53 − 1, got ${typeof seq === "number" ? seq : typeof seq}`, [key]);
    }
  }
}).meta({ type: "object", additionalProperties: { type: "integer", minimum: 0 }, description: "a session token: {\"<shard>\": sequence}, from a write's reply" });
export type SessionToken = z.infer<typeof SessionToken>;

/** Printable ASCII: the id becomes part of a `Nats-Msg-Id` header, where CR/LF would end it. */
const RequestId = z
  .string()
  .min(1)
  .max(limits.requestIdBytesMax)
  .regex(/^[\x21-\x7e]+$/, "must be printable ASCII without spaces (it becomes a JetStream message id)");
const TimeoutMs = z.number().int().min(1).max(limits.searchTimeoutMsMax);

export const UpsertRequest = z
  .object({
    points: z.array(Point).min(1).max(limits.pointsPerRequestMax),
    consistency: WriteConsistency.default(writeConsistencyDefault),
    /** Client-chosen id: a retried request with the same id is applied once (JetStream dedup window). */
    requestId: RequestId.optional(),
    timeoutMs: TimeoutMs.optional(),
    /** Every shard or none: run as a transaction of this one upsert (decision 013). */
    atomic: z.boolean().optional(),
  })
  .strict();
export type UpsertRequest = z.input<typeof UpsertRequest>;

/**
 * An upsert in columns (msgpack): `vectors` holds every point's float32 values back to back,
 * `payloads` one object or null per id. The bulk writers' form: no object per point.
 */
export const UpsertColumnsRequest = z
  .object({
    ids: z.array(PointId).min(1).max(limits.pointsPerRequestMax),
    vectors: Float32Bytes,
    payloads: z.array(Payload.nullable()).optional(),
    consistency: WriteConsistency.default(writeConsistencyDefault),
    requestId: RequestId.optional(),
    timeoutMs: TimeoutMs.optional(),
    atomic: z.boolean().optional(),
  })
  .strict()
  .superRefine((r, ctx) => {
    if (r.payloads !== undefined && r.payloads.length !== r.ids.length) {
      refuse(ctx, `must hold one payload (or null) per id: ${r.ids.length}, got ${r.payloads.length}`, ["payloads"]);
    }
  });
export type UpsertColumnsRequest = z.input<typeof UpsertColumnsRequest>;

export const DeleteRequest = z
  .object({
    ids: z.array(PointId).min(1).max(limits.idsPerRequestMax),
    consistency: WriteConsistency.default(writeConsistencyDefault),
    requestId: RequestId.optional(),
    timeoutMs: TimeoutMs.optional(),
  })
  .strict();
export type DeleteRequest = z.input<typeof DeleteRequest>;

const ReadOptions = {
  consistency: ReadConsistency.default(readConsistencyDefault),
  token: SessionToken.optional(),
  timeoutMs: TimeoutMs.optional(),
};

export const GetRequest = z
  .object({ ids: z.array(PointId).min(1).max(limits.idsPerRequestMax), withVectors: z.boolean().default(false), ...ReadOptions })
  .strict();
export type GetRequest = z.input<typeof GetRequest>;

/** Filters are parsed by runtime/filter.ts (their own errors, with paths); the schema only documents them. */
const FilterInput = z.unknown().meta({ type: "object", description: "a filter on payload fields (docs/api.md#filters)" });

export const SearchRequest = z
  .object({
    vector: VectorInput,
    k: z.number().int().min(1, "must be at least 1").max(limits.kMax, `must be at most ${limits.kMax}`),
    /** Validated by parseFilter (filter.ts), which builds the normalized form. */
    filter: FilterInput.optional(),
    withPayload: z.boolean().default(false),
    withVectors: z.boolean().default(false),
    /** Vector sharding: probe only the shards of the nprobe nearest centroids (all when absent); ignored otherwise. */
    nprobe: z.number().int().min(1, "must be at least 1").max(limits.shardsMax, `must be at most ${limits.shardsMax}`).optional(),
    ...ReadOptions,
  })
  .strict();
export type SearchRequest = z.input<typeof SearchRequest>;

export const CountRequest = z
  .object({ filter: FilterInput.optional(), ...ReadOptions })
  .strict();
export type CountRequest = z.input<typeof CountRequest>;

/** An ingestion record is one point or `{points:[…]}`; each point of a batch is validated (and dead-lettered) alone. */
export const IngestBatch = z.object({ points: z.array(z.unknown()).min(1).max(limits.pointsPerRequestMax) }).strict();
/** An ingestion record in columns (msgpack); each row is validated (and dead-lettered) alone, like a batch's points. */
export const IngestColumns = z
  .object({ ids: z.array(z.unknown()).min(1).max(limits.pointsPerRequestMax), vectors: Float32Bytes, payloads: z.array(z.unknown()).optional() })
  .strict()
  .superRefine((r, ctx) => {
    if (r.payloads !== undefined && r.payloads.length !== r.ids.length) {
      refuse(ctx, `must hold one payload (or null) per id: ${r.ids.length}, got ${r.payloads.length}`, ["payloads"]);
    }
  });

export interface Hit {
  id: string;
  distance: number;
  payload?: Payload;
  vector?: number[];
}

export interface SearchResult {
  hits: Hit[];
  partial: boolean;
  shards: { total: number; answered: number };
}

export interface StoredPoint {
  id: string;
  vector?: number[];
  payload?: Payload;
  /** The log position that wrote the point (its shard's sequence and place in the entry): what a transaction's `conditions` compare. */
  version?: number;
}
