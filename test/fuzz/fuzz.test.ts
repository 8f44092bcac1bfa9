/**
 * The fuzz suite in `npm test`: the named regressions against a real node, the
 * CLI's point check against the server's verdict, then a bounded fuzz run with a
 * fixed seed (about 10,000 requests and 300 ingestion records). `npm run fuzz`
 * runs long ones.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import fc from "fast-check";
import { Packr } from "msgpackr";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkPointLine } from "../../src/cli/commands/points.ts";
import type { JadeClient } from "../../src/client/client.ts";
import type { JadeNode } from "../../src/node.ts";
import { limits } from "../../src/runtime/limits.ts";
import { names, subjects } from "../../src/runtime/subjects.ts";
import { spaceOf } from "../../src/runtime/vectors.ts";
import { Harness, waitFor } from "../support/harness.ts";
import { nestedJsonText, toJsonText } from "./body.ts";
import { declaredDeadlineMs } from "./client.ts";
import { runFuzz } from "./engine.ts";
import { nastyValue } from "./mutations.ts";
import { regressionCollection, regressionCollectionsMore, regressions } from "./regressions.ts";
import { vectorArb } from "./values.ts";

const harness = new Harness();
const packr = new Packr({ useRecords: false });
let client: JadeClient;
let node: JadeNode;
const stored = [
  { id: "keep-1", vector: [0.1, 0.9, 0.5, 0.5], payload: { color: "red" } },
  { id: "keep-2", vector: [0.9, 0.1, 0.5, 0.2], payload: { color: "blue", constructor: { prototype: "data" } } },
];

/** What a reader sees of the regression collection: count, both points, and a search. */
async function reading() {
  return {
    count: (await client.count("reg", { consistency: "strong" })).count,
    points: (await client.get("reg", { ids: stored.map((p) => p.id), withVectors: true, consistency: "strong" })).points,
    hits: (await client.search("reg", { vector: stored[0]!.vector, k: 3, consistency: "strong" })).hits,
  };
}

beforeAll(async () => {
  const nats = await harness.nats();
  node = await harness.node([nats.url]);
  client = await harness.client(nats.url);
  await client.createCollection(regressionCollection);
  for (const c of regressionCollectionsMore) await client.createCollection(c);
  await client.upsert("reg", { points: stored, consistency: "all" });
});
afterAll(() => harness.close());

