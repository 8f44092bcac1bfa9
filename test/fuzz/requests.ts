/**
 * Valid requests for every subject a client can reach: the API (collections,
 * points, transactions, cluster status, admin and transaction records, backups and restores: backups.ts), the same API
 * addressed to one node, the coordinator's subjects and the replicas' node-to-node
 * subjects. Each request says what the properties may expect of its reply.
 */
import fc from "fast-check";
import type { Body, Json } from "./body.ts";
import { filterArb, idArb, payloadArb, timeoutArb, vectorArb } from "./values.ts";
import type { Metric } from "../../src/runtime/schemas.ts";
import type { CollectionSpec, World } from "./world.ts";
import { backupRequest } from "./backups.ts";

/**
 * - `valid`: documented as valid, so never refused as invalid (state errors such as
 *   not_found or unavailable are fine);
 * - `any`: anything documented, never `internal`;
 * - `refused`: a write to a reference collection that must be refused whole;
 * - `invalid`: breaks a documented rule, so answered `invalid_argument` (or a retryable
 *   code, when the coordinator is between leaders), never accepted.
 */
export type Expectation = "valid" | "any" | "refused" | "invalid";

export interface FuzzRequest {
  /** What it exercises, for the run's tally (`search`, `upsert.mutated`, `replica.count`, …). */
  family: string;
  subject: string;
  body: Body;
  expect: Expectation;
  /**
   * `publish`: a JetStream publish with no reply from a node (a stray shard-log entry);
   * `http`: the API request sent to the node's REST mirror (http.ts).
   */
  transport: "request" | "publish" | "http";
  /** It could change a reference collection if the node let it: check them after its batch. */
  touchesReference: boolean;
  /** An API request in the binary encoding: sent with `Jade-Encoding: msgpack`, answered in msgpack. */
  encoding?: "msgpack";
  /** A directory every `dir` in the body must stay below, mutated or not (backup locations). */
  confine?: string;
}

const writeConsistency = fc.constantFrom("log", "one", "quorum", "all");

/** Optional fields: each is present or absent. */
function optional<T extends Record<string, fc.Arbitrary<Json>>>(fields: T): fc.Arbitrary<Record<string, Json>> {
  return fc.record(fields, { requiredKeys: [] }) as fc.Arbitrary<Record<string, Json>>;
}

function readOptions(s: CollectionSpec): fc.Arbitrary<Record<string, Json>> {
  const shardKeys = Array.from({ length: s.shards }, (_, i) => String(i));
  return fc.oneof(
    optional({ consistency: fc.constantFrom("eventual", "strong"), timeoutMs: timeoutArb }),
    fc
      .tuple(fc.subarray(shardKeys), fc.option(timeoutArb, { nil: undefined }))
      .map(([keys, timeoutMs]): Record<string, Json> => {
        const token = Object.fromEntries(keys.map((k) => [k, 0]));
        return timeoutMs === undefined ? { consistency: "session", token } : { consistency: "session", token, timeoutMs };
      }),
  );
}

function pointArb(s: CollectionSpec): fc.Arbitrary<Json> {
  return fc
    .tuple(idArb, vectorArb(s), fc.option(payloadArb, { nil: undefined }))
    .map(([id, vector, payload]): Json => (payload === undefined ? { id, vector } : { id, vector, payload }));
}

/** A transaction (decision 013): upserts and deletes, conditions on versions or existence, as documented. */
function transactionArb(s: CollectionSpec): fc.Arbitrary<Json> {
  const op = fc.oneof(
    fc.array(pointArb(s), { minLength: 1, maxLength: 4 }).map((points): Json => ({ op: "upsert", points })),
    fc.array(idArb, { minLength: 1, maxLength: 4 }).map((ids): Json => ({ op: "delete", ids })),
  );
  const condition = fc.oneof(
    fc.tuple(idArb, fc.boolean()).map(([id, exists]): Json => ({ id, exists })),
    fc.tuple(idArb, fc.nat({ max: 2 ** 40 })).map(([id, version]): Json => ({ id, version })),
  );
  return fc
    .tuple(fc.array(op, { minLength: 1, maxLength: 3 }), optional({ conditions: fc.array(condition, { maxLength: 3 }), timeoutMs: timeoutArb, consistency: writeConsistency }))
    .map(([ops, o]) => ({ ops, ...o }));
}

