/**
 * Security, enforced by real nats-servers and checked both ways: TLS on client connections,
 * routes and HTTP (certificates made by openssl at run time), and per-collection tenants as
 * NATS users with subject permissions (nats/permissions.ts), whose refusals come back as
 * `forbidden` at once. Tenants are added and removed on a running server by a reload.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import net from "node:net";
import https from "node:https";
import http from "node:http";
import path from "node:path";
import { connect, nkeyAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { openListedKv } from "../src/nats/kv-keys.ts";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JadeClient } from "../src/client/client.ts";
import { KeyStore } from "../src/actors/keys/store.ts";
import { AuthDir } from "../src/nats/auth-dir.ts";
import { connectionOptions, readCredentials, type NatsAuth } from "../src/nats/auth.ts";
import { reloadEmbeddedNats, type EmbeddedNats } from "../src/nats/embedded.ts";
import type { JadeNode } from "../src/node.ts";
import { ErrorCode } from "../src/runtime/errors.ts";
import { names } from "../src/runtime/subjects.ts";
import { makeTestCerts, type TestCerts } from "./support/certs.ts";
import { Harness, jadeBin, randomPoints, repoRoot, waitFor } from "./support/harness.ts";

const harness = new Harness();
let certs: TestCerts;
let auth: AuthDir;
let natsDir: string;
let nats: EmbeddedNats;
let node: JadeNode;
let admin: JadeClient;

const as = (user: string): NatsAuth => ({ tls: { caFile: certs.caFile }, credsFile: auth.credsFile(user) });
const points = (n: number, prefix: string) => randomPoints(n, 4, n).map((vector, i) => ({ id: `${prefix}${i}`, vector }));
const forbidden = { code: ErrorCode.Forbidden };

beforeAll(async () => {
  const dir = await harness.tempDir("jade-security-");
  certs = await makeTestCerts(dir);
  auth = new AuthDir(path.join(dir, "auth"));
  await auth.putTenant({ name: "reader", collections: { docs: "read" } });
  await auth.putTenant({ name: "writer", collections: { docs: "write" } });
  natsDir = await harness.tempDir("jade-nats-");
  const serverTls = { certFile: certs.serverCertFile, keyFile: certs.serverKeyFile, caFile: certs.caFile };
  nats = await harness.nats(natsDir, { tls: serverTls, authorizationFile: auth.authorizationFile });
  node = await harness.node([nats.url], { nodeId: "sec1", auth: as("node"), http: { port: 0, host: "127.0.0.1", tls: { certFile: certs.serverCertFile, keyFile: certs.serverKeyFile } } });
  admin = await harness.client(nats.url, as("admin"));
  for (const name of ["docs", "secret"]) {
    await admin.createCollection({ name, dimension: 4, metric: "l2", shards: 2, replicas: 1 });
    await admin.upsert(name, { points: points(20, name), consistency: "all" });
  }
}, 120_000);
afterAll(() => harness.close());

/** What a plaintext NATS client gets from a server port within 3 s (a TLS server closes it after its 2 s handshake timeout). */
async function plaintextExchange(port: number): Promise<string> {
  return new Promise((resolve) => {
    let received = "";
    const socket = net.connect(port, "127.0.0.1", () => socket.write('CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n'));
    socket.on("data", (chunk) => (received += chunk.toString()));
    socket.on("close", () => resolve(received));
    socket.on("error", () => undefined);
    socket.setTimeout(3_000, () => socket.destroy());
  });
}

async function refusal(servers: string, options: Parameters<typeof connect>[0]): Promise<string> {
  const nc = await connect({ servers, maxReconnectAttempts: 0, timeout: 5_000, ...options }).catch((err: Error) => err);
  if (!(nc instanceof Error)) {
    await nc.close();
    return "connected";
  }
  return nc.message;
}

