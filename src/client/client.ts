/**
 * JadeClient: the typed SDK over the NATS request-reply API (used by the CLI,
 * the tests and the benchmark). Every method resolves to the result or rejects
 * with a JadeError carrying the server's error code; a request larger than the
 * connection's max payload is refused locally as payload_too_large.
 */
import { connect, errors, headers, type NatsConnection } from "@nats-io/transport-node";
import { decodeBody, encodeBody, Encoding, encodingHeader, float32Bytes, float32FromBytes } from "../runtime/encoding.ts";
import { z } from "zod";
import { errorMessage, ErrorCode, JadeError, type Reply } from "../runtime/errors.ts";
import { limits } from "../runtime/limits.ts";
import type {
  CollectionConfig,
  CountRequest,
  CreateCollectionRequest,
  UpdateCollectionRequest,
  DeleteRequest,
  GetRequest,
  SearchRequest,
  SearchResult,
  SessionToken,
  StoredPoint,
  UpsertColumnsRequest,
  UpsertRequest,
  Payload,
} from "../runtime/schemas.ts";
import type { ClusterStatus } from "../runtime/status.ts";
import { adminTimeoutMs, nodeApiSubject, subjects, type AdminOp, type CatalogOp, type CollectionOp } from "../runtime/subjects.ts";
import { NodeTracker } from "./nodes.ts";
import { waitForJob, type JobWaitOptions } from "./jobs.ts";
import type { BackupCreateRequest, BackupRecord, BackupVerifyRequest, RestoreRecord, RestoreRequest } from "../runtime/backup-schemas.ts";
import type { TransactionRequest, TxnList, TxnListRequest, TxnRecord } from "../runtime/txn-schemas.ts";
import { ChangeFeed, type ChangesOptions } from "./changes.ts";
import { connectionOptions, type NatsAuth } from "../nats/auth.ts";
import { Hedger, type HedgeStats } from "../runtime/hedge-budget.ts";

export interface JadeClientOptions {
  servers: string | string[];
  /** TLS and identity (nats/auth.ts); none for an open NATS. */
  auth?: NatsAuth;
  /** Request timeout; default 30 s (writes of large batches wait for JetStream acks). */
  timeoutMs?: number;
  name?: string;
}

export interface Coverage {
  partial: boolean;
  shards: { total: number; answered: number };
}

const encoder = new TextEncoder();
const msgpackHeaders = headers();
msgpackHeaders.set(encodingHeader, Encoding.Msgpack);

/** A search as the SDK takes it: the query vector also as a Float32Array. */
export interface SearchInput extends Omit<SearchRequest, "vector"> {
  vector: number[] | Float32Array | Uint8Array;
}

/** An upsert in columns: what `upsertColumns` sends. */
export interface UpsertColumns extends Omit<UpsertColumnsRequest, "vectors"> {
  vectors: Float32Array;
}

/** The points as columns, or undefined when their vectors differ in length (the server then says which is wrong). */
function columnsOfPoints(points: UpsertRequest["points"]): Omit<UpsertColumns, "consistency"> | undefined {
  const first = points[0]?.vector;
  if (first === undefined) return undefined;
  const dim = first instanceof Uint8Array ? first.byteLength / 4 : first.length;
  const vectors = new Float32Array(points.length * dim);
  let payloads: (Payload | null)[] | undefined;
  for (let i = 0; i < points.length; i++) {
    const { vector, payload } = points[i]!;
    const values = vector instanceof Uint8Array ? float32FromBytes(vector) : vector;
    if (values.length !== dim) return undefined;
    vectors.set(values, i * dim);
    if (payload !== undefined) (payloads ??= new Array<Payload | null>(points.length).fill(null))[i] = payload;
  }
  return { ids: points.map((p) => p.id), vectors, payloads };
}

/**
 * The `details` of an error the client made up because no node answered (no server sent
 * it), so callers — the read retry, the CLI's hint — tell it from a server's by value.
 */
const TransportDetails = z.object({ transport: z.enum(["no_responders", "no_reply"]) });
export type TransportFailure = z.infer<typeof TransportDetails>["transport"];

/** Which transport failure an error (a reply's, or a JadeError) is, or undefined when a server sent it. */
export function transportFailure(error: { details?: unknown }): TransportFailure | undefined {
  const parsed = TransportDetails.safeParse(error.details);
  return parsed.success ? parsed.data.transport : undefined;
}

/** The server's refusal of a publish or subscribe (the user's permissions), wherever nats.js put it. */
export function permissionViolation(err: unknown): InstanceType<typeof errors.PermissionViolationError> | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    if (e instanceof errors.PermissionViolationError) return e;
  }
  return undefined;
}

