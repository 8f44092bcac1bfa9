/**
 * The chaos checker. Run after every fault is healed and the workload stopped:
 *
 * 1. settle: wait (with a deadline) until the cluster status shows a coordinator,
 *    every node live and every placed replica `serving` with lag 0, at full RF;
 * 2. acknowledged writes: every id the workload touched is read back with
 *    consistency `strong` (vectors included). Allowed final states of an id are its
 *    last acknowledged state plus the states of its indeterminate writes (never
 *    acknowledged: maybe applied, at any time). Anything else is
 *      - `lost`:        the last acked upsert's version is missing or replaced by an older one,
 *      - `resurrected`: an acked-deleted id is present with a version not allowed,
 *      - `corrupt`:     the version is allowed but the vector is not the one written;
 *    and `count` (strong) must lie between the ids surely live and the ids maybe live;
 * 3. replica convergence, via a shard digest computed WITHOUT any server support:
 *    every replica of a shard (from the placement) is read directly over the
 *    node-to-node replica protocol (`jade.replica.<node>.<collection>.<shard>.get`,
 *    msgpack, the collection uid, minSeq = the shard stream's last sequence so the
 *    replica has applied the whole log) for every id the workload ever touched, with
 *    vectors. The digest of a replica is
 *        sha256( join("\n", sort_by_id( id TAB canonical-JSON(payload) TAB hex(float32 LE vector) )) )
 *    together with its point count. Replicas of a shard whose digests differ are
 *    `divergent` (with the ids that differ). Points the workload never wrote are not
 *    covered (the replica protocol has no scan).
 *
 * Failover times are computed here from the workload's search records and the
 * status samples (see failoverTimes()).
 */
import { createHash } from "node:crypto";
import { jetstreamManager } from "@nats-io/jetstream";
import type { JadeClient } from "../src/client/client.ts";
import { decodeReplicaMessage, encodeReplicaMessage, readFromWire, type ReplicaReadReply } from "../src/actors/replica/protocol.ts";
import type { StoredPoint } from "../src/runtime/schemas.ts";
import type { ClusterStatus } from "../src/runtime/status.ts";
import { names, subjects } from "../src/runtime/subjects.ts";
import { now, progress, delay, withTimeout } from "./util.ts";
import { vectorOf, type CollectionSpec, type IdHistory, type IdState, type SearchRecord, type Workload } from "./workload.ts";
import { errorMessage } from "../src/runtime/errors.ts";

const readChunk = 500;

/** Full RF, every replica serving on a live node; with `zeroLag` also lag 0 everywhere. */
export function clusterHealthy(status: ClusterStatus, expectedNodes: string[], zeroLag: boolean): string | undefined {
  if (!status.coordinator) return "no coordinator";
  for (const id of expectedNodes) {
    if (!status.nodes.find((n) => n.id === id)?.live) return `node ${id} not live`;
  }
  for (const c of status.collections) {
    for (const s of c.shards) {
      if (s.replicas.length !== c.replicas) return `${c.name}/${s.shard} has ${s.replicas.length}/${c.replicas} replicas`;
      for (const r of s.replicas) {
        if (r.state !== "serving") return `${c.name}/${s.shard}@${r.node} is ${r.state}`;
        if (zeroLag && r.lag !== 0) return `${c.name}/${s.shard}@${r.node} lags ${r.lag}`;
      }
    }
  }
  return undefined;
}

/** RF restored: every shard has its replicas, all serving on live nodes (lag allowed). */
export function rfRestored(status: ClusterStatus): boolean {
  return status.collections.every((c) =>
    c.shards.every((s) => s.replicas.length === c.replicas && s.replicas.every((r) => r.state === "serving")),
  );
}

export async function settle(
  client: JadeClient,
  expectedNodes: string[],
  options: { timeoutMs: number; zeroLag: boolean; stablePolls?: number },
): Promise<{ ok: boolean; tookMs: number; reason?: string; status?: ClusterStatus }> {
  const started = performance.now();
  let reason = "no status yet";
  let last: ClusterStatus | undefined;
  let stable = 0;
  const need = options.stablePolls ?? 2;
  let reported = started;
  for (let i = 0; i < 10_000 && performance.now() - started < options.timeoutMs; i++) {
    if (performance.now() - reported > 10_000) {
      reported = performance.now();
      progress(`  still settling after ${Math.round((reported - started) / 1000)} s: ${reason}`);
    }
    try {
      last = await withTimeout(client.clusterStatus(), 10_000, "cluster status");
      const why = clusterHealthy(last, expectedNodes, options.zeroLag);
      if (why === undefined) {
        if (++stable >= need) return { ok: true, tookMs: Math.round(performance.now() - started) };
      } else {
        stable = 0;
        reason = why;
      }
    } catch (err) {
      stable = 0;
      reason = `status: ${errorMessage(err)}`;
    }
    await delay(500);
  }
  return { ok: false, tookMs: Math.round(performance.now() - started), reason, ...(last ? { status: last } : {}) };
}