function collectionRequest(s: CollectionSpec, world: World): fc.Arbitrary<FuzzRequest> {
  const reads = {
    get: fc.tuple(fc.array(idArb, { minLength: 1, maxLength: 8 }), optional({ withVectors: fc.boolean() }), readOptions(s)).map(([ids, o, r]) => ({ ids, ...o, ...r })),
    search: fc
      .tuple(
        vectorArb(s),
        fc.oneof(fc.integer({ min: 1, max: 20 }), fc.constant(1000)),
        optional({
          filter: filterArb,
          withPayload: fc.boolean(),
          withVectors: fc.boolean(),
          ...(s.sharding === "vector" ? { nprobe: fc.integer({ min: 1, max: s.shards }) } : {}),
        }),
        readOptions(s),
      )
      .map(([vector, k, o, r]) => ({ vector, k, ...o, ...r })),
    count: fc.tuple(optional({ filter: filterArb }), readOptions(s)).map(([o, r]) => ({ ...o, ...r })),
  };
  const writes = {
    upsert: fc
      .tuple(fc.array(pointArb(s), { minLength: 1, maxLength: 8 }), optional({ consistency: writeConsistency, requestId: fc.uuid(), timeoutMs: timeoutArb }))
      .map(([points, o]) => ({ points, ...o })),
    delete: fc
      .tuple(fc.array(idArb, { minLength: 1, maxLength: 8 }), optional({ consistency: writeConsistency, requestId: fc.uuid(), timeoutMs: timeoutArb }))
      .map(([ids, o]) => ({ ids, ...o })),
    transaction: transactionArb(s),
  };
  const ops: Record<string, fc.Arbitrary<Json>> = s.role === "reference" ? reads : { ...reads, ...writes };
  return fc.constantFrom(...Object.keys(ops)).chain((op) =>
    fc.tuple(ops[op]!, fc.boolean(), fc.boolean()).map(([json, direct, binary]) => {
      const request = api(world, `${s.name}.${op}`, op, { json }, direct);
      return binary ? { ...request, family: `${op}.msgpack`, body: { msgpack: binaryBody(op, json) }, encoding: "msgpack" as const } : request;
    }),
  );
}

/** The float32 bytes of a vector, as the binary encoding carries it. */
export function vectorBytes(vector: readonly number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(vector).buffer);
}

/**
 * A request as the SDK sends it in msgpack: an upsert in columns (or, when its vectors
 * differ in length, points with float32 vectors), a search with a float32 query.
 */
function binaryBody(op: string, json: Json): unknown {
  const body = json as Record<string, Json>;
  if (op === "search") return { ...body, vector: vectorBytes(body["vector"] as number[]) };
  if (op !== "upsert") return body;
  const { points, ...rest } = body as { points: { id: string; vector: number[]; payload?: Json }[] };
  const dim = points[0]!.vector.length;
  if (points.some((p) => p.vector.length !== dim)) return { ...rest, points: points.map((p) => ({ ...p, vector: vectorBytes(p.vector) })) };
  const payloads = points.some((p) => p.payload !== undefined) ? points.map((p) => p.payload ?? null) : undefined;
  return { ...rest, ids: points.map((p) => p.id), vectors: vectorBytes(points.flatMap((p) => p.vector)), ...(payloads ? { payloads } : {}) };
}

/** A request on `jade.v1.<tail>`, or (direct) the same on `jade.n.<node>.v1.<tail>`. */
function api(world: World, tail: string, family: string, body: Body, direct = false, expect: Expectation = "valid"): FuzzRequest {
  const subject = direct ? `jade.n.${world.nodeId}.v1.${tail}` : `jade.v1.${tail}`;
  return { family, subject, body, expect, transport: "request", touchesReference: false };
}

