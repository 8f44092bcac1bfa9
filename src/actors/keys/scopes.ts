/**
 * What an API key may do (pure: tested without a server). A key holds scopes, each a
 * collection (or `*`, every collection and the cluster) and an access level: `read`
 * (search, get, count, the collection's config), `write` (that, upsert and delete),
 * `admin` (that, update and drop; on `*` also create, cluster administration, backups, keys and
 * the dashboard). On `*`, `read` also reads the cluster's status, metrics and transaction records.
 * A level includes those below it.
 */
import { z } from "zod";
import { AdminOp, CatalogOp, CollectionOp, collectionNamePattern, type ApiRoute } from "../../runtime/subjects.ts";

export const Access = { Read: "read", Write: "write", Admin: "admin" } as const;
export type Access = (typeof Access)[keyof typeof Access];
const rank: Record<Access, number> = { read: 0, write: 1, admin: 2 };

/** Every collection, and the cluster itself. */
export const everything = "*";

export const Scope = z
  .object({
    collection: z.union([z.literal(everything), z.string().regex(collectionNamePattern, "must be a collection name or *")]),
    access: z.enum(Access),
  })
  .strict();
export type Scope = z.infer<typeof Scope>;

/** What one request needs: an access level on a collection, or on `*` for what is not one collection's. */
export interface Need {
  collection: string;
  access: Access;
}

const collectionNeeds: Record<CollectionOp, Access> = {
  [CollectionOp.Search]: Access.Read,
  [CollectionOp.Get]: Access.Read,
  [CollectionOp.Count]: Access.Read,
  [CollectionOp.Upsert]: Access.Write,
  [CollectionOp.Transaction]: Access.Write,
  [CollectionOp.Delete]: Access.Write,
};

/** Admin operations that only read the cluster's state (transaction records): they need what the status needs. */
const adminReads: ReadonlySet<AdminOp> = new Set([AdminOp.TxnsList, AdminOp.TxnsGet]);

/**
 * The access an API operation needs; `name` is the collection a catalog operation names (its
 * path). `any`: every valid key may ask, and sees only its own part of the answer (visibleTo).
 */
export function needOf(route: ApiRoute, name: string | undefined): Need | "any" {
  switch (route.kind) {
    case "collection":
      return { collection: route.collection, access: collectionNeeds[route.op] };
    case "catalog":
      switch (route.op) {
        case CatalogOp.Get:
          return { collection: name ?? everything, access: Access.Read };
        case CatalogOp.Update:
        case CatalogOp.Drop:
          return { collection: name ?? everything, access: Access.Admin };
        // Creating takes a name nobody holds a scope on yet; listing is filtered per key (visibleTo).
        case CatalogOp.Create:
          return { collection: everything, access: Access.Admin };
        case CatalogOp.List:
          return "any";
      }
      break;
    case "cluster":
      return { collection: everything, access: Access.Read };
    case "admin":
      return { collection: everything, access: adminReads.has(route.op) ? Access.Read : Access.Admin };
    case "unknown":
      return { collection: everything, access: Access.Admin };
  }
}

/** Does a key with these scopes meet the need? A `*` scope covers every collection. */
export function allows(scopes: readonly Scope[], need: Need | "any"): boolean {
  if (need === "any") return true;
  return scopes.some((s) => (s.collection === everything || s.collection === need.collection) && rank[s.access] >= rank[need.access]);
}

/** The collections a key may see in a listing: all with a `*` scope, else those it holds a scope on. */
export function visibleTo(scopes: readonly Scope[], names: readonly string[]): string[] {
  if (scopes.some((s) => s.collection === everything)) return [...names];
  const held = new Set(scopes.map((s) => s.collection));
  return names.filter((n) => held.has(n));
}