describe("TLS", () => {
  it("refuses a plaintext client and one that does not trust the servers' CA; serves one that does", async () => {
    const exchange = await plaintextExchange(nats.port);
    expect(exchange).toContain('"tls_required":true');
    expect(exchange).not.toContain("PONG");
    expect(await refusal(nats.url, { tls: { caFile: certs.strangerCaFile } })).toMatch(/certificate/);
    expect((await admin.search("docs", { vector: [0, 0, 0, 0], k: 3 })).hits).toHaveLength(3);
  });

  it("a server that verifies clients refuses one without a certificate of its CA", async () => {
    const strict = await harness.nats(undefined, { tls: { certFile: certs.serverCertFile, keyFile: certs.serverKeyFile, caFile: certs.caFile, verifyClients: true } });
    expect(await refusal(strict.url, { tls: { caFile: certs.caFile } })).not.toBe("connected");
    expect(await refusal(strict.url, { tls: { caFile: certs.caFile, certFile: certs.clientCertFile, keyFile: certs.clientKeyFile } })).toBe("connected");
  });

  it("routes between servers are TLS only, and a cluster forms and replicates over them", async () => {
    const cluster = await harness.natsCluster(3, { tls: { certFile: certs.serverCertFile, keyFile: certs.serverKeyFile, caFile: certs.caFile } });
    const urls = cluster.map((s) => s.url);
    const tls = { tls: { caFile: certs.caFile } };
    await harness.node(urls, { nodeId: "r1", streamReplicas: 3, auth: tls });
    const client = await harness.client(urls, tls);
    await client.createCollection({ name: "routed", dimension: 4, metric: "l2", shards: 1, replicas: 1 });
    await client.upsert("routed", { points: points(10, "r"), consistency: "all" });
    expect((await client.count("routed", { consistency: "strong" })).count).toBe(10);
    // A plaintext route port greets with its INFO at once; a TLS one says nothing until a handshake.
    const route = await plaintextExchange(cluster[0]!.clusterPort!);
    expect(route).not.toContain("INFO");
    expect(route).not.toContain("PONG");
  });

  it("serves HTTP over TLS only", async () => {
    const url = new URL(node.httpUrl!);
    expect(url.protocol).toBe("https:");
    const status = await new Promise<number>((resolve, reject) =>
      https.get({ host: url.hostname, port: url.port, path: "/healthz", ca: [readFileSync(certs.caFile)] }, (res) => resolve(res.statusCode!)).on("error", reject),
    );
    expect(status).toBe(200);
    const plain = await new Promise<string>((resolve) =>
      http.get({ host: url.hostname, port: url.port, path: "/healthz" }, (res) => resolve(`status ${res.statusCode}`)).on("error", (err) => resolve(`refused: ${err.message}`)),
    );
    expect(plain).not.toBe("status 200");
  });
});