function transportError(code: ErrorCode, message: string, transport: TransportFailure): Reply<never> {
  return { ok: false, error: new JadeError(code, message, { details: { transport } }).toWire() };
}

/** How long a read waits for a reply before asking again (a node can hang after taking a request). */
const readAttemptMsDefault = 5_000;

function readAttemptMs(requestTimeoutMs: number | undefined): number {
  return (requestTimeoutMs ?? limits.searchTimeoutMsDefault) + 1_000;
}

/**
 * How long a read waits on one node before asking another too (a hedged request). A node
 * answers a read in tens of milliseconds; one that has not after a second has most likely hung,
 * and the duplicate costs a second read only then.
 */
const readHedgeMsMax = 1_000;

/** The first reply that is an answer (or the server's refusal), not a transport failure; the last when all failed. */
function firstAnswer(replies: Promise<Reply<unknown>>[]): Promise<Reply<unknown>> {
  return new Promise((resolve, reject) => {
    let left = replies.length;
    for (const reply of replies) {
      reply.then((r) => {
        left--;
        if (r.ok || transportFailure(r.error) === undefined || left === 0) resolve(r);
      }, reject);
    }
  });
}

/** A request with its own server-side deadline waits a little longer than it for the reply. */
function replyTimeout(requestTimeoutMs: number | undefined): number | undefined {
  return requestTimeoutMs === undefined ? undefined : requestTimeoutMs + 1_000;
}

export class JadeClient {
  readonly nc: NatsConnection;
  readonly #timeoutMs: number;
  readonly #nodes = new NodeTracker();
  readonly #hedger = new Hedger();

  private constructor(nc: NatsConnection, timeoutMs: number) {
    this.nc = nc;
    this.#timeoutMs = timeoutMs;
  }

  static async connect(options: JadeClientOptions): Promise<JadeClient> {
    // No async traces: they cost a stack capture per request (see nats/connect.ts).
    const nc = await connect({
      servers: options.servers,
      name: options.name ?? "jade-client",
      maxReconnectAttempts: -1,
      noAsyncTraces: true,
      ...(await connectionOptions(options.auth)),
    });
    const client = new JadeClient(nc, options.timeoutMs ?? 30_000);
    await client.#nodes.start(nc);
    return client;
  }