function createArb(world: World): fc.Arbitrary<Json> {
  return fc
    .record({
      name: fc.constantFrom(...world.pool),
      dimension: fc.integer({ min: 1, max: 8 }),
      metric: fc.constantFrom("cosine", "l2", "ip"),
      shards: fc.integer({ min: 1, max: 3 }),
      strategy: fc.constantFrom("hash", "range", "vector", "auto"),
      index: optional({ connectivity: fc.integer({ min: 2, max: 32 }), expansionAdd: fc.integer({ min: 1, max: 256 }), expansionSearch: fc.integer({ min: 1, max: 256 }) }),
      f16: fc.boolean(),
      replicas: fc.constantFrom(1, 1, 1, 2),
      snapshot: optional({ everyEntries: fc.integer({ min: 1, max: 1_000_000 }), intervalMs: fc.integer({ min: 100, max: 86_400_000 }) }),
      retention: optional({ pointInTimeMs: fc.integer({ min: 0, max: 30 * 86_400_000 }) }),
      // A k-means sample instead of centroids (vector, auto); its vectors are drawn for the largest dimension and cut.
      sample: fc.option(fc.array(vectorArb({ dimension: 8, metric: "cosine" }), { minLength: 3, maxLength: 12 }), { nil: undefined }),
    })
    .map(({ name, dimension, metric, shards, strategy, index, f16, replicas, snapshot, retention, sample }) => {
      const request: Record<string, Json> = { name, dimension, metric, shards, replicas, sharding: strategy, index: { ...index, quantization: f16 ? "f16" : "f32" }, snapshot, retention };
      if (strategy === "range") request["splitPoints"] = Array.from({ length: shards - 1 }, (_, i) => `k${i}`);
      const byVector = strategy === "vector" || strategy === "auto";
      if (byVector && sample !== undefined) request["sample"] = sample.map((v) => v.slice(0, dimension)).map((v) => (v.every((x) => Math.abs(x) < 1e-3) ? [1, ...v.slice(1)] : v));
      // Else one centroid per shard along its own axis (a direction for cosine and ip); auto without either is hash.
      else if (strategy === "vector") request["centroids"] = Array.from({ length: shards }, (_, i) => Array.from({ length: dimension }, (_, j) => (j === i % dimension ? (i < dimension ? 1 : -1) : 0)));
      return request;
    });
}

function catalogRequest(world: World): fc.Arbitrary<FuzzRequest> {
  const known = [...world.references, ...world.scratch].map((s) => s.name);
  return fc.oneof(
    { weight: 2, arbitrary: createArb(world).map((json) => api(world, "collections.create", "collections.create", { json })) },
    { weight: 1, arbitrary: fc.constant(api(world, "collections.list", "collections.list", { json: {} })) },
    { weight: 2, arbitrary: fc.constantFrom(...known, ...world.pool, "fz-none").map((name) => api(world, "collections.get", "collections.get", { json: { name } })) },
    { weight: 1, arbitrary: fc.constantFrom(...world.pool, "fz-none").map((name) => api(world, "collections.drop", "collections.drop", { json: { name } })) },
    // Retention of the pool's collections (the references keep theirs): valid windows, and values just out of range or of the wrong type.
    {
      weight: 1,
      arbitrary: fc
        .record({
          name: fc.constantFrom(...world.pool, "fz-none"),
          pointInTimeMs: fc.oneof(
            fc.integer({ min: 0, max: 30 * 86_400_000 }).map((ms) => ({ ms: ms as Json, expect: "valid" as const })),
            fc.constantFrom<Json>(-1, 30 * 86_400_000 + 1, 1.5, "1h", null).map((ms) => ({ ms, expect: "refused" as const })),
          ),
        })
        // A pool collection may not exist at that moment (not_found is then the right answer): only a bad window must be refused.
        .map(({ name, pointInTimeMs: { ms, expect } }) =>
          api(world, "collections.update", "collections.update", { json: { name, retention: { pointInTimeMs: ms } } }, false, expect === "refused" ? "refused" : "any"),
        ),
    },
    { weight: 1, arbitrary: fc.constant(api(world, "cluster.status", "cluster.status", { json: {} })) },
  );
}

const ghostNode = fc.constantFrom("fz-ghost-a", "fz-ghost-b", "fz-ghost-c");
const txnId = fc.constantFrom("t-none", "tzzzzzzzz000000000000", "x".repeat(64), "_");

