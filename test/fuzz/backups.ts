/**
 * Backups and restores under fuzz (decision 008): `jade.v1.admin.backup.{create,list,verify,delete}`,
 * `admin.restore` and `admin.restore.list`, through the API, the node-addressed API and the
 * coordinator's own subjects. Setup takes a few tiny backups of one reference collection (kept
 * ones, which requests verify, restore and build on; doomed ones, which requests may delete), so
 * requests meet real backups, real chains and real files, not only unknown ids.
 *
 * Nothing is written outside the run's temp dir: every `dir` a body names is below it (mutations
 * included, see `confineDirs`), buckets are `fz-…` buckets of the run's own NATS, a restore goes
 * under a pool name (or under an existing name, which it must refuse) and a deep verify only ever
 * names a backup of 120 points.
 */
import path from "node:path";
import fc from "fast-check";
import type { JadeClient } from "../../src/client/client.ts";
import { repoRoot } from "../support/harness.ts";
import { pathsOf, valueAt, withValue, type Json } from "./body.ts";
import type { Expectation, FuzzRequest } from "./requests.ts";
import type { World } from "./world.ts";

type Location = { dir: string } | { bucket: string };

export interface KnownBackup {
  id: string;
  location: Location;
  /** The collection it holds (each setup backup holds one reference collection). */
  collection: string;
  /** A few hundred points at most: a deep verify of it is cheap. */
  tiny: boolean;
}

export interface BackupWorld {
  /** The run's temp dir: every directory a request names is below it. */
  root: string;
  /** Where setup put backups, where requests put theirs, and a place that holds none. */
  dirs: { kept: string; doomed: string; fresh: string; freshNested: string; missing: string };
  buckets: { kept: string; doomed: string; fresh: string; missing: string };
  /** A path relative to the node's working directory that lands in `root`: refused, and harmless if it were not. */
  relativeDir: string;
  /** Never deleted by a request: verified, restored, built on. */
  kept: KnownBackup[];
  /** Delete targets (one the base of another, so deleting it without force is a conflict until that one is gone). */
  doomed: KnownBackup[];
  /** Well-formed ids of no backup. */
  unknownIds: string[];
  /** Instants for point-in-time restores: before anything, the end of setup (written with an offset), the future. */
  instants: string[];
}

/** The collection setup backups hold: one shard, 120 points (referencePointsCount). */
const tinyReference = "fz-ref-i8";
/** A second one, with two shards and vector sharding, in a bucket. */
const bucketedReference = "fz-ref-l2h";

/** The same instant written with a +05:30 offset (z.iso.datetime({offset: true}) takes any offset). */
function withOffset(ms: number): string {
  return `${new Date(ms + 5.5 * 3_600_000).toISOString().slice(0, -1)}+05:30`;
}

/** Takes the setup backups (in parallel where they do not depend on each other) and waits until each is complete. */
export async function setUpBackups(client: JadeClient, root: string): Promise<BackupWorld> {
  const dirs = { kept: `${root}/kept`, doomed: `${root}/doomed`, fresh: `${root}/fresh`, freshNested: `${root}/fresh/nested/deeper`, missing: `${root}/missing` };
  const buckets = { kept: "fz-bk-kept", doomed: "fz-bk-doomed", fresh: "fz-bk-fresh", missing: "fz-bk-missing" };
  const take = async (collection: string, location: Location | undefined, incrementalFrom?: KnownBackup): Promise<KnownBackup> => {
    const started = await client.createBackup({ collections: [collection], ...(location ? { to: location } : {}), ...(incrementalFrom ? { incrementalFrom: incrementalFrom.id } : {}), bytesPerSecMax: 1 << 30 });
    const done = await client.waitForBackup(started.id, { timeoutMs: 60_000, intervalMs: 100 });
    return { id: done.id, location: done.location, collection, tiny: true };
  };
  const [full, bucketed, doomedDir, doomedBucket] = await Promise.all([
    take(tinyReference, { dir: dirs.kept }),
    take(bucketedReference, { bucket: buckets.kept }),
    take(tinyReference, { dir: dirs.doomed }),
    take(tinyReference, { bucket: buckets.doomed }),
  ]);
  // Incremental ones, kept beside their bases (no `to`: the base's location is the default).
  const [incremental, doomedIncremental] = await Promise.all([take(tinyReference, undefined, full), take(tinyReference, undefined, doomedDir)]);
  const now = Date.now();
  return {
    root,
    dirs,
    buckets,
    relativeDir: path.relative(repoRoot, `${root}/relative`),
    kept: [full, incremental, bucketed],
    doomed: [doomedDir, doomedIncremental, doomedBucket],
    unknownIds: ["20261205T081500Z-3fa9c1", "19991231T235959Z-000000"],
    instants: ["2000-01-01T00:00:00Z", new Date(now).toISOString(), withOffset(now), "2099-12-31T23:59:59.999-08:00"],
  };
}