describe("tenants: permissions through NATS", () => {
  it("a tenant that may read a collection searches, gets and counts it, and may not write it", async () => {
    const reader = await harness.client(nats.url, as("reader"));
    expect((await reader.search("docs", { vector: [0, 0, 0, 0], k: 5 })).hits).toHaveLength(5);
    expect((await reader.get("docs", { ids: ["docs1"] })).points.map((p) => p.id)).toEqual(["docs1"]);
    expect((await reader.count("docs")).count).toBe(20);
    await expect(reader.upsert("docs", { points: points(1, "no") })).rejects.toMatchObject(forbidden);
    await expect(reader.delete("docs", { ids: ["docs1"] })).rejects.toMatchObject(forbidden);
    await expect(jetstream(reader.nc, { timeout: 5_000 }).publish("jade.ingest.docs", JSON.stringify(points(1, "no")[0]))).rejects.toThrow(/Permissions Violation/);
    expect((await admin.count("docs", { consistency: "strong" })).count).toBe(20);
  });

  it("a tenant sees nothing of another collection, the catalog, the cluster or the internal subjects", async () => {
    const reader = await harness.client(nats.url, as("reader"));
    await expect(reader.search("secret", { vector: [0, 0, 0, 0], k: 1 })).rejects.toMatchObject(forbidden);
    await expect(reader.get("secret", { ids: ["secret1"] })).rejects.toMatchObject(forbidden);
    await expect(reader.listCollections()).rejects.toMatchObject(forbidden);
    await expect(reader.getCollection("docs")).rejects.toMatchObject(forbidden);
    await expect(reader.clusterStatus()).rejects.toMatchObject(forbidden);
    await expect(reader.admin("migrations", {})).rejects.toMatchObject(forbidden);
    for (const subject of ["jade.log.docs.0", "jade.log.>", "jade.replica.>", "jade.logs.>", "$KV.jade_collections.>", "_INBOX_writer.>", "_INBOX.>", ">"]) {
      const sub = reader.nc.subscribe(subject);
      const closed = await sub.closed;
      expect(String(closed), subject).toMatch(/Permissions Violation for Subscription/);
    }
    await expect((await new Kvm(reader.nc).open("jade_collections")).get("docs")).rejects.toThrow();
    await expect(reader.nc.request("jade.replica.sec1.docs.0.search", "{}", { timeout: 5_000 })).rejects.toThrow(/Permissions Violation/);
  });

  it("a tenant that may write a collection upserts, deletes and ingests it, and may not touch another", async () => {
    const writer = await harness.client(nats.url, as("writer"));
    await writer.upsert("docs", { points: points(5, "w"), consistency: "all" });
    await writer.delete("docs", { ids: ["w0"], consistency: "all" });
    const ack = await jetstream(writer.nc, { timeout: 5_000 }).publish("jade.ingest.docs", JSON.stringify({ id: "ingested", vector: [1, 1, 1, 1] }));
    expect(ack.seq).toBeGreaterThan(0);
    await waitFor(async () => (await admin.get("docs", { ids: ["ingested"] })).points.length === 1, { what: "the ingested point" });
    expect((await writer.count("docs", { consistency: "strong" })).count).toBe(20 + 4 + 1);
    await expect(writer.upsert("secret", { points: points(1, "no") })).rejects.toMatchObject(forbidden);
    await expect(writer.dropCollection("docs")).rejects.toMatchObject(forbidden);
    expect((await admin.count("secret", { consistency: "strong" })).count).toBe(20);
  });

  it("refuses a client without credentials, and one whose key the server does not know", async () => {
    expect(await refusal(nats.url, { tls: { caFile: certs.caFile } })).toMatch(/Authorization Violation/);
    const stranger = new AuthDir(await harness.tempDir("jade-stranger-"));
    await stranger.init();
    expect(await refusal(nats.url, await connectionOptions({ tls: { caFile: certs.caFile }, credsFile: stranger.credsFile("admin") }))).toMatch(/Authorization Violation/);
  });

  it("a rotated key keeps working until retired; a client that reads the new file reconnects with it, one pinned to the old key is closed", async () => {
    await auth.putTenant({ name: "rotating", collections: { docs: "read" } });
    await reloadEmbeddedNats(natsDir);
    const early = await waitFor(async () => harness.client(nats.url, as("rotating")).catch(() => undefined), { what: "the server to take the tenant" });
    // Its key in memory only: it never reads the file again.
    const pinned = await connect({ servers: nats.url, maxReconnectAttempts: 0, tls: { caFile: certs.caFile }, authenticator: nkeyAuthenticator(new TextEncoder().encode((await readCredentials(auth.credsFile("rotating"))).seed)), inboxPrefix: "_INBOX_rotating" });
    await auth.rotate("rotating");
    await reloadEmbeddedNats(natsDir);
    const fresh = await waitFor(async () => harness.client(nats.url, as("rotating")).catch(() => undefined), { what: "the new credentials let in" });
    expect((await fresh.count("docs")).count).toBeGreaterThan(0);
    expect((await early.count("docs")).count).toBeGreaterThan(0);
    const pinnedClosed = pinned.closed();
    await auth.retire("rotating");
    await reloadEmbeddedNats(natsDir);
    expect(String(await pinnedClosed)).toMatch(/Authorization Violation/);
    // Disconnected with the old key, it reconnected with the file's new one: no restart.
    await waitFor(async () => (await early.count("docs").catch(() => ({ count: 0 }))).count > 0, { what: "the early client back, with the new key" });
    expect((await fresh.count("docs")).count).toBeGreaterThan(0);
  });

  it("a tenant added to a running server may connect once it reloads; one removed is disconnected", async () => {
    await auth.putTenant({ name: "late", collections: { secret: "read" } });
    expect(await refusal(nats.url, await connectionOptions(as("late")))).toMatch(/Authorization Violation/);
    expect(await reloadEmbeddedNats(natsDir)).toBe(true);
    const late: NatsConnection = await waitFor(async () => connect({ servers: nats.url, maxReconnectAttempts: 0, ...(await connectionOptions(as("late"))) }).catch(() => undefined), {
      what: "the server to take the new tenant",
    });
    const closed = late.closed();
    await auth.removeTenant("late");
    expect(await reloadEmbeddedNats(natsDir)).toBe(true);
    expect(String(await closed)).toMatch(/Authorization Violation/);
  });
});