/** Admin bodies by operation. Never the real node for drain or remove: the run needs it serving. */
function adminBodies(world: World): Record<string, fc.Arbitrary<Json>> {
  const migrationId = fc.constantFrom("fz-s-cos.0.0123456789abcdef", "nope");
  return {
    drain: ghostNode.map((node) => ({ node })),
    undrain: fc.oneof(ghostNode, fc.constant(world.nodeId)).map((node) => ({ node })),
    remove: ghostNode.map((node) => ({ node })),
    move: fc.tuple(fc.constantFrom(...world.scratch.map((s) => s.name)), fc.integer({ min: 0, max: 1 }), ghostNode, fc.constantFrom(world.nodeId, "fz-ghost-d")).map(([collection, shard, from, to]) => ({ collection, shard, from, to })),
    rebalance: fc.constant({}),
    migrations: fc.constant({}),
    pause: migrationId.map((id) => ({ id })),
    resume: migrationId.map((id) => ({ id })),
    cancel: migrationId.map((id) => ({ id })),
    "keys.create": fc.record({
      name: fc.string({ minLength: 1, maxLength: 8 }),
      scopes: fc.array(fc.record({ collection: fc.constantFrom("*", ...world.scratch.map((s) => s.name)), access: fc.constantFrom("read", "write", "admin") }), { minLength: 1, maxLength: 3 }),
    }),
    "keys.list": fc.constant({}),
    "keys.revoke": fc.constantFrom("abcdefghijkl", "000000000000").map((id) => ({ id })),
    "config.get": fc.constant({}),
    "config.history": fc.constant({}),
    // Settings the run can live with (not heartbeats, rate limits or the log level, which would
    // change what the other requests see): valid values, written while everything else runs.
    "config.set": fc
      .record(
        {
          "migration.concurrentMax": fc.integer({ min: 1, max: 8 }),
          "snapshot.intervalMs": fc.integer({ min: 1_000, max: 86_400_000 }),
          "retention.pointInTimeMs": fc.integer({ min: 0, max: 30 * 86_400_000 }),
          "replica.transferBytesPerSecMax": fc.integer({ min: 0, max: 1 << 30 }),
        },
        { requiredKeys: [] },
      )
      .map((set): Json => (Object.keys(set).length === 0 ? { unset: ["migration.concurrentMax"] } : { set: set as Record<string, Json> })),
    // A revision the run wrote, or one it never did (not_found).
    "config.rollback": fc.integer({ min: 1, max: 200 }).map((revision) => ({ revision })),
    "txns.list": optional({
      collection: fc.constantFrom(...[...world.references, ...world.scratch].map((s) => s.name), "fz-none"),
      state: fc.constantFrom("preparing", "committed", "aborted"),
      open: fc.boolean(),
      limit: fc.integer({ min: 1, max: 1_000 }),
    }),
    // The run's own transactions have ids no generator can know: these are well-formed ids of none (not_found).
    "txns.get": txnId.map((id) => ({ id })),
    "txns.abort": txnId.map((id) => ({ id })),
  };
}

function adminRequest(world: World): fc.Arbitrary<FuzzRequest> {
  const bodies = adminBodies(world);
  return fc.constantFrom(...Object.keys(bodies)).chain((op) =>
    fc.tuple(bodies[op]!, fc.constantFrom("api", "coordinator")).map(([json, via]): FuzzRequest => {
      // A move names its source replica: one the cluster does not hold is refused as invalid_argument;
      // the coordinator refuses keys.*, config.* and txns.* (any gateway serves them).
      const servedByAny = ["keys.", "config.", "txns."].some((prefix) => op.startsWith(prefix));
      const expect: Expectation = op === "move" || (via === "coordinator" && servedByAny) ? "any" : "valid";
      return via === "api"
        ? api(world, `admin.${op}`, `admin.${op}`, { json }, false, expect)
        : { family: `coordinator.${op}`, subject: `jade.coordinator.${op}`, body: { json }, expect, transport: "request", touchesReference: false };
    }),
  );
}