describe("fuzz regressions", () => {
  let before: Awaited<ReturnType<typeof reading>>;
  beforeAll(async () => {
    before = await reading();
  });

  it.each(regressions)("$name", async (r) => {
    const uid = (await client.getCollection("reg")).uid;
    const subject = r.subject.replace("<node>", node.nodeId);
    const body = r.body;
    if (r.publish) {
      await jetstream(client.nc).publish(subject, body);
    } else if (subject.startsWith("jade.replica.")) {
      const raw = typeof body === "string" ? new TextEncoder().encode(body) : body;
      const decoded = (() => {
        try {
          return packr.unpack(raw) as Record<string, unknown>;
        } catch {
          return undefined;
        }
      })();
      const data = decoded && typeof decoded === "object" && decoded["uid"] === "<uid>" ? packr.pack({ ...decoded, uid }) : raw;
      const reply = packr.unpack((await client.nc.request(subject, data, { timeout: 10_000 })).data) as { ok: boolean; error?: { code: string; message: string } };
      expect(reply.ok).toBe(false);
      expect(reply.error!.code).toBe(r.code);
      if (r.message) expect(reply.error!.message).toMatch(r.message);
    } else {
      const reply = await client.requestRaw(subject, body, declaredDeadlineMs({ subject, body: { bytes: new Uint8Array() }, expect: "any", family: "", transport: "request", touchesReference: false }) / 2);
      // A refusal comes at the door: a request that waited half its deadline would have timed out here.
      expect(reply.ok, JSON.stringify(reply)).toBe(r.code === "ok");
      if (!reply.ok) {
        expect(reply.error.code).toBe(r.code);
        if (r.message) expect(reply.error.message).toMatch(r.message);
      }
    }
    // Whatever it was, readers see exactly what they saw before.
    expect(await reading()).toEqual(before);
  });

  it("stored payload keys constructor and prototype are data, and no prototype was touched", async () => {
    const { points } = await client.get("reg", { ids: ["keep-2"] });
    expect(points[0]!.payload).toEqual({ color: "blue", constructor: { prototype: "data" } });
    expect(Object.getPrototypeOf(points[0]!.payload)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined();
    expect((await client.count("reg", { filter: { "constructor.prototype": "data" } })).count).toBe(1);
    expect((await client.count("reg", { filter: { toString: { $ne: "x" } } })).count).toBe(2);
  });

  it("an ingest record too large to quote is dead-lettered, not retried forever", async () => {
    const js = jetstream(client.nc);
    const jsm = await jetstreamManager(client.nc);
    const dlqBefore = (await jsm.streams.info(names.dlqStream)).state.last_seq;
    // Before the fix both stayed in the queue, redelivered without end: the first one's dead letter quoted the whole
    // record and no longer fit in a NATS message; the second one's could not be encoded at all.
    await js.publish(subjects.ingest("reg"), JSON.stringify({ id: "huge", vector: [1, 1, 1, 1], payload: { s: "h".repeat(limits.natsPayloadBytesMax - 200) } }));
    await js.publish(subjects.ingest("reg"), nestedJsonText(20_000).replace('{"a":', '{"id":"deep","vector":[1,1,1,1],"payload":{"a":').concat("}"));
    await waitFor(async () => (await jsm.streams.info(names.ingestStream)).state.messages === 0, { timeoutMs: 60_000, what: "the ingest queue to drain" });
    const letters = [];
    const last = (await jsm.streams.info(names.dlqStream)).state.last_seq;
    for (let seq = dlqBefore + 1; seq <= last; seq++) letters.push((await jsm.streams.getMessage(names.dlqStream, { seq }))!.json<{ error: { code: string }; record: unknown }>());
    expect(letters.map((l) => l.error.code)).toEqual(["invalid_argument", "invalid_argument"]);
    for (const l of letters) expect(Buffer.byteLength(JSON.stringify(l.record))).toBeLessThan(5_000);
  });
});

describe("the CLI and the server agree on points", () => {
  it("a JSON line passes the CLI's check exactly when the server accepts it as a point", async () => {
    const configs = [await client.getCollection("reg"), await client.getCollection("reg-l2"), await client.getCollection("reg-h")];
    const lineArb = fc.constantFrom(...configs).chain((config) =>
      fc
        .tuple(vectorArb(config), fc.option(nastyValue, { nil: undefined }), fc.nat({ max: config.dimension - 1 }), fc.constantFrom("cli-1", "", "a\u0000", "\ud800"))
        .map(([vector, nasty, at, id]) => {
          const v: unknown[] = [...vector];
          if (nasty !== undefined) v[at] = nasty;
          return { config, line: toJsonText({ id, vector: v as number[] }) };
        }),
    );
    await fc.assert(
      fc.asyncProperty(lineArb, async ({ config, line }) => {
        const cli = checkPointLine(line, spaceOf(config));
        const reply = await client.requestRaw(`jade.v1.${config.name}.upsert`, `{"points":[${line}]}`);
        expect(reply.ok, `${line.slice(0, 200)}: cli ${typeof cli === "string" ? cli : "ok"}, server ${JSON.stringify(reply).slice(0, 300)}`).toBe(typeof cli !== "string");
      }),
      { seed: 42, numRuns: 300 },
    );
  });
});

describe("fuzzing every subject", () => {
  // 10,000 requests take 78 s alone and 97–120 s beside the rest of the suite on 2 cores: past the 120 s default.
  it("keeps every property over a fixed-seed run", async () => {
    const report = await runFuzz({ seed: 20261202, requests: 10_000, ingestRecords: 300 });
    const failure = report.failure ? `${report.failure.message}\nshrunk batch:\n  ${report.failure.requests.join("\n  ")}` : undefined;
    expect(failure, `fuzz seed ${report.seed} (path ${report.failure?.path})`).toBeUndefined();
    expect(report.ingest?.failure, JSON.stringify(report.ingest?.failure)).toBeUndefined();
    expect(report.referencesUnchanged).toBe(true);
    expect(report.extraReplies).toEqual([]);
    expect(report.requestsSent).toBeGreaterThanOrEqual(10_000);
    // Every family of request was sent: a generator that stopped producing one would test nothing.
    for (const family of ["search", "upsert", "delete", "get", "count", "collections.create", "collections.update", "cluster.status", "admin.drain", "coordinator.rebalance", "replica.search", "log.stray", "upsert.refused", "delete.refused", "search.mutated", "upsert.msgpack", "search.msgpack", "upsert.msgpack.refused", "upsert.msgpack.mutated", "admin.backup.create", "admin.backup.list", "coordinator.backup.list", "admin.backup.verify", "admin.backup.delete", "admin.restore", "admin.restore.list", "coordinator.restore", "admin.backup.create.invalid", "admin.restore.invalid", "admin.restore.mutated", "http", "diag.info", "diag.metrics", "diag.frobnicate", "transaction", "transaction.refused", "transaction.mutated", "admin.txns.list", "admin.txns.get", "admin.txns.abort", "coordinator.txns.abort"]) {
      expect(report.families[family], family).toBeGreaterThan(0);
    }
    // Transactions and their records were really run, not only refused (a cluster that writes log format 1 refuses them all).
    for (const family of ["transaction", "admin.txns.list"]) expect(report.accepted[family], family).toBeGreaterThan(0);
    expect(report.ingest!.records).toBeGreaterThanOrEqual(300);
  }, 300_000);
});