export interface Violation {
  collection: string;
  id: string;
  expected: IdState[];
  found: IdState | { kind: "absent" };
  ackedAt?: string;
  detail?: string;
}

export interface DivergentShard {
  collection: string;
  shard: number;
  replicas: { node: string; digest: string; count: number; error?: string }[];
  differingIds: string[];
}

export interface CheckResult {
  lost: Violation[];
  resurrected: Violation[];
  corrupt: Violation[];
  unreadable: { collection: string; ids: number; error: string }[];
  counts: { collection: string; count: number | null; min: number; max: number; ok: boolean; error?: string }[];
  digests: { collection: string; shard: number; replicas: { node: string; digest: string; count: number }[] }[];
  divergent_shards: DivergentShard[];
  idsChecked: number;
  idsWithIndeterminateWrites: number;
}

function allowed(h: IdHistory): IdState[] {
  const states: IdState[] = [];
  if (h.acked) states.push(h.acked);
  states.push(...h.indeterminate);
  return states;
}

function same(a: IdState, b: IdState): boolean {
  return a.kind === b.kind && (a.kind === "deleted" || a.version === (b as { version: number }).version);
}

async function readAll(client: JadeClient, collection: string, ids: string[]): Promise<Map<string, StoredPoint>> {
  const found = new Map<string, StoredPoint>();
  for (let i = 0; i < ids.length; i += readChunk) {
    const chunk = ids.slice(i, i + readChunk);
    let lastError = "";
    let done = false;
    for (let attempt = 0; attempt < 6 && !done; attempt++) {
      try {
        const r = await withTimeout(
          client.get(collection, { ids: chunk, withVectors: true, consistency: "strong", timeoutMs: 10_000 }),
          40_000,
          "get",
        );
        if (r.partial) throw new Error(`partial get: ${r.shards.answered}/${r.shards.total} shards answered`);
        for (const p of r.points) found.set(p.id, p);
        done = true;
      } catch (err) {
        lastError = errorMessage(err);
        await delay(1_000);
      }
    }
    if (!done) throw new Error(`ids ${i}..${i + chunk.length} of ${collection} unreadable: ${lastError}`);
  }
  return found;
}

