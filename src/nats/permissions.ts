/**
 * Who may reach what, enforced by NATS itself (docs/security.md): the nats-server checks every
 * publish and subscribe against the user's permissions before a node sees anything, so a tenant
 * cannot get around them by talking to NATS directly.
 *
 * - `node`: a JadeVectorDB node — everything (the API, the shard logs, replicas, KV, JetStream).
 * - `admin`: an operator — everything too: administration reads the cluster's streams and
 *   buckets (`jade logs`, `jade changes`, backups), so on NATS an admin is as strong as a node.
 * - a tenant: per collection, `read` (search, get, count) or `write` (those, upsert, delete and
 *   JetStream ingestion), addressed to the queue group or to one node; replies only in its own
 *   inbox. Nothing else: not the catalog (it would list other tenants' collections), not the
 *   cluster status, not `jade.log.*`, `jade.replica.*`, `$JS`, `$KV` or `$O`.
 */
import { z } from "zod";
import { CollectionOp, collectionNamePattern, nodeApiSubject, subjects } from "../runtime/subjects.ts";
import { inboxPrefixPattern } from "./auth.ts";

export const Grant = { Read: "read", Write: "write" } as const;
export type Grant = (typeof Grant)[keyof typeof Grant];

const opsOf: Record<Grant, readonly CollectionOp[]> = {
  [Grant.Read]: [CollectionOp.Search, CollectionOp.Get, CollectionOp.Count],
  [Grant.Write]: [CollectionOp.Search, CollectionOp.Get, CollectionOp.Count, CollectionOp.Upsert, CollectionOp.Delete],
};

export const userNamePattern = /^[a-zA-Z0-9_-]{1,64}$/;

/** The users every secured cluster has; tenants may not take their names. */
export const Role = { Node: "node", Admin: "admin" } as const;
export type Role = (typeof Role)[keyof typeof Role];
const roleNames: ReadonlySet<string> = new Set(Object.values(Role));

export const Tenant = z
  .object({
    name: z.string().regex(userNamePattern).refine((n) => !roleNames.has(n), "node and admin are not tenant names"),
    /** Collection → what the tenant may do with it. */
    collections: z.record(z.string().regex(collectionNamePattern), z.enum(Grant)),
  })
  .strict();
export type Tenant = z.infer<typeof Tenant>;

export interface Permissions {
  publish: { allow: string[] };
  subscribe: { allow: string[] };
}

/** Where a tenant's replies arrive: its own inboxes, which no other tenant may subscribe to. */
export function tenantInboxPrefix(name: string): string {
  const prefix = `_INBOX_${name}`;
  if (!inboxPrefixPattern.test(prefix)) throw new Error(`bug: ${name} makes no inbox prefix`);
  return prefix;
}

/**
 * The tenant a request comes from, by its reply subject: the tenant's own inboxes are the only
 * ones NATS lets it subscribe to, so only a request answered there reaches it. Node, admin and
 * open-NATS clients use `_INBOX` and are no tenant. A tenant can name another's inbox as its
 * reply subject; it then gets no answer, and only spends the other's rate.
 */
export function tenantOfReply(reply: string | undefined): string | undefined {
  if (reply === undefined || !reply.startsWith("_INBOX_")) return undefined;
  const name = reply.slice("_INBOX_".length, reply.indexOf("."));
  return userNamePattern.test(name) && reply.startsWith(`${tenantInboxPrefix(name)}.`) ? name : undefined;
}

export function tenantPermissions(tenant: Tenant): Permissions {
  const publish = Object.entries(tenant.collections).flatMap(([collection, grant]) => [
    ...opsOf[grant].flatMap((op) => [subjects.collection(collection, op), nodeApiSubject("*", subjects.collection(collection, op))]),
    ...(grant === Grant.Write ? [subjects.ingest(collection)] : []),
  ]);
  return { publish: { allow: publish }, subscribe: { allow: [`${tenantInboxPrefix(tenant.name)}.>`] } };
}

/** One user of the server's configuration: its public nkey, and its permissions (none: everything). */
export interface NatsUser {
  nkey: string;
  permissions?: Permissions;
}

/** The `authorization` block of a nats-server configuration (its format is JSON-compatible). */
export function authorizationConfig(users: readonly NatsUser[]): string {
  return `authorization ${JSON.stringify({ users }, null, 2)}\n`;
}