/** Whether `dir` (as the node would resolve it) is below `root`. */
function inside(root: string, dir: string): boolean {
  return path.isAbsolute(dir) && path.resolve(dir).startsWith(`${root}/`);
}

/**
 * A mutated body whose `dir` left the run's temp dir (a random string that happens to start
 * with "/"), with that dir put back below it: the fuzzer may ask anything, but never to write
 * outside its own directory.
 */
export function confineDirs(json: Json, root: string): Json {
  let out = json;
  for (const p of pathsOf(json, 1_000)) {
    if (p.at(-1) !== "dir") continue;
    const value = valueAt(json, p);
    if (typeof value === "string" && value.startsWith("/") && !inside(root, value)) out = withValue(out, p, `${root}/confined`);
  }
  return out;
}

type Via = "api" | "direct" | "coordinator";
const via: fc.Arbitrary<Via> = fc.oneof({ weight: 3, arbitrary: fc.constant("api" as const) }, { weight: 1, arbitrary: fc.constant("direct" as const) }, { weight: 2, arbitrary: fc.constant("coordinator" as const) });

function request(world: World, op: string, json: Json, expect: Expectation, how: Via, suffix = ""): FuzzRequest {
  const subject = how === "coordinator" ? `jade.coordinator.${op}` : how === "direct" ? `jade.n.${world.nodeId}.v1.admin.${op}` : `jade.v1.admin.${op}`;
  return {
    family: `${how === "coordinator" ? "coordinator" : "admin"}.${op}${suffix}`,
    subject,
    body: { json },
    expect,
    transport: "request",
    // A restore names collections: one that restored over a reference would show in the glance.
    touchesReference: op === "restore",
    confine: world.backups.root,
  };
}

const optional = <T>(arb: fc.Arbitrary<T>, weight = 1): fc.Arbitrary<T | undefined> =>
  fc.oneof({ weight, arbitrary: arb }, { weight: 1, arbitrary: fc.constant(undefined) });

/** An object without its undefined fields. */
function compact(fields: Record<string, Json | undefined>): Json {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) as Json;
}

