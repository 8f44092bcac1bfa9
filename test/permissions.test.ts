/**
 * The permission layout and the identity directory, without a server (test/security.e2e.test.ts
 * checks them against real nats-servers): which subjects a grant opens, what the server's
 * authorization block holds, and that identities are kept, private and replaced only on purpose.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { natsAuthOf } from "../src/cli/commands/shared.ts";
import { AuthDir } from "../src/nats/auth-dir.ts";
import { CredentialsError, NatsAuth, publicKeyOf, readCredentials } from "../src/nats/auth.ts";
import { authorizationConfig, Tenant, tenantInboxPrefix, tenantOfReply, tenantPermissions } from "../src/nats/permissions.ts";

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "jade-perm-"));
  dirs.push(dir);
  return dir;
}
afterAll(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

/** The users in an authorization block (its body is JSON). */
function usersOf(block: string): { nkey: string; permissions?: { publish: { allow: string[] } } }[] {
  return JSON.parse(block.replace(/^authorization /, "")).users;
}

describe("tenant permissions", () => {
  it("read opens search, get and count of each granted collection, to the queue group and to one node; write adds upsert, delete and ingestion", () => {
    const p = tenantPermissions({ name: "acme", collections: { docs: "read", notes: "write" } });
    const ops = (c: string, list: string[]) => list.flatMap((op) => [`jade.v1.${c}.${op}`, `jade.n.*.v1.${c}.${op}`]);
    expect(p.publish.allow.sort()).toEqual([...ops("docs", ["search", "get", "count"]), ...ops("notes", ["search", "get", "count", "upsert", "delete"]), "jade.ingest.notes"].sort());
    expect(p.subscribe.allow).toEqual(["_INBOX_acme.>"]);
    // No wildcard ever reaches past the node token: nothing of another collection, nothing internal.
    for (const subject of p.publish.allow) expect(subject.replace("jade.n.*.", "jade.n.x.")).not.toMatch(/[*>]/);
  });

  it("a request's tenant is the owner of the inbox its reply goes to; node, admin and open clients are none", () => {
    expect(tenantOfReply(`${tenantInboxPrefix("acme")}.abc.1`)).toBe("acme");
    for (const reply of [undefined, "_INBOX.abc.1", "_INBOX_.x", "_INBOX_a b.x", "_INBOX_acme", "reply.elsewhere"]) expect(tenantOfReply(reply), reply).toBeUndefined();
  });

  it("refuses the role names, bad names and unknown grants", () => {
    expect(Tenant.safeParse({ name: "admin", collections: { a: "read" } }).success).toBe(false);
    expect(Tenant.safeParse({ name: "node", collections: {} }).success).toBe(false);
    expect(Tenant.safeParse({ name: "a.b", collections: {} }).success).toBe(false);
    expect(Tenant.safeParse({ name: "ok", collections: { "a.>": "read" } }).success).toBe(false);
    expect(Tenant.safeParse({ name: "ok", collections: { a: "admin" } }).success).toBe(false);
    expect(Tenant.safeParse({ name: "ok", collections: { a: "write" } }).success).toBe(true);
  });

  it("the authorization block is what nats-server reads: users by public key, permissions only where limited", () => {
    const users = usersOf(authorizationConfig([{ nkey: "UA" }, { nkey: "UB", permissions: { publish: { allow: ["x"] }, subscribe: { allow: ["y"] } } }]));
    expect(users).toEqual([{ nkey: "UA" }, { nkey: "UB", permissions: { publish: { allow: ["x"] }, subscribe: { allow: ["y"] } } }]);
  });
});

