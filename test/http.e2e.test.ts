/**
 * HTTP on a node, against a real nats-server and a real node: the REST mirror answers
 * like the NATS API (same bodies, same errors, mapped to HTTP statuses), bad input of
 * any kind gets the envelope and changes nothing, the OpenAPI document is valid 3.1
 * and its schemas are the API's, and /healthz and /readyz tell the truth.
 */
import { connect as connectTcp } from "node:net";
import { Validator } from "@seriousme/openapi-schema-validator";
import { Ajv2020 } from "ajv/dist/2020.js";
import { Packr } from "msgpackr";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { httpRoutes } from "../src/actors/http/routes.ts";
import { httpStatusOf } from "../src/actors/http/status-codes.ts";
import { readiness } from "../src/actors/http/readiness.ts";
import type { JadeClient } from "../src/client/client.ts";
import type { JadeNode } from "../src/node.ts";
import { ErrorCode } from "../src/runtime/errors.ts";
import { limits } from "../src/runtime/limits.ts";
import { AdminOp } from "../src/runtime/subjects.ts";
import type { ShardReplica } from "../src/actors/replica/replica.ts";
import { Harness, randomPoints, waitFor } from "./support/harness.ts";

const harness = new Harness();
const packr = new Packr({ useRecords: false });
let client: JadeClient;
let node: JadeNode;
let base: string;

interface Answer {
  status: number;
  type: string | null;
  body: { ok: true; result: Record<string, unknown> } | { ok: false; error: { code: string; message: string; retryable: boolean; details?: unknown } };
}

async function call(method: string, path: string, body?: unknown, init: { raw?: string | Uint8Array; type?: string } = {}): Promise<Answer> {
  const data = init.raw ?? (body === undefined ? undefined : JSON.stringify(body));
  const res = await fetch(`${base}${path}`, { method, body: data, headers: data === undefined ? {} : { "content-type": init.type ?? "application/json" } });
  const type = res.headers.get("content-type");
  const bytes = new Uint8Array(await res.arrayBuffer());
  const parsed = type?.startsWith("application/msgpack") ? packr.unpack(bytes) : JSON.parse(new TextDecoder().decode(bytes));
  return { status: res.status, type, body: parsed as Answer["body"] };
}

/** A failed answer's code, checked against the status the table gives it. */
function codeOf(answer: Answer): string {
  expect(answer.body.ok, JSON.stringify(answer.body)).toBe(false);
  if (answer.body.ok) throw new Error("unreachable");
  expect(answer.status, `${answer.body.error.code}: ${answer.body.error.message}`).toBe(httpStatusOf[answer.body.error.code as ErrorCode]);
  return answer.body.error.code;
}

function resultOf(answer: Answer): Record<string, unknown> {
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  if (!answer.body.ok) throw new Error(JSON.stringify(answer.body.error));
  return answer.body.result;
}

/** Sends bytes on a raw socket (what fetch refuses to send) and returns the whole response. */
function rawRequest(text: string): Promise<string> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connectTcp(Number(url.port), url.hostname, () => socket.end(text));
    let out = "";
    socket.on("data", (d) => (out += d.toString()));
    socket.on("end", () => resolve(out));
    socket.on("error", reject);
  });
}

beforeAll(async () => {
  const nats = await harness.nats();
  node = await harness.node([nats.url], { http: { port: 0, host: "127.0.0.1" } });
  base = node.httpUrl!;
  client = await harness.client(nats.url);
});
afterAll(() => harness.close());