/** Valid bodies, by op: documented as valid, so never refused as invalid (not_found, conflict, out_of_range, unavailable are fine). */
function validBodies(world: World): Record<string, fc.Arbitrary<Json>> {
  const b = world.backups;
  const all = [...b.kept, ...b.doomed];
  const locations: Json[] = [{ dir: b.dirs.kept }, { dir: b.dirs.doomed }, { dir: b.dirs.fresh }, { dir: b.dirs.missing }, { bucket: b.buckets.kept }, { bucket: b.buckets.doomed }, { bucket: b.buckets.fresh }, { bucket: b.buckets.missing }];
  const anyLocation = fc.constantFrom(...locations);
  const freshLocation = fc.constantFrom<Json>({ dir: b.dirs.fresh }, { dir: b.dirs.freshNested }, { dir: b.dirs.kept }, { bucket: b.buckets.fresh }, { bucket: b.buckets.kept });
  const backupRef = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...all) }, { weight: 1, arbitrary: fc.constantFrom(...b.unknownIds).map((id): KnownBackup => ({ id, location: { dir: b.dirs.kept }, collection: tinyReference, tiny: true })) });
  /** Where a backup is (mostly), or somewhere it is not. */
  const fromOf = (k: KnownBackup) => optional(fc.oneof({ weight: 3, arbitrary: fc.constant(k.location as Json) }, { weight: 1, arbitrary: anyLocation }), 2);
  const small = [...world.references, ...world.scratch].filter((s) => s.shards <= 2).map((s) => s.name);
  const backupCollections = fc.oneof(
    { weight: 8, arbitrary: fc.uniqueArray(fc.constantFrom(...small, ...world.pool, "fz-none"), { minLength: 1, maxLength: 2 }) },
    // Every collection (references, scratch, ingestion, pool): a bigger backup, rarely.
    { weight: 1, arbitrary: fc.constant(undefined) },
  );
  const rate = optional(fc.oneof(fc.constantFrom(1 << 20, 1 << 30), fc.integer({ min: 1 << 20, max: 1 << 30 })));
  const target = fc.oneof(
    { weight: 3, arbitrary: fc.constant({}) },
    { weight: 2, arbitrary: fc.constantFrom(...b.instants).map((toTime) => ({ toTime })) },
    { weight: 2, arbitrary: fc.uniqueArray(fc.record({ shard: fc.integer({ min: 0, max: 2 }), seq: fc.integer({ min: 0, max: 150 }) }), { minLength: 1, maxLength: 2, selector: (t) => t.shard }).map((toSeq) => ({ toSeq })) },
  );
  /** Restores go under a pool name; sometimes under a name that exists, which must be refused (already_exists). */
  const as = fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...world.pool) }, { weight: 1, arbitrary: fc.constantFrom(...world.references.map((s) => s.name), world.scratch[0]!.name) });
  return {
    "backup.create": fc.oneof(
      { weight: 4, arbitrary: fc.tuple(backupCollections, freshLocation, rate).map(([collections, to, bytesPerSecMax]) => compact({ collections, to, bytesPerSecMax })) },
      // Incremental: beside its base (the default, or the same place named again).
      {
        weight: 2,
        arbitrary: backupRef.chain((base) =>
          fc
            .tuple(optional(fc.constant([base.collection] as Json)), optional(fc.constant(base.location as Json)), rate)
            .map(([collections, to, bytesPerSecMax]) => compact({ incrementalFrom: base.id, collections, to, bytesPerSecMax })),
        ),
      },
    ),
    "backup.list": fc.oneof(fc.constant({}), anyLocation.map((from) => ({ from }))),
    "backup.verify": backupRef.chain((k) =>
      fc.tuple(fromOf(k), k.tiny ? optional(fc.oneof({ weight: 5, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) })) : fc.constant(undefined)).map(([from, deep]) => compact({ id: k.id, from, deep })),
    ),
    // Never a kept backup: the rest of the run needs them.
    "backup.delete": fc.tuple(fc.oneof(fc.constantFrom(...b.doomed.map((k) => k.id)), fc.constantFrom(...b.unknownIds)), optional(fc.boolean())).map(([id, force]) => compact({ id, force })),
    restore: fc.oneof(
      {
        weight: 3,
        arbitrary: backupRef.chain((k) =>
          fc
            .tuple(fromOf(k), optional(fc.constant([k.collection] as Json)), fc.oneof({ weight: 6, arbitrary: as }, { weight: 1, arbitrary: fc.constant(undefined) }), target)
            .map(([from, collections, name, t]) => compact({ backup: k.id, from, collections, as: name, ...t })),
        ),
      },
      {
        weight: 2,
        arbitrary: fc
          .tuple(fc.constantFrom(...world.references.map((s) => s.name), ...world.scratch.map((s) => s.name), world.pool[0]!, "fz-none"), as, target)
          .map(([live, name, t]) => ({ live, as: name, ...t })),
      },
    ),
    "restore.list": fc.constant({}),
  };
}

