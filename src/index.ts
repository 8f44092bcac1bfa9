/**
 * JadeVectorDB's public entry: the client SDK, the node, the embedded NATS
 * server, and the API's message types and errors.
 */
export { JadeClient, type JadeClientOptions, type Coverage } from "./client/client.ts";
export { ChangeFeed, type Change, type ChangeStart, type ChangesOptions } from "./client/changes.ts";
export { JadeNode, type NodeOptions } from "./node.ts";
export { startEmbeddedNats, NatsServerMissingError, NatsServerStartError, type EmbeddedNats, type EmbeddedNatsOptions } from "./nats/embedded.ts";
export { ErrorCode, JadeError, type Reply, type WireError } from "./runtime/errors.ts";
export { limits } from "./runtime/limits.ts";
export type {
  CollectionConfig,
  CountRequest,
  CreateCollectionRequest,
  DeleteRequest,
  GetRequest,
  Hit,
  Payload,
  Point,
  ReadConsistency,
  SearchRequest,
  SearchResult,
  SessionToken,
  StoredPoint,
  UpsertRequest,
  WriteConsistency,
} from "./runtime/schemas.ts";
export type { ClusterStatus, ReplicaStatus } from "./runtime/status.ts";
export { subjects } from "./runtime/subjects.ts";
