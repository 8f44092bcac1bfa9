/**
 * API v1 operations (docs/api.md): validate with the message's schema, then
 * hand over to the catalog, the writer or the read router. Each handler takes
 * the decoded body (JSON or msgpack: runtime/encoding.ts) and returns the result; errors are thrown as JadeError
 * and turned into `{ok:false,error}` replies by the gateway.
 */
import { checkToken, checkVector, parse } from "../../runtime/checks.ts";
import { float32Of, parseUpsert } from "../../runtime/columns.ts";
import {
  CountRequest,
  DeleteRequest,
  EmptyRequest,
  GetRequest,
  NameRequest,
  SearchRequest,
  type CollectionConfig,
} from "../../runtime/schemas.ts";
import { invalidArgument } from "../../runtime/errors.ts";
import { parseFilter } from "../../runtime/filter.ts";
import { isCollectionName, isConfigOp, isKeyOp, isTxnOp, type ApiRoute } from "../../runtime/subjects.ts";
import { quote } from "../../runtime/text.ts";
import { spaceOf } from "../../runtime/vectors.ts";
import { clusterStatus } from "./status.ts";
import type { ApiDeps } from "./types.ts";

export async function handle(route: ApiRoute, body: unknown, deps: ApiDeps): Promise<unknown> {
  switch (route.kind) {
    case "catalog":
      switch (route.op) {
        case "create":
          return deps.catalog.create(body);
        case "list":
          parse(EmptyRequest, body);
          return { collections: await deps.catalog.list() };
        case "get":
          return deps.catalog.require(parse(NameRequest, body).name);
        case "drop":
          return deps.catalog.drop(parse(NameRequest, body).name);
        case "update":
          return deps.catalog.update(body);
      }
      break;
    case "cluster":
      parse(EmptyRequest, body);
      return clusterStatus(deps);
    case "collection":
      return collectionOp(route, body, deps);
    case "admin":
      // Keys, settings and transaction records live in KV: any node serves them, with or without a coordinator.
      if (isKeyOp(route.op)) return deps.keys.handle(route.op, body);
      if (isConfigOp(route.op)) return deps.settings.handle(route.op, body);
      if (isTxnOp(route.op)) return deps.txnAdmin.handle(route.op, body);
      return deps.coordinator.forward(route.op, body);
    case "unknown":
      throw invalidArgument(`unknown API subject ${route.subject}`);
  }
}

async function collectionOp(route: Extract<ApiRoute, { kind: "collection" }>, body: unknown, deps: ApiDeps): Promise<unknown> {
  if (!isCollectionName(route.collection)) throw invalidArgument(`invalid collection name ${quote(route.collection)}`);
  const config = await deps.catalog.require(route.collection);
  switch (route.op) {
    case "upsert": {
      const { columns, options } = parseUpsert(body, spaceOf(config));
      if (options.atomic) return deps.txns.upsertAtomic(config, columns, options);
      return deps.writer.upsert(config, columns, options);
    }
    case "delete": {
      const req = parse(DeleteRequest, body);
      return deps.writer.delete(config, req.ids, req);
    }
    case "get": {
      const req = parse(GetRequest, body);
      checkToken(req.token, config.shards);
      return deps.router.get(config, req.ids, req.withVectors, req);
    }
    case "search": {
      const req = parse(SearchRequest, body);
      const vector = float32Of(req.vector);
      checkVector(vector, spaceOf(config), "vector");
      checkToken(req.token, config.shards);
      checkNprobe(req.nprobe, config);
      const filter = req.filter === undefined ? undefined : parseFilter(req.filter);
      return deps.router.search(config, { vector, k: req.k, filter, withPayload: req.withPayload, withVectors: req.withVectors }, req);
    }
    case "count": {
      const req = parse(CountRequest, body);
      checkToken(req.token, config.shards);
      const filter = req.filter === undefined ? undefined : parseFilter(req.filter);
      return deps.router.count(config, filter, req);
    }
    case "transaction":
      return deps.txns.run(config, body);
  }
}

/** nprobe picks among a vector-sharded collection's shards: more than it has is a mistake, not "all". */
function checkNprobe(nprobe: number | undefined, config: CollectionConfig): void {
  if (nprobe !== undefined && config.sharding === "vector" && nprobe > config.shards) {
    throw invalidArgument(`nprobe: ${nprobe} is more than the collection's ${config.shards} shards`);
  }
}