export async function checkWrites(client: JadeClient, workload: Workload, specs: CollectionSpec[]): Promise<Omit<CheckResult, "digests" | "divergent_shards">> {
  const result: Omit<CheckResult, "digests" | "divergent_shards"> = {
    lost: [],
    resurrected: [],
    corrupt: [],
    unreadable: [],
    counts: [],
    idsChecked: 0,
    idsWithIndeterminateWrites: 0,
  };
  for (const spec of specs) {
    const histories = workload.histories.get(spec.name)!;
    const ids = [...histories.keys()].sort();
    let found: Map<string, StoredPoint>;
    try {
      found = await readAll(client, spec.name, ids);
    } catch (err) {
      result.unreadable.push({ collection: spec.name, ids: ids.length, error: errorMessage(err) });
      continue;
    }
    let min = 0;
    let max = 0;
    for (const id of ids) {
      const h = histories.get(id)!;
      result.idsChecked++;
      if (h.indeterminate.length > 0) result.idsWithIndeterminateWrites++;
      const states = allowed(h);
      // Never acknowledged: absent is allowed too.
      const options = h.acked ? states : [...states, { kind: "deleted" } as IdState];
      if (options.every((s) => s.kind === "live")) min++;
      if (options.some((s) => s.kind === "live")) max++;
      const point = found.get(id);
      const version = typeof point?.payload?.v === "number" ? (point.payload.v as number) : undefined;
      const seen: IdState | { kind: "absent" } = point ? { kind: "live", version: version ?? -1 } : { kind: "absent" };
      const base = { collection: spec.name, id, expected: states, found: seen, ...(h.ackedAt ? { ackedAt: new Date(h.ackedAt).toISOString() } : {}) };
      if (!point) {
        if (!options.some((s) => s.kind === "deleted")) result.lost.push({ ...base, detail: "acknowledged upsert missing" });
        continue;
      }
      const ok = options.some((s) => same(s, seen as IdState));
      if (!ok) {
        if (h.acked?.kind === "deleted") result.resurrected.push({ ...base, detail: "acknowledged delete undone" });
        else result.lost.push({ ...base, detail: "an older (or unknown) version replaced the acknowledged one" });
        continue;
      }
      const expectedVector = vectorOf(spec.name, id, version!, spec.dimension);
      const vector = point.vector ?? [];
      if (vector.length !== expectedVector.length || vector.some((x, i) => x !== expectedVector[i])) {
        result.corrupt.push({ ...base, detail: "vector differs from the one written with this version" });
      }
    }
    try {
      const { count, partial } = await withTimeout(client.count(spec.name, { consistency: "strong", timeoutMs: 10_000 }), 40_000, "count");
      result.counts.push({ collection: spec.name, count, min, max, ok: !partial && count >= min && count <= max, ...(partial ? { error: "partial" } : {}) });
    } catch (err) {
      result.counts.push({ collection: spec.name, count: null, min, max, ok: false, error: errorMessage(err) });
    }
  }
  return result;
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

function pointLine(p: StoredPoint): string {
  const vector = Buffer.from(new Float32Array(p.vector ?? []).buffer).toString("hex");
  // The version too: replicas of one log must agree on which write made each point.
  return `${p.id}\t${p.version ?? ""}\t${canonicalJson(p.payload ?? {})}\t${vector}`;
}

/** Reads one replica's points among `ids`, straight from the node that holds it. */
async function readReplica(client: JadeClient, node: string, collection: string, shard: number, uid: string, minSeq: number, ids: string[]) {
  const lines = new Map<string, string>();
  for (let i = 0; i < ids.length; i += readChunk) {
    const msg = await client.nc.request(
      subjects.replica(node, collection, shard, "get"),
      encodeReplicaMessage({ uid, minSeq, timeoutMs: 10_000, get: { ids: ids.slice(i, i + readChunk), withVectors: true } }),
      { timeout: 12_000 },
    );
    const reply = decodeReplicaMessage<ReplicaReadReply>(msg.data);
    if (!reply.ok) throw new Error(`${reply.error.code}: ${reply.error.message}`);
    for (const p of readFromWire<StoredPoint[]>(reply.result as StoredPoint[]).value) lines.set(p.id, pointLine(p));
  }
  return lines;
}

export function shardDigest(lines: Map<string, string>): string {
  const sorted = [...lines.keys()].sort().map((id) => lines.get(id)!);
  return createHash("sha256").update(sorted.join("\n")).digest("hex");
}

/** `idsOf`: the ids written to a collection, whose copies on every replica are compared. */
export async function checkConvergence(client: JadeClient, idsOf: (collection: string) => string[], collections: readonly string[]): Promise<Pick<CheckResult, "digests" | "divergent_shards">> {
  const jsm = await jetstreamManager(client.nc);
  const status = await withTimeout(client.clusterStatus(), 20_000, "cluster status");
  const digests: CheckResult["digests"] = [];
  const divergent: DivergentShard[] = [];
  for (const name of collections) {
    const spec = { name };
    const config = await client.getCollection(spec.name);
    const ids = idsOf(spec.name).sort();
    const placed = status.collections.find((c) => c.name === spec.name);
    for (const shard of placed?.shards ?? []) {
      const lastSeq = (await jsm.streams.info(names.logStream(spec.name, shard.shard))).state.last_seq;
      const replicas: DivergentShard["replicas"] = [];
      const contents: Map<string, string>[] = [];
      for (const r of shard.replicas) {
        try {
          const lines = await readReplica(client, r.node, spec.name, shard.shard, config.uid, lastSeq, ids);
          contents.push(lines);
          replicas.push({ node: r.node, digest: shardDigest(lines), count: lines.size });
        } catch (err) {
          contents.push(new Map());
          replicas.push({ node: r.node, digest: "unreadable", count: -1, error: errorMessage(err) });
        }
      }
      digests.push({ collection: spec.name, shard: shard.shard, replicas: replicas.map(({ node, digest, count }) => ({ node, digest, count })) });
      if (new Set(replicas.map((r) => r.digest)).size > 1) {
        const differing = new Set<string>();
        const all = new Set(contents.flatMap((c) => [...c.keys()]));
        for (const id of all) if (new Set(contents.map((c) => c.get(id) ?? "")).size > 1) differing.add(id);
        divergent.push({ collection: spec.name, shard: shard.shard, replicas, differingIds: [...differing].slice(0, 50) });
      }
    }
  }
  return { digests, divergent_shards: divergent };
}

export interface StatusSample {
  at: number;
  rfRestored: boolean;
  coordinator: string | null;
  /** Why RF is not restored (the first shard replica found wanting). */
  reason?: string;
  error?: string;
}

/** Polls cluster status every `intervalMs` until stopped (bounded by maxSamples). */
export class StatusMonitor {
  readonly samples: StatusSample[] = [];
  #stopping = false;
  #loop: Promise<void> | undefined;

  constructor(readonly client: JadeClient, readonly intervalMs = 500, readonly maxSamples = 20_000) {}

  start(): void {
    this.#loop = (async () => {
      while (!this.#stopping && this.samples.length < this.maxSamples) {
        const at = now();
        try {
          const status = await withTimeout(this.client.clusterStatus(), 5_000, "status");
          const ok = rfRestored(status);
          const reason = ok ? undefined : clusterHealthy(status, [], false);
          this.samples.push({ at, rfRestored: ok, coordinator: status.coordinator, ...(reason ? { reason } : {}) });
        } catch (err) {
          this.samples.push({ at, rfRestored: false, coordinator: null, error: errorMessage(err) });
        }
        await delay(this.intervalMs);
      }
    })();
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    await this.#loop;
  }
}

