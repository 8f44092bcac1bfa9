/**
 * JadeClient: the typed SDK over the NATS request-reply API (used by the CLI,
 * the tests and the benchmark). Every method resolves to the result or rejects
 * with a JadeError carrying the server's error code; a request larger than the
 * connection's max payload is refused locally as payload_too_large.
 */
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { ErrorCode, JadeError, type Reply } from "../runtime/errors.ts";
import type {
  ClusterStatus,
  CollectionConfig,
  CountRequest,
  CreateCollectionRequest,
  DeleteRequest,
  GetRequest,
  SearchRequest,
  SearchResult,
  SessionToken,
  StoredPoint,
  UpsertRequest,
} from "../runtime/schemas.ts";
import { subjects, type CatalogOp, type CollectionOp } from "../runtime/subjects.ts";

export interface JadeClientOptions {
  servers: string | string[];
  /** Request timeout; default 30 s (writes of large batches wait for JetStream acks). */
  timeoutMs?: number;
  name?: string;
}

export interface Coverage {
  partial: boolean;
  shards: { total: number; answered: number };
}

const encoder = new TextEncoder();

/** A request with its own server-side deadline waits a little longer than it for the reply. */
function replyTimeout(requestTimeoutMs: number | undefined): number | undefined {
  return requestTimeoutMs === undefined ? undefined : requestTimeoutMs + 1_000;
}

export class JadeClient {
  readonly nc: NatsConnection;
  readonly #timeoutMs: number;

  private constructor(nc: NatsConnection, timeoutMs: number) {
    this.nc = nc;
    this.#timeoutMs = timeoutMs;
  }

  static async connect(options: JadeClientOptions): Promise<JadeClient> {
    const nc = await connect({ servers: options.servers, name: options.name ?? "jade-client", maxReconnectAttempts: -1 });
    return new JadeClient(nc, options.timeoutMs ?? 30_000);
  }

  /** Sends a raw request body (already JSON-encoded or bytes) and returns the decoded reply envelope. */
  async requestRaw(subject: string, body: string | Uint8Array, timeoutMs = this.#timeoutMs): Promise<Reply<unknown>> {
    const data = typeof body === "string" ? encoder.encode(body) : body;
    const max = this.nc.info?.max_payload ?? Infinity;
    if (data.byteLength > max) {
      return {
        ok: false,
        error: { code: ErrorCode.PayloadTooLarge, message: `request is ${data.byteLength} bytes; the server accepts at most ${max}`, retryable: false },
      };
    }
    try {
      const msg = await this.nc.request(subject, data, { timeout: timeoutMs });
      return msg.json<Reply<unknown>>();
    } catch (err) {
      const e = err as Error;
      const noResponders = e.name === "NoRespondersError" || /no responders/i.test(e.message);
      return {
        ok: false,
        error: noResponders
          ? { code: ErrorCode.Unavailable, message: "no JadeVectorDB node is serving the API", retryable: true }
          : { code: ErrorCode.Timeout, message: `no reply within ${timeoutMs} ms: ${e.message}`, retryable: true },
      };
    }
  }

  async request<T>(subject: string, body: unknown, timeoutMs?: number): Promise<T> {
    const reply = await this.requestRaw(subject, JSON.stringify(body ?? {}), timeoutMs);
    if (!reply.ok) throw JadeError.fromWire(reply.error);
    return reply.result as T;
  }

  #catalog<T>(op: CatalogOp, body: unknown): Promise<T> {
    return this.request<T>(subjects.catalog(op), body);
  }

  #op<T>(collection: string, op: CollectionOp, body: unknown, timeoutMs?: number): Promise<T> {
    return this.request<T>(subjects.collection(collection, op), body, timeoutMs);
  }

  createCollection(request: CreateCollectionRequest): Promise<CollectionConfig> {
    return this.#catalog("create", request);
  }

  async listCollections(): Promise<CollectionConfig[]> {
    return (await this.#catalog<{ collections: CollectionConfig[] }>("list", {})).collections;
  }

  getCollection(name: string): Promise<CollectionConfig> {
    return this.#catalog("get", { name });
  }

  dropCollection(name: string): Promise<{ dropped: string }> {
    return this.#catalog("drop", { name });
  }

  upsert(collection: string, request: UpsertRequest): Promise<{ upserted: number; token: SessionToken }> {
    return this.#op(collection, "upsert", request, replyTimeout(request.timeoutMs));
  }

  delete(collection: string, request: DeleteRequest): Promise<{ deleted: number; token: SessionToken }> {
    return this.#op(collection, "delete", request, replyTimeout(request.timeoutMs));
  }

  get(collection: string, request: GetRequest): Promise<{ points: StoredPoint[] } & Coverage> {
    return this.#op(collection, "get", request);
  }

  search(collection: string, request: SearchRequest): Promise<SearchResult> {
    return this.#op(collection, "search", request, replyTimeout(request.timeoutMs));
  }

  count(collection: string, request: CountRequest = {}): Promise<{ count: number } & Coverage> {
    return this.#op(collection, "count", request);
  }

  clusterStatus(): Promise<ClusterStatus> {
    return this.request<ClusterStatus>(subjects.clusterStatus, {});
  }

  async close(): Promise<void> {
    await this.nc.drain().catch(() => this.nc.close());
  }
}
