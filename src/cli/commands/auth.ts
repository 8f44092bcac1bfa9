/**
 * `jade auth init|server-config|rotate|retire`, `jade auth tenant add|list|remove`: the NATS identities of a
 * secured cluster, kept under `<data>/auth` (nats/auth-dir.ts). A change to the tenants reloads
 * the nats-server of a `jade dev --auth` on the same data directory; for a NATS of your own,
 * include the printed authorization file in its configuration and reload it.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import type { Command } from "commander";
import { AuthDir } from "../../nats/auth-dir.ts";
import { reloadEmbeddedNats } from "../../nats/embedded.ts";
import { Grant, Tenant } from "../../nats/permissions.ts";
import { printJson, printLine, table } from "../format.ts";
import { CliError, report } from "./shared.ts";
import { z } from "zod";

interface AuthOptions {
  data: string;
  json?: boolean;
}

const dataOption = ["--data <dir>", "the data directory (identities in <dir>/auth)", "./data"] as const;

const list = (value: string, previous: string[] = []) => [...previous, ...value.split(",").map((s) => s.trim()).filter(Boolean)];

function authDir(o: AuthOptions): AuthDir {
  return new AuthDir(path.join(o.data, "auth"));
}

/** Runs `body`, turning failures into messages and exit codes. */
function run<T extends unknown[]>(body: (...args: T) => Promise<void>): (...args: T) => Promise<void> {
  return async (...args) => {
    try {
      await body(...args);
    } catch (err) {
      process.exitCode = report(err instanceof z.ZodError ? new CliError(z.prettifyError(err)) : err);
    }
  };
}

/** Applies the authorization file now where a `jade dev` runs on this data directory; says what to do otherwise. */
async function reload(o: AuthOptions, dir: AuthDir): Promise<void> {
  if (await reloadEmbeddedNats(path.join(o.data, "nats"))) return printLine("the nats-server of jade dev reloaded its users");
  printLine(`no jade dev runs on ${o.data}: include ${dir.authorizationFile} in your nats-server configuration and reload it (nats-server --signal reload)`);
}

export function registerAuthCommands(program: Command): void {
  const auth = program.command("auth").description("NATS identities of a secured cluster: node, admin and tenants (docs/security.md)");
  auth
    .command("init")
    .description("make the node's and the admin's credentials (kept), and the authorization file nats-server includes")
    .option(...dataOption)
    .action(
      run(async (o: AuthOptions) => {
        const dir = authDir(o);
        await dir.init();
        printLine(`node credentials: ${dir.credsFile("node")}\nadmin credentials: ${dir.credsFile("admin")}\nauthorization file: ${dir.authorizationFile}`);
      }),
    );
  auth
    .command("server-config")
    .description("print the authorization block to put in a nats-server configuration")
    .option(...dataOption)
    .action(
      run(async (o: AuthOptions) => {
        const dir = authDir(o);
        await dir.init();
        printLine(`# include ${JSON.stringify(dir.authorizationFile)}`);
        printLine(await readFile(dir.authorizationFile, "utf8"));
      }),
    );
  auth
    .command("rotate <user>")
    .description("new credentials for node, admin or a tenant; the old key stays valid until `jade auth retire`")
    .option(...dataOption)
    .action(
      run(async (user: string, o: AuthOptions) => {
        const dir = authDir(o);
        const file = await dir.rotate(user);
        if (!file) throw new CliError(`no user ${user}: node, admin, or a tenant of jade auth tenant add`);
        printLine(`new credentials for ${user}: ${file}\nhand them out, restart whoever uses the old ones, then: jade auth retire ${user}`);
        await reload(o, dir);
      }),
    );
  auth
    .command("retire <user>")
    .description("stop letting in the keys `jade auth rotate` replaced (their connections are closed)")
    .option(...dataOption)
    .action(
      run(async (user: string, o: AuthOptions) => {
        const dir = authDir(o);
        if (!(await dir.retire(user))) throw new CliError(`${user} has no replaced key to retire`);
        printLine(`the replaced keys of ${user} are no longer let in`);
        await reload(o, dir);
      }),
    );
  const tenant = auth.command("tenant").description("tenants: NATS users that may read or write named collections, and nothing else");
  tenant
    .command("add <name>")
    .description("add a tenant (new credentials), or replace an existing tenant's grants (its credentials stay valid)")
    .option("--read <collections>", "collections it may search, get and count (comma-separated; repeatable)", list, [])
    .option("--write <collections>", "collections it may also upsert, delete and ingest", list, [])
    .option(...dataOption)
    .action(
      run(async (name: string, o: AuthOptions & { read: string[]; write: string[] }) => {
        if (o.read.length + o.write.length === 0) throw new CliError("name at least one collection with --read or --write");
        const both = o.read.filter((c) => o.write.includes(c));
        if (both.length > 0) throw new CliError(`${both.join(", ")}: given to --read and --write (write includes read)`);
        const collections = Object.fromEntries([...o.read.map((c) => [c, Grant.Read]), ...o.write.map((c) => [c, Grant.Write])]);
        const dir = authDir(o);
        const { credsFile, created } = await dir.putTenant(Tenant.parse({ name, collections }));
        printLine(created ? `tenant ${name} added; its credentials: ${credsFile}` : `tenant ${name}'s grants replaced; its credentials are unchanged: ${credsFile}`);
        await reload(o, dir);
      }),
    );
  tenant
    .command("list")
    .description("every tenant and its grants")
    .option(...dataOption)
    .option("--json", "print JSON")
    .action(
      run(async (o: AuthOptions) => {
        const tenants = await authDir(o).tenants();
        if (o.json) return printJson(tenants.map(({ name, collections }) => ({ name, collections })));
        if (tenants.length === 0) return printLine("no tenants");
        printLine(table(["tenant", "read", "write"], tenants.map((t) => [t.name, grants(t, Grant.Read), grants(t, Grant.Write)])));
      }),
    );
  tenant
    .command("remove <name>")
    .description("remove a tenant: its connections are closed once nats-server reloads, and its credentials deleted")
    .option(...dataOption)
    .action(
      run(async (name: string, o: AuthOptions) => {
        const dir = authDir(o);
        if (!(await dir.removeTenant(name))) throw new CliError(`no tenant ${name}`);
        printLine(`tenant ${name} removed`);
        await reload(o, dir);
      }),
    );
}

function grants(tenant: Tenant, grant: Grant): string {
  return Object.entries(tenant.collections)
    .filter(([, g]) => g === grant)
    .map(([c]) => c)
    .join(", ");
}