/**
 * Time from a fault's injection until the condition holds again for good (within
 * [injectedAt, windowEnd]): the first good observation after the last bad one.
 * 0 when nothing bad was observed; null when it never became good again in the window.
 */
function recoveredAfter(events: { at: number; good: boolean }[], injectedAt: number, windowEnd: number): number | null {
  const inWindow = events.filter((e) => e.at >= injectedAt && e.at <= windowEnd);
  let lastBad = -1;
  inWindow.forEach((e, i) => {
    if (!e.good) lastBad = i;
  });
  if (lastBad < 0) return 0;
  const next = inWindow.slice(lastBad + 1).find((e) => e.good);
  return next ? Math.round(next.at - injectedAt) : null;
}

export function failoverTimes(
  searches: SearchRecord[],
  samples: StatusSample[],
  collection: string,
  injectedAt: number,
  windowEnd: number,
): {
  completeSearchesAfterMs: number | null;
  rfRestoredAfterMs: number | null;
  searchesDuring: Record<string, number>;
  degradedReasons: Record<string, number>;
} {
  // Searches started in the window; a good one counts when it ended, a bad one when it started.
  const mine = searches.filter((s) => s.collection === collection && s.startedAt >= injectedAt && s.startedAt <= windowEnd);
  const events = mine.map((s) => ({ at: s.outcome === "answered" && !s.hung ? s.endedAt : s.startedAt, good: s.outcome === "answered" && !s.hung }));
  const searchesDuring: Record<string, number> = {};
  for (const s of searches) {
    if (s.startedAt < injectedAt || s.startedAt > windowEnd) continue;
    const key = `${s.collection}:${s.outcome}${s.hung ? ":hung" : ""}`;
    searchesDuring[key] = (searchesDuring[key] ?? 0) + 1;
  }
  const degradedReasons: Record<string, number> = {};
  for (const s of [...searches.filter((x) => x.detail), ...samples.filter((x) => x.reason || x.error)]) {
    const at = "startedAt" in s ? s.startedAt : s.at;
    if (at < injectedAt || at > windowEnd) continue;
    const key = "startedAt" in s ? `search ${s.collection}: ${s.detail}` : `status: ${s.reason ?? s.error}`;
    degradedReasons[key] = (degradedReasons[key] ?? 0) + 1;
  }
  return {
    degradedReasons,
    completeSearchesAfterMs: recoveredAfter(events, injectedAt, Infinity),
    rfRestoredAfterMs: recoveredAfter(samples.map((s) => ({ at: s.at, good: s.rfRestored })), injectedAt, windowEnd),
    searchesDuring,
  };
}