describe("the REST mirror", () => {
  const dimension = 8;
  const points = randomPoints(40, dimension, 11).map((vector, i) => ({ id: `p${i}`, vector, payload: { n: i } }));

  it("creates, writes, reads and drops a collection, and answers as the NATS API does", async () => {
    const created = resultOf(await call("POST", "/v1/collections", { name: "web", dimension, metric: "l2", shards: 2 }));
    expect(created).toMatchObject({ name: "web", dimension, shards: 2 });
    expect(resultOf(await call("GET", "/v1/collections")).collections).toEqual(await client.listCollections());
    expect(resultOf(await call("GET", "/v1/collections/web"))).toEqual(await client.getCollection("web"));

    const upserted = resultOf(await call("PUT", "/v1/collections/web/points", { points: points.slice(0, 30), consistency: "all" }));
    expect(upserted.upserted).toBe(30);
    // The bulk form: msgpack columns, vectors as float32 bytes.
    const rest = points.slice(30);
    const columns = { ids: rest.map((p) => p.id), vectors: new Uint8Array(new Float32Array(rest.flatMap((p) => p.vector)).buffer), consistency: "all" };
    const binary = await call("PUT", "/v1/collections/web/points", undefined, { raw: packr.pack(columns), type: "application/msgpack" });
    expect(binary.type).toMatch(/^application\/msgpack/);
    expect(resultOf(binary).upserted).toBe(10);

    const query = { vector: points[3]!.vector, k: 5, withPayload: true, consistency: "strong" as const };
    const overHttp = resultOf(await call("POST", "/v1/collections/web/search", query));
    expect(overHttp).toEqual(await client.search("web", query));
    expect((overHttp.hits as { id: string }[])[0]!.id).toBe(points[3]!.id);
    expect(resultOf(await call("POST", "/v1/collections/web/count", { consistency: "strong" })).count).toBe(40);
    const got = resultOf(await call("POST", "/v1/collections/web/points", { ids: [points[0]!.id, "absent"], withVectors: true }));
    expect(got.points).toEqual([{ version: expect.any(Number), id: points[0]!.id, vector: points[0]!.vector.map((x) => Math.fround(x)), payload: { n: 0 } }]);

    expect(resultOf(await call("DELETE", "/v1/collections/web/points", { ids: [points[0]!.id], consistency: "all" })).deleted).toBe(1);
    expect((await client.count("web", { consistency: "strong" })).count).toBe(39);

    const updated = resultOf(await call("PATCH", "/v1/collections/web", { retention: { pointInTimeMs: 0 } }));
    expect(updated.retention).toEqual({ pointInTimeMs: 0 });
    const status = resultOf(await call("GET", "/v1/cluster/status"));
    expect((status.collections as { name: string }[]).map((c) => c.name)).toContain("web");

    expect(resultOf(await call("DELETE", "/v1/collections/web"))).toEqual({ dropped: "web" });
    expect(codeOf(await call("GET", "/v1/collections/web"))).toBe("not_found");
  });

  it("serves every admin operation under /v1/admin", async () => {
    expect(resultOf(await call("POST", "/v1/admin/migrations"))).toEqual({ migrations: [] });
    expect(resultOf(await call("POST", "/v1/admin/backup/list")).backups).toEqual([]);
    expect(codeOf(await call("POST", "/v1/admin/drain", { node: "no such node!" }))).toBe("invalid_argument");
    for (const op of Object.values(AdminOp)) {
      const route = httpRoutes.find((r) => r.subject === `jade.v1.admin.${op}`);
      expect(route, op).toBeDefined();
    }
  });
});

describe("bad input over HTTP", () => {
  const before = async () => ({ count: (await client.count("guard", { consistency: "strong" })).count, collections: (await client.listCollections()).map((c) => c.name).sort() });

  beforeAll(async () => {
    await client.createCollection({ name: "guard", dimension: 3, metric: "cosine", shards: 1 });
    await client.upsert("guard", { points: [{ id: "g1", vector: [1, 0, 0] }], consistency: "all" });
  });

  it("answers each with the envelope and the status of its code, and changes nothing", async () => {
    const start = await before();
    const cases: [Promise<Answer>, string][] = [
      [call("POST", "/v1/collections/guard/search", undefined, { raw: '{"vector":[1,0' }), "invalid_argument"],
      [call("POST", "/v1/collections/guard/search", { vector: [1, 0], k: 1 }), "dimension_mismatch"],
      [call("PUT", "/v1/collections/guard/points", { points: [{ id: "x", vector: [1, 0, 0] }], extra: 1 }), "invalid_argument"],
      [call("PUT", "/v1/collections/guard/points", undefined, { raw: new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]) }), "invalid_argument"],
      [call("PUT", "/v1/collections/guard/points", undefined, { raw: new Uint8Array([0xc1]), type: "application/msgpack" }), "invalid_argument"],
      [call("POST", "/v1/collections/nope/search", { vector: [1, 0, 0], k: 1 }), "not_found"],
      [call("POST", "/v1/collections", { name: "guard", dimension: 3, metric: "cosine" }), "already_exists"],
      [call("PUT", "/v1/collections/guard/points", undefined, { raw: "x".repeat(limits.natsPayloadBytesMax + 1) }), "payload_too_large"],
      [call("GET", "/v1/collections/guard?verbose=1"), "invalid_argument"],
      [call("DELETE", "/v1/collections/guard", { name: "other" }), "invalid_argument"],
      [call("POST", "/v1/collections/guard/frobnicate", {}), "not_found"],
      [call("PUT", "/v1/collections/guard/search", {}), "not_found"],
      [call("POST", "/v1/collections/%ZZ/search", {}), "invalid_argument"],
      [call("POST", "/v1/collections/bad.name/search", { vector: [1, 0, 0], k: 1 }), "invalid_argument"],
      [call("POST", "/v1/collections", undefined, { raw: '{"__proto__":{"polluted":1},"name":"p","dimension":2,"metric":"l2"}' }), "invalid_argument"],
    ];
    for (const [answer, code] of cases) expect(codeOf(await answer)).toBe(code);
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined();
    expect(await before()).toEqual(start);
  });

  it("answers a request its HTTP parser refuses with the envelope too", async () => {
    const response = await rawRequest("GARBAGE / HTTP/1.1\r\nHost: x\r\n\r\n");
    expect(response).toMatch(/^HTTP\/1\.1 400 /);
    const body = JSON.parse(response.slice(response.indexOf("\r\n\r\n") + 4)) as Answer["body"];
    expect(body).toMatchObject({ ok: false, error: { code: "invalid_argument", retryable: false } });
    // Still serving.
    expect(resultOf(await call("POST", "/v1/collections/guard/count")).count).toBe(1);
  });
});