describe("the identity directory", () => {
  it("makes the node and admin identities once, private, and keeps them", async () => {
    const dir = new AuthDir(path.join(await tempDir(), "auth"));
    await dir.init();
    const node = await readCredentials(dir.credsFile("node"));
    await dir.init();
    expect(await readCredentials(dir.credsFile("node"))).toEqual(node);
    expect((await stat(dir.credsFile("node"))).mode & 0o777).toBe(0o600);
    expect((await stat(dir.credsFile("admin"))).mode & 0o777).toBe(0o600);
    expect((await stat(dir.dir)).mode & 0o777).toBe(0o700);
    const block = await readFile(dir.authorizationFile, "utf8");
    expect(usersOf(block).map((u) => u.nkey)).toEqual([publicKeyOf(node), publicKeyOf(await readCredentials(dir.credsFile("admin")))]);
    // Public keys only: no seed in the server's file.
    expect(block).not.toContain(node.seed);
  });

  it("never replaces a damaged identity with a new one: it says which file is wrong", async () => {
    const dir = new AuthDir(path.join(await tempDir(), "auth"));
    await dir.init();
    await writeFile(dir.credsFile("node"), "{");
    await expect(dir.init()).rejects.toThrow(/node\.creds\.json/);
    expect(await readFile(dir.credsFile("node"), "utf8")).toBe("{");
  });

  it("a tenant keeps its credentials when its grants change, and loses them when removed", async () => {
    const dir = new AuthDir(path.join(await tempDir(), "auth"));
    const first = await dir.putTenant({ name: "acme", collections: { docs: "read" } });
    expect(first.created).toBe(true);
    const creds = await readCredentials(first.credsFile);
    expect(creds.inboxPrefix).toBe("_INBOX_acme");
    const again = await dir.putTenant({ name: "acme", collections: { docs: "write" } });
    expect(again.created).toBe(false);
    expect(await readCredentials(again.credsFile)).toEqual(creds);
    const acme = usersOf(await readFile(dir.authorizationFile, "utf8")).find((u) => u.nkey === publicKeyOf(creds))!;
    expect(acme.permissions!.publish.allow).toContain("jade.v1.docs.upsert");
    expect(await dir.removeTenant("acme")).toBe(true);
    expect(await dir.removeTenant("acme")).toBe(false);
    expect(usersOf(await readFile(dir.authorizationFile, "utf8")).map((u) => u.nkey)).not.toContain(publicKeyOf(creds));
    await expect(readCredentials(first.credsFile)).rejects.toBeInstanceOf(CredentialsError);
  });

  it("a rotated key stays let in, with the same permissions, until it is retired", async () => {
    const dir = new AuthDir(path.join(await tempDir(), "auth"));
    await dir.putTenant({ name: "acme", collections: { docs: "read" } });
    const keys = async () => usersOf(await readFile(dir.authorizationFile, "utf8"));
    const oldNode = publicKeyOf(await readCredentials(dir.credsFile("node")));
    const oldAcme = publicKeyOf(await readCredentials(dir.credsFile("acme")));
    expect(await dir.rotate("node")).toBe(dir.credsFile("node"));
    await dir.rotate("acme");
    const newNode = publicKeyOf(await readCredentials(dir.credsFile("node")));
    const newAcme = publicKeyOf(await readCredentials(dir.credsFile("acme")));
    expect(newNode).not.toBe(oldNode);
    const during = await keys();
    expect(during.map((u) => u.nkey)).toEqual(expect.arrayContaining([oldNode, newNode, oldAcme, newAcme]));
    expect(during.find((u) => u.nkey === oldAcme)!.permissions).toEqual(during.find((u) => u.nkey === newAcme)!.permissions);
    expect(during.find((u) => u.nkey === oldNode)!.permissions).toBeUndefined();
    expect(await dir.retire("node")).toBe(true);
    expect(await dir.retire("node")).toBe(false);
    expect((await keys()).map((u) => u.nkey)).not.toContain(oldNode);
    expect((await keys()).map((u) => u.nkey)).toContain(oldAcme);
    expect(await dir.rotate("nobody")).toBeUndefined();
    // Removing a tenant drops its replaced keys too.
    await dir.removeTenant("acme");
    expect((await keys()).map((u) => u.nkey)).not.toContain(oldAcme);
  });

  it("refuses a credentials file that is not one, saying which", async () => {
    const file = path.join(await tempDir(), "bad.creds.json");
    await writeFile(file, JSON.stringify({ user: "x", seed: "not a seed", inboxPrefix: "_INBOX" }));
    await expect(readCredentials(file)).rejects.toThrow(/bad\.creds\.json.*seed/s);
    await expect(readCredentials(path.join(path.dirname(file), "missing.json"))).rejects.toThrow(/missing\.json/);
  });
});

describe("connection options", () => {
  it("a client certificate needs its key; credentials exclude a user and password", () => {
    expect(NatsAuth.safeParse({ tls: { certFile: "c.pem" } }).success).toBe(false);
    expect(NatsAuth.safeParse({ credsFile: "a", user: "u", password: "p" }).success).toBe(false);
    expect(NatsAuth.safeParse({ user: "u" }).success).toBe(false);
    expect(NatsAuth.safeParse({ tls: { caFile: "ca.pem" }, credsFile: "a" }).success).toBe(true);
    expect(natsAuthOf({})).toBeUndefined();
    expect(natsAuthOf({ tlsCa: "ca.pem", creds: "a" })).toEqual({ tls: { caFile: "ca.pem" }, credsFile: "a" });
    expect(() => natsAuthOf({ tlsCert: "c.pem" })).toThrow(/certificate needs its key/);
  });
});