/** `jade <args>` as a child process, with no JADE_* settings of this environment. */
function jadeCli(args: string[], input = ""): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("JADE_")));
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [jadeBin, ...args], { cwd: repoRoot, env, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin?.end(input);
  });
}

describe("jade dev --auth with TLS: the quick start of a secured node", () => {
  it("lets in only known users over TLS; a tenant added with jade auth searches at once, and may not write", async () => {
    const data = await harness.tempDir("jade-secure-dev-");
    const tlsArgs = ["--tls-cert", certs.serverCertFile, "--tls-key", certs.serverKeyFile, "--tls-ca", certs.caFile];
    const dev = await harness.spawnJade(["dev", "--data", data, "--nats-port", "0", "--http-port", "0", "--auth", ...tlsArgs]);
    expect(dev.httpUrl).toMatch(/^https:\/\//);
    const adminCreds = /creds=(\S+)/.exec(dev.readyLine)![1]!;
    const secure = ["--nats", dev.natsUrl, "--tls-ca", certs.caFile];
    const created = await jadeCli(["collections", "create", "docs", "--dimension", "2", "--metric", "l2", ...secure, "--creds", adminCreds]);
    expect(created.stderr).toBe("");
    const anonymous = await jadeCli(["collections", "list", ...secure]);
    expect(anonymous.code).toBe(2);
    expect(anonymous.stderr).toMatch(/Authorization Violation/);
    const plaintext = await jadeCli(["collections", "list", "--nats", dev.natsUrl, "--creds", adminCreds]);
    expect(plaintext.code).toBe(2);

    const added = await jadeCli(["auth", "tenant", "add", "acme", "--read", "docs", "--data", data]);
    expect(added.stdout).toMatch(/reloaded/);
    const tenant = [...secure, "--creds", path.join(data, "auth", "acme.creds.json")];
    await waitFor(async () => (await jadeCli(["search", "docs", "--vector", "[1,2]", ...tenant])).code === 0, { what: "the tenant let in after the reload" });
    const write = await jadeCli(["upsert", "docs", ...tenant], '{"id":"a","vector":[1,2]}\n');
    expect(write.code).toBe(1);
    expect(write.stderr).toMatch(/forbidden/);
    const list = await jadeCli(["collections", "list", ...tenant]);
    expect(list.stderr).toMatch(/forbidden/);
  });
});

describe("API keys for HTTP", () => {
  const lines: string[] = [];
  const slow = { perSecond: 0.2, burst: 2 };
  let web: JadeNode[] = [];
  let natsUrl: string;
  let keysAdmin: JadeClient;

  beforeAll(async () => {
    const open = await harness.nats();
    // Every line the nodes log, to show no key ever reaches a log.
    const log = pino({ level: "debug" }, { write: (line: string) => void lines.push(line) });
    web = [
      await harness.node([open.url], { nodeId: "h1", log, http: { port: 0, host: "127.0.0.1", apiKeys: true } }),
      await harness.node([open.url], { nodeId: "h2", log, http: { port: 0, host: "127.0.0.1", apiKeys: true } }),
      // Rates low enough that a test's third quick request is over them: 2 at once, then one per 5 s.
      await harness.node([open.url], { nodeId: "h3", log, http: { port: 0, host: "127.0.0.1", apiKeys: true }, rateLimits: { httpKey: slow, natsTenant: slow } }),
    ];
    natsUrl = open.url;
    keysAdmin = await harness.client(open.url);
    for (const name of ["docs", "secret"]) {
      await keysAdmin.createCollection({ name, dimension: 4, metric: "l2", shards: 2, replicas: 1 });
      await keysAdmin.upsert(name, { points: points(10, name), consistency: "all" });
    }
  }, 120_000);

  const createKey = (name: string, scopes: { collection: string; access: string }[]) => keysAdmin.admin<{ id: string; key: string }>("keys.create", { name, scopes });

  /** One HTTP request to node `i`: its status and envelope. */
  async function call(i: number, method: string, path: string, key?: string, body?: unknown): Promise<{ status: number; reply: { ok: boolean; error?: { code: string } ; result?: unknown } }> {
    const res = await fetch(`${web[i]!.httpUrl}${path}`, {
      method,
      headers: { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, reply: path === "/metrics" && res.ok ? { ok: true } : JSON.parse(text) };
  }

  it("a missing, malformed or unknown key is 401 with the envelope; health, readiness and OpenAPI need none", async () => {
    expect(await call(0, "GET", "/v1/collections")).toMatchObject({ status: 401, reply: { ok: false, error: { code: "unauthorized" } } });
    expect(await call(0, "GET", "/v1/collections", "nonsense")).toMatchObject({ status: 401 });
    expect(await call(0, "GET", "/v1/collections", "jade_abcdefghijkl_" + "A".repeat(43))).toMatchObject({ status: 401 });
    for (const path of ["/healthz", "/readyz", "/v1/openapi.json"]) expect((await fetch(`${web[0]!.httpUrl}${path}`)).status, path).toBe(200);
  });

  it("a key may do what its scopes say, and sees only its collections", async () => {
    const reader = (await createKey("reader", [{ collection: "docs", access: "read" }])).key;
    const search = { vector: [0, 0, 0, 0], k: 3 };
    expect(await call(0, "POST", "/v1/collections/docs/search", reader, search)).toMatchObject({ status: 200 });
    expect(await call(1, "POST", "/v1/collections/docs/count", reader, {})).toMatchObject({ status: 200 });
    expect(await call(0, "PUT", "/v1/collections/docs/points", reader, { points: points(1, "no") })).toMatchObject({ status: 403, reply: { error: { code: "forbidden" } } });
    expect(await call(0, "POST", "/v1/collections/secret/search", reader, search)).toMatchObject({ status: 403 });
    expect(await call(0, "DELETE", "/v1/collections/docs", reader)).toMatchObject({ status: 403 });
    expect(await call(0, "GET", "/v1/cluster/status", reader)).toMatchObject({ status: 403 });
    expect(await call(0, "GET", "/metrics", reader)).toMatchObject({ status: 403 });
    expect(await call(0, "GET", "/v1/events", reader)).toMatchObject({ status: 403 });
    const listed = await call(0, "GET", "/v1/collections", reader);
    expect((listed.reply.result as { collections: { name: string }[] }).collections.map((c) => c.name)).toEqual(["docs"]);

    const writer = (await createKey("writer", [{ collection: "docs", access: "write" }])).key;
    expect(await call(1, "PUT", "/v1/collections/docs/points", writer, { points: points(2, "w"), consistency: "all" })).toMatchObject({ status: 200 });
    expect(await call(1, "POST", "/v1/collections", writer, { name: "mine", dimension: 2 })).toMatchObject({ status: 403 });

    const operator = (await createKey("operator", [{ collection: "*", access: "admin" }])).key;
    expect(await call(0, "GET", "/v1/cluster/status", operator)).toMatchObject({ status: 200 });
    expect(await call(0, "GET", "/metrics", operator)).toMatchObject({ status: 200 });
    expect(((await call(0, "GET", "/v1/collections", operator)).reply.result as { collections: unknown[] }).collections).toHaveLength(2);
    const created = await call(0, "POST", "/v1/admin/keys/create", operator, { name: "made over http", scopes: [{ collection: "docs", access: "read" }] });
    expect(created.status).toBe(200);
    expect(await call(1, "POST", "/v1/collections/docs/search", (created.reply.result as { key: string }).key, search)).toMatchObject({ status: 200 });
  });

  it("a revoked key stops working on every node", async () => {
    const { id, key } = await createKey("short-lived", [{ collection: "docs", access: "read" }]);
    for (const i of [0, 1]) await waitFor(async () => (await call(i, "GET", "/v1/collections", key)).status === 200, { what: `the new key known on h${i + 1}` });
    const revokedAt = performance.now();
    await keysAdmin.admin("keys.revoke", { id });
    const refusedAfterMs: number[] = [];
    for (const i of [0, 1]) {
      await waitFor(async () => (await call(i, "GET", "/v1/collections", key)).status === 401, { what: `h${i + 1} to refuse the revoked key`, intervalMs: 10 });
      refusedAfterMs.push(Math.round(performance.now() - revokedAt));
    }
    // Measured, not asserted (the issue asks for under a second): the deletion reaches every node's watch in milliseconds.
    console.log(`revoked key refused by h1 after ${refusedAfterMs[0]} ms, by h2 after ${refusedAfterMs[1]} ms`);
    const { keys } = await keysAdmin.admin<{ keys: { id: string }[] }>("keys.list", {});
    expect(keys.map((k) => k.id)).not.toContain(id);
    await expect(keysAdmin.admin("keys.revoke", { id })).rejects.toMatchObject({ code: ErrorCode.NotFound });
  });

  it("a key works on a node whose watch has not delivered it yet, and a revoked or unknown one does not", async () => {
    // A store whose watch never started stands for a node the creation has not reached: only
    // its read of KV on a miss can know the key.
    const nc = await connect({ servers: natsUrl });
    try {
      const behind = new KeyStore(await openListedKv(nc, names.keysBucket), pino({ level: "silent" }));
      const { id, key } = await createKey("just made", [{ collection: "docs", access: "read" }]);
      expect(await behind.authenticate(`Bearer ${key}`)).toMatchObject({ id, name: "just made" });
      await expect(behind.authenticate(`Bearer ${key.slice(0, -1)}${key.endsWith("A") ? "B" : "A"}`)).rejects.toMatchObject({ code: ErrorCode.Unauthorized });
      await keysAdmin.admin("keys.revoke", { id });
      await expect(behind.authenticate(`Bearer ${key}`)).rejects.toMatchObject({ code: ErrorCode.Unauthorized });
      await expect(behind.authenticate(`Bearer jade_abcdefghijkl_${"A".repeat(43)}`)).rejects.toMatchObject({ code: ErrorCode.Unauthorized });
    } finally {
      await nc.close();
    }
  });

  it("over its rate, an API key is refused 429 with Retry-After; another key is not; the refusals are counted", async () => {
    const { key } = await createKey("busy", [{ collection: "docs", access: "read" }]);
    const other = (await createKey("calm", [{ collection: "docs", access: "read" }])).key;
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await call(2, "POST", "/v1/collections/docs/count", key, {})).status);
    expect(statuses).toEqual([200, 200, 429]);
    const res = await fetch(`${web[2]!.httpUrl}/v1/collections/docs/count`, { method: "POST", headers: { authorization: `Bearer ${key}` }, body: "{}" });
    expect(res.status).toBe(429);
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(await res.json()).toMatchObject({ ok: false, error: { code: "rate_limited", retryable: true, details: { retryAfterMs: expect.any(Number) } } });
    expect((await call(2, "POST", "/v1/collections/docs/count", other, {})).status).toBe(200);
    const scraper = (await createKey("scraper", [{ collection: "*", access: "read" }])).key;
    const metrics = await (await fetch(`${web[2]!.httpUrl}/metrics`, { headers: { authorization: `Bearer ${scraper}` } })).text();
    expect(metrics).toMatch(/jade_requests_throttled_total\{[^}]*transport="http"[^}]*\} 2\n/);
  });

  it("over its rate, a NATS tenant (its inbox prefix) is refused rate_limited; a client of no tenant is not", async () => {
    const ask = async (inboxPrefix?: string) => {
      const nc = await connect({ servers: natsUrl, ...(inboxPrefix ? { inboxPrefix } : {}) });
      try {
        const codes = [];
        for (let i = 0; i < 3; i++) {
          const reply = JSON.parse((await nc.request("jade.n.h3.v1.docs.count", "{}", { timeout: 10_000 })).string()) as { ok: boolean; error?: { code: string } };
          codes.push(reply.ok ? "ok" : reply.error!.code);
        }
        return codes;
      } finally {
        await nc.close();
      }
    };
    expect(await ask("_INBOX_acme")).toEqual(["ok", "ok", "rate_limited"]);
    expect(await ask("_INBOX_zeta")).toEqual(["ok", "ok", "rate_limited"]);
    expect(await ask()).toEqual(["ok", "ok", "ok"]);
  });

  it("no key, and no part of one, ever reaches a log line", async () => {
    const { key } = await createKey("logged?", [{ collection: "docs", access: "read" }]);
    await call(0, "PUT", "/v1/collections/docs/points", key, { points: points(1, "x") });
    await call(0, "POST", "/v1/collections/secret/search", key, { vector: [0, 0, 0, 0], k: 1 });
    await call(1, "GET", "/v1/collections", `${key}x`);
    const secret = key.split("_")[2]!;
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.filter((l) => l.includes(secret))).toEqual([]);
    expect(lines.some((l) => l.includes("request failed"))).toBe(true);
  });
});
