/**
 * The REST mirror of API v1: one row per HTTP route, naming the NATS operation it is
 * (so both transports run the same handler, schemas and error codes: api/handlers.ts)
 * and the request schema the OpenAPI document is generated from (openapi.ts).
 *
 * Bodies are the NATS bodies. A collection named in the path is the collection the
 * operation acts on; catalog operations take it into their body as `name`.
 */
import type { z } from "zod";
import { BackupCreateRequest, BackupDeleteRequest, BackupListRequest, BackupVerifyRequest, RestoreRequest } from "../../runtime/backup-schemas.ts";
import { TransactionRequest, TxnIdRequest, TxnListRequest } from "../../runtime/txn-schemas.ts";
import {
  CountRequest,
  CreateCollectionRequest,
  DeleteRequest,
  EmptyRequest,
  GetRequest,
  SearchRequest,
  UpdateCollectionRequest,
  UpsertColumnsRequest,
  UpsertRequest,
} from "../../runtime/schemas.ts";
import { AdminOp, CatalogOp, CollectionOp, subjects, type ApiRoute } from "../../runtime/subjects.ts";
import { MigrationRequest, MoveRequest, NodeRequest } from "../control/admin.ts";
import { KeyCreateRequest, KeyRevokeRequest } from "../keys/schemas.ts";
import { ConfigRollbackRequest, ConfigSetRequest } from "../config/schemas.ts";

export type HttpMethod = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

export interface HttpRoute {
  method: HttpMethod;
  /** OpenAPI path template; `{name}` is the collection. */
  path: string;
  /** The API operation served, for a collection name taken from the path. */
  api: (name: string) => ApiRoute;
  /** The NATS subject of the same operation (`<collection>` for the path's name): the docs' cross-reference. */
  subject: string;
  summary: string;
  /** The JSON body, as the NATS API validates it. GET routes take none. */
  request?: z.ZodType;
  /** The msgpack body, where it differs from the JSON one (the columnar upsert). */
  msgpackRequest?: z.ZodType;
  /** Catalog operations name their collection in the body: the path's name goes there. */
  nameInBody?: boolean;
}

const collectionPath = "/v1/collections/{name}";
const c = "<collection>";

function catalog(op: CatalogOp): (name: string) => ApiRoute {
  return () => ({ kind: "catalog", op });
}

function collection(op: CollectionOp): (name: string) => ApiRoute {
  return (name) => ({ kind: "collection", collection: name, op });
}

/** Each admin operation's body: exhaustive, so a new operation has no route until it has a schema. */
const adminRequests: Readonly<Record<AdminOp, z.ZodType>> = {
  [AdminOp.Drain]: NodeRequest,
  [AdminOp.Undrain]: NodeRequest,
  [AdminOp.Remove]: NodeRequest,
  [AdminOp.Move]: MoveRequest,
  [AdminOp.Rebalance]: EmptyRequest,
  [AdminOp.Migrations]: EmptyRequest,
  [AdminOp.Pause]: MigrationRequest,
  [AdminOp.Resume]: MigrationRequest,
  [AdminOp.Cancel]: MigrationRequest,
  [AdminOp.BackupCreate]: BackupCreateRequest,
  [AdminOp.BackupList]: BackupListRequest,
  [AdminOp.BackupVerify]: BackupVerifyRequest,
  [AdminOp.BackupDelete]: BackupDeleteRequest,
  [AdminOp.Restore]: RestoreRequest,
  [AdminOp.RestoreList]: EmptyRequest,
  [AdminOp.KeysCreate]: KeyCreateRequest,
  [AdminOp.KeysList]: EmptyRequest,
  [AdminOp.KeysRevoke]: KeyRevokeRequest,
  [AdminOp.ConfigGet]: EmptyRequest,
  [AdminOp.ConfigSet]: ConfigSetRequest,
  [AdminOp.ConfigHistory]: EmptyRequest,
  [AdminOp.ConfigRollback]: ConfigRollbackRequest,
  [AdminOp.TxnsList]: TxnListRequest,
  [AdminOp.TxnsGet]: TxnIdRequest,
  [AdminOp.TxnsAbort]: TxnIdRequest,
};