  /**
   * Sends a raw request body (already encoded: a string is JSON text) and returns the decoded
   * reply envelope. The request goes to a live node directly when heartbeats are known (else
   * to the queue group); a node that has no responder is marked and the next one is tried.
   */
  async requestRaw(
    subject: string,
    body: string | Uint8Array,
    timeoutMs = this.#timeoutMs,
    tried = new Set<string>(),
    encoding: Encoding = Encoding.Json,
  ): Promise<Reply<unknown>> {
    const data = typeof body === "string" ? encoder.encode(body) : body;
    const options = encoding === Encoding.Msgpack ? { headers: msgpackHeaders } : {};
    const max = this.nc.info?.max_payload ?? Infinity;
    if (data.byteLength > max) {
      return {
        ok: false,
        error: { code: ErrorCode.PayloadTooLarge, message: `request is ${data.byteLength} bytes; the server accepts at most ${max}`, retryable: false },
      };
    }
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const node = this.#nodes.candidates(tried)[0];
      // Taken at once: a hedged read's second request (read()) goes to another node.
      if (node !== undefined) tried.add(node);
      const target = node === undefined ? subject : nodeApiSubject(node, subject);
      const remaining = Math.max(1, deadline - performance.now());
      try {
        const msg = await this.nc.request(target, data, { timeout: remaining, ...options });
        return decodeBody(msg.data, encoding) as Reply<unknown>;
      } catch (err) {
        // The server refused the publish (the user's permissions): nobody got it, and asking again will not help.
        const denied = permissionViolation(err);
        if (denied) return { ok: false, error: new JadeError(ErrorCode.Forbidden, `NATS refuses this client's ${denied.operation} to ${denied.subject}`).toWire() };
        // nats.js v3 rejects a request nobody is subscribed to with a RequestError caused by a
        // NoRespondersError; a timeout with a TimeoutError, a lost connection with another RequestError.
        const noResponders = err instanceof errors.RequestError && err.isNoResponders();
        if (node !== undefined) {
          this.#nodes.suspect(node);
          // Nobody received it: safe to send elsewhere, whatever the operation.
          if (noResponders && performance.now() < deadline) continue;
        }
        return noResponders
          ? transportError(ErrorCode.Unavailable, "no JadeVectorDB node is serving the API", "no_responders")
          : transportError(ErrorCode.Timeout, `no reply within ${Math.round(timeoutMs)} ms${node ? ` from ${node}` : ""}: ${errorMessage(err)}`, "no_reply");
      }
    }
  }

  /** A request in msgpack (vectors as float32 bytes: see runtime/encoding.ts). */
  async request<T>(subject: string, body: unknown, timeoutMs?: number): Promise<T> {
    const reply = await this.requestRaw(subject, encodeBody(body ?? {}, Encoding.Msgpack), timeoutMs, undefined, Encoding.Msgpack);
    if (!reply.ok) throw JadeError.fromWire(reply.error);
    return reply.result as T;
  }

  /**
   * A read, which is safe to repeat: when no reply comes within `attemptMs` (the node
   * that took it from the queue group may have hung), ask again — another node
   * answers — until the client's timeout is spent. Each attempt is hedged (`#hedged`).
   */
  async read<T>(subject: string, body: unknown, attemptMs = readAttemptMsDefault): Promise<T> {
    const data = encodeBody(body ?? {}, Encoding.Msgpack);
    const deadline = performance.now() + Math.max(this.#timeoutMs, attemptMs);
    const tried = new Set<string>();
    for (;;) {
      const reply = await this.#hedged(subject, data, attemptMs, deadline, tried);
      if (reply.ok) return reply.result as T;
      // Another node may answer: the tracker skips the ones that just failed.
      if (transportFailure(reply.error) !== "no_reply" || performance.now() >= deadline) throw JadeError.fromWire(reply.error);
    }
  }

  /**
   * One attempt at a read, hedged: with no reply after `readHedgeMsMax` (or half the attempt),
   * the same read goes to another live node as well, and the first reply that is not a missing
   * one wins. A paused node keeps being offered requests until its heartbeats stop (3 s): in
   * the chaos run, a 2 s search that waited out its whole attempt there before asking again
   * took 5 s. Hedges are rationed (`HedgeBudget`).
   */
  async #hedged(subject: string, data: Uint8Array, attemptMs: number, deadline: number, tried: Set<string>): Promise<Reply<unknown>> {
    const ask = () => this.requestRaw(subject, data, Math.max(1, Math.min(attemptMs, deadline - performance.now())), tried, Encoding.Msgpack);
    this.#hedger.read();
    // With no other live node known (the node list is stale, or every one was tried) the hedge goes
    // to the queue group, where another node most likely takes it.
    return this.#hedger.race(ask(), ask, Math.min(readHedgeMsMax, attemptMs / 2), (first, second) => firstAnswer([first, second]));
  }

  /** Counts of this client's read attempts and hedges (a copy). */
  get readStats(): HedgeStats {
    return this.#hedger.stats;
  }

  #catalog<T>(op: CatalogOp, body: unknown): Promise<T> {
    const reads: CatalogOp[] = ["list", "get"];
    return reads.includes(op) ? this.read<T>(subjects.catalog(op), body) : this.request<T>(subjects.catalog(op), body);
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

  /**
   * The collection's changes, read from its shard logs: each once per shard, in log order,
   * from `from` ("now" by default, "start", a Date, or a position token a change carried).
   * Iterate the returned feed; `feed.position` resumes it later; `feed.stop()` ends it.
   */
  async changes(collection: string, options: ChangesOptions = {}): Promise<ChangeFeed> {
    return ChangeFeed.open(this.nc, await this.getCollection(collection), options);
  }

  /** Changes a collection's retention (its point-in-time window); the returned config is the stored one. */
  updateCollection(request: UpdateCollectionRequest): Promise<CollectionConfig> {
    return this.#catalog("update", request);
  }

  /**
   * Upserts and deletes on every shard, or none (decision 013): `conflict` when a condition
   * fails or a point stays locked by another transaction past `timeoutMs`.
   */
  transaction(collection: string, request: TransactionRequest): Promise<{ id: string; upserted: number; deleted: number; token: SessionToken }> {
    return this.#op(collection, "transaction", request, replyTimeout(request.timeoutMs ?? limits.txnTimeoutMsDefault));
  }

  /** Sent in columns (one float32 block of every vector) when the points' vectors all have one length. */
  upsert(collection: string, request: UpsertRequest): Promise<{ upserted: number; token: SessionToken }> {
    const { points, ...options } = request;
    const columns = columnsOfPoints(points);
    if (!columns) return this.#op(collection, "upsert", request, replyTimeout(request.timeoutMs));
    return this.upsertColumns(collection, { ...columns, ...options });
  }

  /** The bulk form: ids, every vector back to back in one Float32Array, and optional payloads. */
  upsertColumns(collection: string, request: UpsertColumns): Promise<{ upserted: number; token: SessionToken }> {
    const body: Record<string, unknown> = { ids: request.ids, vectors: float32Bytes(request.vectors) };
    for (const key of ["payloads", "consistency", "requestId", "timeoutMs", "atomic"] as const) if (request[key] !== undefined) body[key] = request[key];
    return this.#op(collection, "upsert", body, replyTimeout(request.timeoutMs));
  }

  delete(collection: string, request: DeleteRequest): Promise<{ deleted: number; token: SessionToken }> {
    return this.#op(collection, "delete", request, replyTimeout(request.timeoutMs));
  }

  get(collection: string, request: GetRequest): Promise<{ points: StoredPoint[] } & Coverage> {
    return this.read(subjects.collection(collection, "get"), request, readAttemptMs(request.timeoutMs));
  }

  /** The query may be numbers, a Float32Array, or float32 bytes; it is sent as float32 bytes. */
  search(collection: string, request: SearchInput): Promise<SearchResult> {
    const { vector } = request;
    const bytes = vector instanceof Uint8Array ? vector : float32Bytes(vector instanceof Float32Array ? vector : Float32Array.from(vector));
    return this.read(subjects.collection(collection, "search"), { ...request, vector: bytes }, readAttemptMs(request.timeoutMs));
  }

  count(collection: string, request: CountRequest = {}): Promise<{ count: number } & Coverage> {
    return this.read(subjects.collection(collection, "count"), request, readAttemptMs(request.timeoutMs));
  }

  /** Cluster administration (`jade.v1.admin.<op>`), carried out by the coordinator. */
  admin<T = unknown>(op: AdminOp, body: unknown = {}): Promise<T> {
    const reads: AdminOp[] = ["migrations", "backup.list", "restore.list", "config.get", "config.history", "txns.list", "txns.get"];
    return reads.includes(op) ? this.read<T>(subjects.admin(op), body) : this.request<T>(subjects.admin(op), body, Math.max(this.#timeoutMs, adminTimeoutMs(op)));
  }

  /** Transaction records, newest first (kept a day after they are done). */
  listTransactions(request: TxnListRequest = {}): Promise<TxnList> {
    return this.admin("txns.list", request);
  }

  getTransaction(id: string): Promise<TxnRecord> {
    return this.admin("txns.get", { id });
  }

  /** Aborts a transaction not committed yet and finishes it at once; `conflict` if it committed. Answers its record. */
  abortTransaction(id: string): Promise<TxnRecord> {
    return this.admin("txns.abort", { id });
  }

  /** Starts a backup; it runs in the background (`waitForBackup` follows it). */
  createBackup(request: z.input<typeof BackupCreateRequest> = {}): Promise<BackupRecord> {
    return this.admin("backup.create", request);
  }

  async listBackups(): Promise<BackupRecord[]> {
    return (await this.admin<{ backups: BackupRecord[] }>("backup.list", {})).backups;
  }

  verifyBackup(request: z.input<typeof BackupVerifyRequest>): Promise<{ id: string; files: number; bytes: number; deep?: { collection: string; points: number }[] }> {
    return this.admin("backup.verify", request);
  }

  deleteBackup(id: string, options: { force?: boolean } = {}): Promise<{ deleted: string }> {
    return this.admin("backup.delete", { id, ...options });
  }

  /** Starts a restore; it runs in the background (`waitForRestore` follows it). */
  restore(request: z.input<typeof RestoreRequest>): Promise<RestoreRecord> {
    return this.admin("restore", request);
  }

  async listRestores(): Promise<RestoreRecord[]> {
    return (await this.admin<{ restores: RestoreRecord[] }>("restore.list", {})).restores;
  }

  /** Follows a backup until it ends: its record once complete, its error (a JadeError) if it failed. */
  waitForBackup(id: string, options: JobWaitOptions<BackupRecord> = {}): Promise<BackupRecord> {
    return waitForJob(() => this.listBackups(), id, "backup", options);
  }

  waitForRestore(id: string, options: JobWaitOptions<RestoreRecord> = {}): Promise<RestoreRecord> {
    return waitForJob(() => this.listRestores(), id, "restore", options);
  }

  clusterStatus(): Promise<ClusterStatus> {
    return this.read<ClusterStatus>(subjects.clusterStatus, {});
  }

  async close(): Promise<void> {
    this.#nodes.stop();
    await this.nc.drain().catch(() => this.nc.close());
  }
}