/** Bodies that break one documented rule each (otherwise valid): every one must be answered `invalid_argument`. */
function invalidBodies(world: World): [string, Json][] {
  const b = world.backups;
  const [full] = b.kept;
  const id = full!.id;
  const pool = world.pool[0]!;
  const rel = b.relativeDir;
  // Collections that do not exist: had a rule been let through, the request would stop at not_found before writing anything.
  const none = ["fz-none"];
  return [
    ["backup.create", { collections: none, to: { dir: rel } }],
    ["backup.create", { collections: none, to: { dir: "/" } }],
    ["backup.create", { collections: none, to: { dir: "" } }],
    ["backup.create", { collections: none, to: { dir: `${b.dirs.fresh}`, bucket: b.buckets.fresh } }],
    ["backup.create", { collections: none, to: {} }],
    ["backup.create", { collections: none, to: { bucket: "fz bk" } }],
    ["backup.create", { collections: none, to: { bucket: `fz-${"b".repeat(62)}` } }],
    ["backup.create", { collections: none, to: { bucket: "fz.bk" } }],
    ["backup.create", { collections: none, incrementalFrom: "20261205T081500Z-3FA9C1" }],
    ["backup.create", { collections: none, incrementalFrom: `${id}0` }],
    ["backup.create", { collections: none, bytesPerSecMax: (1 << 20) - 1 }],
    ["backup.create", { collections: none, bytesPerSecMax: 2 ** 30 + 1 }],
    ["backup.create", { collections: none, bytesPerSecMax: 2 ** 20 + 0.5 }],
    ["backup.create", { collections: none, bytesPerSecMax: "16MiB" }],
    ["backup.create", { collections: [] }],
    ["backup.create", { collections: Array.from({ length: 65 }, (_, i) => `fz-none-${i}`) }],
    ["backup.create", { collections: ["fz none"] }],
    ["backup.create", { collections: none, extra: true }],
    ["backup.list", { from: { dir: rel } }],
    ["backup.list", { from: { bucket: "" } }],
    ["backup.list", { from: b.buckets.kept }],
    ["backup.verify", { id: "../../etc" }],
    ["backup.verify", { id, deep: "yes" }],
    ["backup.verify", { id, from: { dir: rel } }],
    ["backup.verify", { deep: true }],
    ["backup.delete", {}],
    ["backup.delete", { id: `${id}/..` }],
    ["backup.delete", { id: b.unknownIds[0]!, force: "true" }],
    ["restore", { backup: id, live: "fz-ref-cos", as: pool }],
    ["restore", { as: pool }],
    ["restore", { live: "fz-ref-cos" }],
    ["restore", { live: "fz-ref-cos", as: pool, toTime: b.instants[1]!, toSeq: [{ shard: 0, seq: 1 }] }],
    ["restore", { backup: id, as: pool, toTime: b.instants[1]!, toSeq: [{ shard: 0, seq: 1 }] }],
    ["restore", { backup: id, as: pool, collections: [tinyReference, "fz-ref-cos"] }],
    ["restore", { live: "fz-ref-cos", as: pool, collections: ["fz-ref-cos"] }],
    ["restore", { live: "fz-ref-cos", as: pool, from: { dir: b.dirs.kept } }],
    ["restore", { live: "fz-ref-cos", as: pool, toTime: "yesterday" }],
    ["restore", { live: "fz-ref-cos", as: pool, toTime: "2026-12-05T08:00:00" }],
    ["restore", { live: "fz-ref-cos", as: pool, toSeq: [] }],
    ["restore", { live: "fz-ref-cos", as: pool, toSeq: [{ shard: 64, seq: 1 }] }],
    ["restore", { live: "fz-ref-cos", as: pool, toSeq: [{ shard: 0, seq: -1 }] }],
    ["restore", { live: "fz-ref-cos", as: "fz pool" }],
    ["restore", { backup: id, from: { dir: rel }, as: pool }],
    ["restore.list", { extra: true }],
  ];
}

/** Requests of every backup and restore op: mostly valid, a quarter breaking one rule. */
export function backupRequest(world: World): fc.Arbitrary<FuzzRequest> {
  const valid = validBodies(world);
  const ops = fc.oneof(
    { weight: 2, arbitrary: fc.constant("backup.create") },
    { weight: 2, arbitrary: fc.constant("backup.list") },
    { weight: 2, arbitrary: fc.constant("backup.verify") },
    { weight: 1, arbitrary: fc.constant("backup.delete") },
    { weight: 3, arbitrary: fc.constant("restore") },
    { weight: 1, arbitrary: fc.constant("restore.list") },
  );
  return fc.oneof(
    { weight: 3, arbitrary: ops.chain((op) => fc.tuple(valid[op]!, via).map(([json, how]) => request(world, op, json, "valid", how))) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...invalidBodies(world)), via).map(([[op, json], how]) => request(world, op, json, "invalid", how, ".invalid")) },
  );
}