const adminSummaries: Readonly<Record<AdminOp, string>> = {
  [AdminOp.Drain]: "Drain a node: move its replicas away and place none on it",
  [AdminOp.Undrain]: "Let a drained node take replicas again",
  [AdminOp.Remove]: "Remove a node for good: its replicas are placed elsewhere at once",
  [AdminOp.Move]: "Move one shard replica from one node to another",
  [AdminOp.Rebalance]: "Even out replicas across the live nodes",
  [AdminOp.Migrations]: "List shard migrations and their progress",
  [AdminOp.Pause]: "Pause a migration",
  [AdminOp.Resume]: "Resume a paused migration",
  [AdminOp.Cancel]: "Cancel a migration",
  [AdminOp.BackupCreate]: "Start a backup (full or incremental); answers at once with its record",
  [AdminOp.BackupList]: "List backups (of the catalog, or of a directory or bucket)",
  [AdminOp.BackupVerify]: "Verify a backup's files (and, deep, its content digests)",
  [AdminOp.BackupDelete]: "Delete a backup",
  [AdminOp.Restore]: "Restore collections from a backup, or a collection to a point in time",
  [AdminOp.RestoreList]: "List restores",
  [AdminOp.KeysCreate]: "Create an API key for HTTP with its scopes; the key is in this answer only",
  [AdminOp.KeysList]: "List API keys (never their secrets)",
  [AdminOp.KeysRevoke]: "Revoke an API key: every node refuses it within a second",
  [AdminOp.ConfigGet]: "The cluster's settings: the stored revision, what this node runs, and the revision each node runs",
  [AdminOp.ConfigSet]: "Change cluster settings (validated whole; every node applies them live)",
  [AdminOp.ConfigHistory]: "Every kept revision of the cluster's settings, newest first",
  [AdminOp.ConfigRollback]: "Write an earlier revision of the settings again, as a new revision",
  [AdminOp.TxnsList]: "List transaction records, newest first (by collection, state, or open ones only)",
  [AdminOp.TxnsGet]: "A transaction's record: its state, shards, deadline and reason",
  [AdminOp.TxnsAbort]: "Abort a transaction not committed yet, and finish it at once (markers, locks, record)",
};

/** `backup.create` is served at `/v1/admin/backup/create`: a dot is not a path separator. */
export function adminPath(op: AdminOp): string {
  return `/v1/admin/${op.replaceAll(".", "/")}`;
}

export const httpRoutes: readonly HttpRoute[] = [
  { method: "GET", path: "/v1/collections", api: catalog(CatalogOp.List), subject: subjects.catalog(CatalogOp.List), summary: "List collections" },
  {
    method: "POST",
    path: "/v1/collections",
    api: catalog(CatalogOp.Create),
    subject: subjects.catalog(CatalogOp.Create),
    summary: "Create a collection",
    request: CreateCollectionRequest,
  },
  {
    method: "GET",
    path: collectionPath,
    api: catalog(CatalogOp.Get),
    subject: subjects.catalog(CatalogOp.Get),
    summary: "Get a collection's configuration",
    nameInBody: true,
  },
  {
    method: "PATCH",
    path: collectionPath,
    api: catalog(CatalogOp.Update),
    subject: subjects.catalog(CatalogOp.Update),
    summary: "Change a collection's settings (retention)",
    request: UpdateCollectionRequest,
    nameInBody: true,
  },
  {
    method: "DELETE",
    path: collectionPath,
    api: catalog(CatalogOp.Drop),
    subject: subjects.catalog(CatalogOp.Drop),
    summary: "Drop a collection and its data",
    nameInBody: true,
  },
  {
    method: "PUT",
    path: `${collectionPath}/points`,
    api: collection(CollectionOp.Upsert),
    subject: subjects.collection(c, CollectionOp.Upsert),
    summary: "Insert or replace points",
    request: UpsertRequest,
    msgpackRequest: UpsertColumnsRequest,
  },
  {
    method: "POST",
    path: `${collectionPath}/points`,
    api: collection(CollectionOp.Get),
    subject: subjects.collection(c, CollectionOp.Get),
    summary: "Fetch points by id",
    request: GetRequest,
  },
  {
    method: "DELETE",
    path: `${collectionPath}/points`,
    api: collection(CollectionOp.Delete),
    subject: subjects.collection(c, CollectionOp.Delete),
    summary: "Delete points by id",
    request: DeleteRequest,
  },
  {
    method: "POST",
    path: `${collectionPath}/search`,
    api: collection(CollectionOp.Search),
    subject: subjects.collection(c, CollectionOp.Search),
    summary: "The k nearest neighbours of a vector",
    request: SearchRequest,
  },
  {
    method: "POST",
    path: `${collectionPath}/count`,
    api: collection(CollectionOp.Count),
    subject: subjects.collection(c, CollectionOp.Count),
    summary: "Count points, optionally filtered",
    request: CountRequest,
  },
  {
    method: "POST",
    path: `${collectionPath}/transaction`,
    api: collection(CollectionOp.Transaction),
    subject: subjects.collection(c, CollectionOp.Transaction),
    summary: "Upserts and deletes on every shard, or none; with conditions on points' versions",
    request: TransactionRequest,
  },
  { method: "GET", path: "/v1/cluster/status", api: () => ({ kind: "cluster", op: "status" }), subject: subjects.clusterStatus, summary: "Nodes, coordinator, replica states, shard logs, jobs" },
  ...Object.values(AdminOp).map(
    (op): HttpRoute => ({
      method: "POST",
      path: adminPath(op),
      api: () => ({ kind: "admin", op }),
      subject: subjects.admin(op),
      summary: adminSummaries[op],
      request: adminRequests[op],
    }),
  ),
];