describe("the OpenAPI document", () => {
  it("is valid OpenAPI 3.1, covers every route, and its schemas are the API's", async () => {
    const res = await fetch(`${base}/v1/openapi.json`);
    expect(res.status).toBe(200);
    const doc = (await res.json()) as { openapi: string; paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: object }> } }>> };
    const validator = new Validator();
    const verdict = await validator.validate(doc);
    expect(verdict.errors ?? [], JSON.stringify(verdict.errors)).toEqual([]);
    expect(verdict.valid).toBe(true);
    expect(validator.version).toBe("3.1");
    for (const route of httpRoutes) expect(doc.paths[route.path]?.[route.method.toLowerCase()], `${route.method} ${route.path}`).toBeDefined();

    // Every body schema is a valid JSON Schema 2020-12 (the OpenAPI validator checks schema objects only loosely).
    const ajv = new Ajv2020({ strict: false });
    const schemas = Object.values(doc.paths).flatMap((ops) => Object.values(ops).flatMap((op) => Object.values(op.requestBody?.content ?? {}).map((media) => media.schema)));
    expect(schemas.length).toBeGreaterThan(20);
    for (const schema of schemas) expect(ajv.validateSchema(schema), JSON.stringify(ajv.errors)).toBe(true);
    // The search schema accepts what the API accepts and refuses what it refuses.
    const search = ajv.compile(doc.paths["/v1/collections/{name}/search"]!["post"]!.requestBody!.content["application/json"]!.schema);
    expect(search({ vector: [1, 0, 0], k: 3, consistency: "strong" })).toBe(true);
    expect(search({ vector: [1, 0, 0], k: 0 })).toBe(false);
    expect(search({ vector: [1, 0, 0], k: 3, limit: 3 })).toBe(false);
    expect(search({ vector: "x", k: 3 })).toBe(false);
    const create = ajv.compile(doc.paths["/v1/collections"]!["post"]!.requestBody!.content["application/json"]!.schema);
    expect(create({ name: "ok", dimension: 4, metric: "cosine" })).toBe(true);
    expect(create({ name: "bad name", dimension: 4, metric: "cosine" })).toBe(false);
  });
});

describe("health", () => {
  it("/healthz says alive; /readyz is ready once every replica placed here serves", async () => {
    expect(resultOf(await call("GET", "/healthz"))).toEqual({ status: "alive", node: node.nodeId });
    const ready = await waitFor(async () => {
      const answer = await call("GET", "/readyz");
      return answer.status === 200 && answer;
    });
    expect(resultOf(ready)).toMatchObject({ ready: true, reasons: [] });
    const placedHere = (await client.clusterStatus()).collections.flatMap((c) => c.shards.flatMap((s) => s.replicas)).filter((r) => r.node === node.nodeId);
    expect(resultOf(ready).replicas).toBe(placedHere.length);
    expect(placedHere.length).toBeGreaterThan(0);
  });

  it("names each replica that does not answer reads yet", () => {
    const replica = (state: string) => ({ state }) as ShardReplica;
    const host = {
      placed: () => [
        { collection: "a", shard: 0, replica: replica("serving") },
        { collection: "a", shard: 1, replica: replica("lagging") },
        { collection: "b", shard: 0, replica: replica("replaying") },
        { collection: "b", shard: 1, replica: undefined },
      ],
    };
    expect(readiness(true, host)).toEqual({ ready: false, reasons: ["replica b/0 is replaying", "replica b/1 is not started yet"], replicas: 4 });
    expect(readiness(false, { placed: () => [] })).toEqual({ ready: false, reasons: ["not connected to NATS"], replicas: 0 });
    expect(readiness(true, { placed: () => host.placed().slice(0, 2) }).ready).toBe(true);
  });

  it("/readyz turns 503 when NATS is gone, while /healthz stays up", async () => {
    const nats = await harness.nats();
    const lonely = await harness.node([nats.url], { http: { port: 0, host: "127.0.0.1" } });
    const url = lonely.httpUrl!;
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    await nats.kill();
    const answer = await waitFor(async () => {
      const res = await fetch(`${url}/readyz`);
      return res.status === 503 && ((await res.json()) as Answer["body"]);
    });
    expect(answer).toMatchObject({ ok: false, error: { code: "unavailable", retryable: true, details: { reasons: ["not connected to NATS"] } } });
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
  });
});

describe("jade dev", () => {
  it("serves HTTP and prints its URL in the ready line; --http-port -1 serves none", async () => {
    const dev = await harness.spawnJade(["dev", "--data", await harness.tempDir(), "--nats-port", "0", "--http-port", "0"]);
    expect(dev.httpUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await fetch(`${dev.httpUrl}/healthz`)).status).toBe(200);
    await dev.stop();
    const quiet = await harness.spawnJade(["dev", "--data", await harness.tempDir(), "--nats-port", "0", "--http-port", "-1"]);
    expect(quiet.readyLine).not.toMatch(/http=/);
    await quiet.stop();
  });
});
