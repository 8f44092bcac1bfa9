/**
 * A directory of NATS identities for a secured cluster (`jade auth`, `jade dev --auth`): the
 * node's and the admin's credentials, one per tenant, the tenants' grants, and the
 * `authorization` block nats-server includes (nats/permissions.ts). Seeds never leave their
 * credentials files (mode 0600, in a 0700 directory); the server's block holds public keys only.
 */
import { chmod, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { nkeys } from "@nats-io/nats-core";
import { z } from "zod";
import { Credentials, publicKeyOf, readCredentials } from "./auth.ts";
import { authorizationConfig, Role, Tenant, tenantInboxPrefix, tenantPermissions, type NatsUser } from "./permissions.ts";

const TenantRecord = Tenant.extend({ publicKey: z.string().startsWith("U") });
type TenantRecord = z.infer<typeof TenantRecord>;
const Registry = z.object({ tenants: z.array(TenantRecord) }).strict();
/** Keys replaced by `rotate` and still let in, per user, until `retire`. */
const Retiring = z.record(z.string(), z.array(z.string().startsWith("U")));
type Retiring = z.infer<typeof Retiring>;

/** Replaces `file` whole (a reader never sees half of it), readable by its owner only when `secret`. */
async function writeWhole(file: string, text: string, secret: boolean): Promise<void> {
  const partial = `${file}.partial`;
  await writeFile(partial, text, { mode: secret ? 0o600 : 0o644 });
  await rename(partial, file);
}

/** A JSON file's content, or `missing` when there is no such file. */
async function readJson(file: string, missing: unknown): Promise<unknown> {
  const text = await readFile(file, "utf8").catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return undefined;
    throw err;
  });
  return text === undefined ? missing : JSON.parse(text);
}

function newCredentials(user: string, inboxPrefix: string): Credentials {
  const seed = new TextDecoder().decode(nkeys.createUser().getSeed());
  return Credentials.parse({ user, seed, inboxPrefix });
}

export class AuthDir {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = path.resolve(dir);
  }

  /** The `authorization` block to include in nats-server's configuration. */
  get authorizationFile(): string {
    return path.join(this.dir, "authorization.conf");
  }

  credsFile(user: string): string {
    return path.join(this.dir, `${user}.creds.json`);
  }

  get #registryFile(): string {
    return path.join(this.dir, "tenants.json");
  }

  get #retiringFile(): string {
    return path.join(this.dir, "retiring.json");
  }

  /** Makes the node and admin identities if missing, then (re)writes the authorization block. */
  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await chmod(this.dir, 0o700);
    for (const role of Object.values(Role)) {
      const file = this.credsFile(role);
      // Only a missing file is made: a damaged one is reported, never silently replaced by a new identity.
      const existing = await readCredentials(file).catch((err: Error) => {
        if ((err.cause as NodeJS.ErrnoException | undefined)?.code === "ENOENT") return undefined;
        throw err;
      });
      if (!existing) await writeWhole(file, JSON.stringify(newCredentials(role, "_INBOX"), null, 2) + "\n", true);
    }
    await this.#writeAuthorization(await this.tenants());
  }

  async tenants(): Promise<TenantRecord[]> {
    return Registry.parse(await readJson(this.#registryFile, { tenants: [] })).tenants;
  }

  /**
   * Adds a tenant with new credentials, or replaces an existing tenant's grants (its
   * credentials stay valid). Returns the tenant's credentials file.
   */
  async putTenant(tenant: Tenant): Promise<{ credsFile: string; created: boolean }> {
    const parsed = Tenant.parse(tenant);
    await this.init();
    const tenants = await this.tenants();
    const known = tenants.find((t) => t.name === parsed.name);
    const credsFile = this.credsFile(parsed.name);
    let publicKey = known?.publicKey;
    if (!publicKey) {
      const credentials = newCredentials(parsed.name, tenantInboxPrefix(parsed.name));
      await writeWhole(credsFile, JSON.stringify(credentials, null, 2) + "\n", true);
      publicKey = publicKeyOf(credentials);
    }
    const next = [...tenants.filter((t) => t.name !== parsed.name), { ...parsed, publicKey }].sort((a, b) => (a.name < b.name ? -1 : 1));
    await this.#saveRegistry(next);
    return { credsFile, created: !known };
  }

  /** Removes a tenant: its key leaves the authorization block and its credentials file is deleted. */
  async removeTenant(name: string): Promise<boolean> {
    const tenants = await this.tenants();
    if (!tenants.some((t) => t.name === name)) return false;
    const retiring = await this.#retiring();
    delete retiring[name];
    await this.#saveRetiring(retiring);
    await this.#saveRegistry(tenants.filter((t) => t.name !== name));
    await rm(this.credsFile(name), { force: true });
    return true;
  }

  /**
   * Gives `user` (the node, the admin or a tenant) new credentials, and keeps letting in the
   * key they replace, with the same permissions, until `retire(user)`: hand the new file out,
   * restart whoever holds the old one at leisure, then retire it. Returns the credentials file,
   * or undefined when there is no such user.
   */
  async rotate(user: string): Promise<string | undefined> {
    await this.init();
    const tenants = await this.tenants();
    const tenant = tenants.find((t) => t.name === user);
    const file = this.credsFile(user);
    const old = await readCredentials(file).catch(() => undefined);
    if (!old || (!tenant && !(Object.values(Role) as string[]).includes(user))) return undefined;
    const fresh = newCredentials(user, old.inboxPrefix);
    const retiring = await this.#retiring();
    retiring[user] = [...(retiring[user] ?? []), publicKeyOf(old)];
    await this.#saveRetiring(retiring);
    await writeWhole(file, JSON.stringify(fresh, null, 2) + "\n", true);
    if (tenant) await this.#saveRegistry(tenants.map((t) => (t.name === user ? { ...t, publicKey: publicKeyOf(fresh) } : t)));
    else await this.#writeAuthorization(tenants);
    return file;
  }

  /** Stops letting in the keys `rotate` replaced for `user`; false when there were none. */
  async retire(user: string): Promise<boolean> {
    const retiring = await this.#retiring();
    if (!retiring[user]) return false;
    delete retiring[user];
    await this.#saveRetiring(retiring);
    await this.#writeAuthorization(await this.tenants());
    return true;
  }

  async #retiring(): Promise<Retiring> {
    return Retiring.parse(await readJson(this.#retiringFile, {}));
  }

  async #saveRetiring(retiring: Retiring): Promise<void> {
    await writeWhole(this.#retiringFile, JSON.stringify(retiring, null, 2) + "\n", false);
  }

  async #saveRegistry(tenants: TenantRecord[]): Promise<void> {
    await writeWhole(this.#registryFile, JSON.stringify({ tenants }, null, 2) + "\n", false);
    await this.#writeAuthorization(tenants);
  }

  async #writeAuthorization(tenants: TenantRecord[]): Promise<void> {
    const retiring = await this.#retiring();
    const users: NatsUser[] = [];
    // Each user's current key, then the keys it replaced that are still let in: the same permissions for both.
    const add = (user: string, nkey: string, permissions?: NatsUser["permissions"]) => {
      for (const key of [nkey, ...(retiring[user] ?? [])]) users.push(permissions ? { nkey: key, permissions } : { nkey: key });
    };
    for (const role of Object.values(Role)) add(role, publicKeyOf(await readCredentials(this.credsFile(role))));
    for (const t of tenants) add(t.name, t.publicKey, tenantPermissions(t));
    await writeWhole(this.authorizationFile, authorizationConfig(users), false);
  }
}