/** Subjects under `jade.v1.` that name no operation: each must be answered `invalid_argument`. */
function unknownSubject(world: World): fc.Arbitrary<FuzzRequest> {
  return fc
    .constantFrom("fz-ref-cos.frobnicate", "admin.frob", "collections.frob", "cluster.frob", "fz-s-cos.a.b", "x", "collections", "admin.drain.x", "cluster.status.extra")
    .map((tail) => ({ ...api(world, tail, "unknown-subject", { json: {} }), expect: "any" as const }));
}

/** Node-to-node replica requests (msgpack), as another node's router would send them. */
function replicaRequest(world: World): fc.Arbitrary<FuzzRequest> {
  const all = [...world.references, ...world.scratch];
  return fc.constantFrom(...all).chain((s) =>
    fc
      .tuple(
        fc.integer({ min: 0, max: s.shards - 1 }),
        fc.constantFrom("search", "get", "count", "chunk", "vote"),
        vectorArb(s),
        fc.array(idArb, { minLength: 1, maxLength: 4 }),
        timeoutArb,
      )
      .map(([shard, op, vector, ids, timeoutMs]): FuzzRequest => {
        const base = { uid: world.uids.get(s.name) ?? "unknown", minSeq: 0, timeoutMs };
        const extra =
          op === "search"
            ? { search: { vector: new Uint8Array(Float32Array.from(vector).buffer), k: 5, withPayload: true, withVectors: false } }
            : op === "get"
              ? { get: { ids, withVectors: true } }
              : op === "count"
                ? { count: {} }
                : op === "vote"
                  ? // A vote on a transaction no shard has seen: a no, never a hang past the deadline.
                    { vote: { txn: ids[0]!.slice(0, 64) || "t" }, minSeq: shard }
                  : { chunk: { seq: 1, offset: 0, length: 1024, ...(shard % 2 === 0 ? { accept: ["br"] } : {}) } };
        return {
          family: `replica.${op}`,
          subject: `jade.replica.${world.nodeId}.${s.name}.${shard}.${op}`,
          body: { msgpack: { ...base, ...extra } },
          expect: "any",
          transport: "request",
          touchesReference: false,
        };
      }),
  );
}

/** A node's diagnostics subjects (`jade diag`), with any body: they read nothing from it. */
function diagRequest(world: World): fc.Arbitrary<FuzzRequest> {
  return fc.tuple(fc.constantFrom("info", "metrics", "frobnicate"), fc.jsonValue({ maxDepth: 2 })).map(([op, json]): FuzzRequest => ({
    family: `diag.${op}`,
    subject: `jade.diag.${world.nodeId}.${op}`,
    body: { json: json as Json },
    expect: "any",
    transport: "request",
    touchesReference: false,
  }));
}

/**
 * Reads and writes of the pool collections, which generated creates and drops make and
 * unmake while these run: the races between them. Their shape is whatever the last create
 * said, so any documented reply will do.
 */
function poolRequest(world: World): fc.Arbitrary<FuzzRequest> {
  return fc
    .tuple(fc.constantFrom(...world.pool), fc.integer({ min: 1, max: 8 }), fc.constantFrom<Metric>("cosine", "l2", "ip"))
    .chain(([name, dimension, metric]) => {
      const guess: CollectionSpec = { name, role: "scratch", dimension, metric, quantization: "f32", shards: 1, sharding: "hash", create: { name, dimension, metric } };
      return collectionRequest(guess, world).map((r): FuzzRequest => ({ ...r, family: `pool.${r.family}`, expect: "any" }));
    });
}

export function validRequest(world: World): fc.Arbitrary<FuzzRequest> {
  const collections = [...world.references, ...world.scratch];
  return fc.oneof(
    { weight: 12, arbitrary: fc.constantFrom(...collections).chain((s) => collectionRequest(s, world)) },
    { weight: 2, arbitrary: poolRequest(world) },
    { weight: 2, arbitrary: catalogRequest(world) },
    { weight: 2, arbitrary: adminRequest(world) },
    { weight: 1, arbitrary: backupRequest(world) },
    { weight: 1, arbitrary: unknownSubject(world) },
    { weight: 2, arbitrary: replicaRequest(world) },
    { weight: 1, arbitrary: diagRequest(world) },
  );
}
