/**
 * Sends fuzz requests and counts every reply. One wildcard inbox subscription
 * receives all replies, so a second reply to the same request is seen (a plain
 * `request()` resolves on the first and drops the rest).
 */
import type { JetStreamClient } from "@nats-io/jetstream";
import { headers, type NatsConnection, type Subscription } from "@nats-io/nats-core";
import { Encoding, encodingHeader } from "../../src/runtime/encoding.ts";
import { Packr } from "msgpackr";
import { limits } from "../../src/runtime/limits.ts";
import { isObject, NumberLiteral, toJsonText, type Body, type Json } from "./body.ts";
import type { FuzzRequest } from "./requests.ts";
import { errorMessage } from "../../src/runtime/errors.ts";
import { httpTargetOf } from "./http.ts";

export interface Outcome {
  /** Replies received before the deadline (a publish counts its JetStream ack). */
  replies: number;
  /** The first reply, decoded (JSON, or msgpack for replica subjects); undefined when none came or it did not decode. */
  reply?: unknown;
  /** Why the reply could not be decoded, or why the request could not be sent. */
  problem?: string;
  /** The body could not be encoded on this side (msgpack of a value nested too deep): nothing was sent. */
  unsendable?: true;
  /** NATS answered that nobody serves the subject (a leader-only subject between two leaders). */
  noResponders?: true;
  /** The HTTP status, for a request sent over HTTP. */
  httpStatus?: number;
  elapsedMs: number;
  deadlineMs: number;
}

/** Slack on top of a request's own deadline for a loaded 2-core machine. */
export const deadlineSlackMs = 5_000;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });
const packr = new Packr({ useRecords: false });
const noResponders = Symbol("no responders");
const msgpackHeaders = headers();
msgpackHeaders.set(encodingHeader, Encoding.Msgpack);

interface Pending {
  resolve: (first: Uint8Array | typeof noResponders) => void;
  replies: number;
}

export class FuzzClient {
  readonly #nc: NatsConnection;
  readonly #js: JetStreamClient;
  readonly #prefix: string;
  readonly #pending = new Map<number, Pending>();
  /** Inboxes that got a reply after their request was settled (late or duplicate replies). */
  readonly extraReplies: string[] = [];
  #sub: Subscription;
  #next = 0;

  readonly #httpUrl: string;

  /** `httpUrl`: the node's HTTP base URL, where `http` requests go. */
  constructor(nc: NatsConnection, js: JetStreamClient, httpUrl: string) {
    this.#nc = nc;
    this.#js = js;
    this.#httpUrl = httpUrl;
    this.#prefix = `_INBOX.fuzz.${Math.random().toString(36).slice(2)}`;
    this.#sub = nc.subscribe(`${this.#prefix}.*`, {
      callback: (_err, msg) => {
        const id = Number(msg.subject.slice(this.#prefix.length + 1));
        const pending = this.#pending.get(id);
        if (!pending) return void this.extraReplies.push(msg.subject);
        pending.replies += 1;
        // NATS itself answers a request nobody subscribes to with an empty 503 status message.
        const status = msg.data.byteLength === 0 && msg.headers?.code === 503 ? noResponders : msg.data;
        if (pending.replies === 1) pending.resolve(status);
        else this.extraReplies.push(msg.subject);
      },
    });
  }

  async send(request: FuzzRequest): Promise<Outcome> {
    const deadlineMs = declaredDeadlineMs(request) + deadlineSlackMs;
    const started = performance.now();
    let data: Uint8Array;
    try {
      data = encodeBody(request.body);
    } catch {
      return { replies: 0, unsendable: true, elapsedMs: 0, deadlineMs };
    }
    if (request.transport === "http") return this.#sendHttp(request, data, deadlineMs);
    if (request.transport === "publish") {
      try {
        await this.#js.publish(request.subject, data, { timeout: deadlineMs });
        return { replies: 1, reply: { ok: true, result: "published" }, elapsedMs: performance.now() - started, deadlineMs };
      } catch (err) {
        return { replies: 0, problem: `publish failed: ${errorMessage(err)}`, elapsedMs: performance.now() - started, deadlineMs };
      }
    }
    const id = this.#next++;
    const inbox = `${this.#prefix}.${id}`;
    let timer: NodeJS.Timeout | undefined;
    const pending: Pending = { resolve: () => undefined, replies: 0 };
    const first = new Promise<Uint8Array | typeof noResponders | undefined>((resolve) => {
      pending.resolve = resolve;
      timer = setTimeout(() => resolve(undefined), deadlineMs);
    });
    this.#pending.set(id, pending);
    try {
      this.#nc.publish(request.subject, data, { reply: inbox, ...(request.encoding === "msgpack" ? { headers: msgpackHeaders } : {}) });
    } catch (err) {
      clearTimeout(timer);
      this.#pending.delete(id);
      return { replies: 0, problem: `could not publish: ${errorMessage(err)}`, elapsedMs: 0, deadlineMs };
    }
    const bytes = await first;
    clearTimeout(timer);
    const elapsedMs = performance.now() - started;
    // Kept registered a little longer so a duplicate reply is counted against this request.
    setTimeout(() => this.#pending.delete(id), 2_000).unref();
    if (bytes === noResponders) return { replies: 1, noResponders: true, elapsedMs, deadlineMs };
    if (bytes === undefined) return { replies: 0, elapsedMs, deadlineMs };
    try {
      const binary = request.encoding === "msgpack" || request.subject.startsWith("jade.replica.");
      const reply = binary ? packr.unpack(bytes) : JSON.parse(decoder.decode(bytes));
      return { replies: pending.replies, reply, elapsedMs, deadlineMs };
    } catch (err) {
      return { replies: pending.replies, problem: `reply does not decode: ${errorMessage(err)}`, elapsedMs, deadlineMs };
    }
  }

  async #sendHttp(request: FuzzRequest, data: Uint8Array, deadlineMs: number): Promise<Outcome> {
    const started = performance.now();
    const target = httpTargetOf({ ...request, transport: "request" });
    if (!target) return { replies: 0, problem: `no HTTP route for ${request.subject}`, elapsedMs: 0, deadlineMs };
    const msgpack = request.encoding === "msgpack";
    let res: Response;
    try {
      res = await fetch(`${this.#httpUrl}${target.path}`, {
        method: target.method,
        ...(target.method === "GET" ? {} : { body: data, headers: { "content-type": msgpack ? "application/msgpack" : "application/json" } }),
        signal: AbortSignal.timeout(deadlineMs),
      });
    } catch (err) {
      const elapsedMs = performance.now() - started;
      if (err instanceof DOMException && err.name === "TimeoutError") return { replies: 0, elapsedMs, deadlineMs };
      return { replies: 0, problem: `HTTP request failed: ${errorMessage(err)}`, elapsedMs, deadlineMs };
    }
    const bytes = new Uint8Array(await res.arrayBuffer());
    const elapsedMs = performance.now() - started;
    try {
      const reply = res.headers.get("content-type")?.startsWith("application/msgpack") ? packr.unpack(bytes) : JSON.parse(decoder.decode(bytes));
      return { replies: 1, reply, httpStatus: res.status, elapsedMs, deadlineMs };
    } catch (err) {
      return { replies: 1, problem: `HTTP ${res.status} reply does not decode: ${errorMessage(err)}`, elapsedMs, deadlineMs };
    }
  }

  /** Requests whose reply window (their wait, then 2 s for a duplicate) is still open. */
  get open(): number {
    return this.#pending.size;
  }

  close(): void {
    this.#sub.unsubscribe();
  }
}

export function encodeBody(body: Body): Uint8Array {
  if ("bytes" in body) return body.bytes;
  if ("json" in body) return encoder.encode(toJsonText(body.json));
  return packr.pack(literalsAsNumbers(body.msgpack as Json));
}

function literalsAsNumbers(value: Json): unknown {
  if (value instanceof NumberLiteral) return Number(value.text);
  if (Array.isArray(value)) return value.map(literalsAsNumbers);
  if (value instanceof Uint8Array || !isObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) Object.defineProperty(out, key, { value: literalsAsNumbers(value[key]!), enumerable: true });
  return out;
}

/**
 * A backup's verify may take up to an hour (docs/api.md): it re-reads the whole backup, and a deep
 * one restores it. The fuzzer's backups hold a few hundred points, so it waits this long.
 */
export const verifyDeadlineMs = 60_000;

/** The deadline the server promises for this request: its valid `timeoutMs`, else the operation's default. */
export function declaredDeadlineMs(request: FuzzRequest): number {
  const parts = request.subject.split(".");
  // Admin operations (one token or two: `backup.delete`): the coordinator forward waits up to 30 s.
  if (parts[1] === "coordinator" || (parts[1] === "v1" && parts[2] === "admin") || (parts[1] === "n" && parts[4] === "admin")) {
    return parts.at(-1) === "verify" ? verifyDeadlineMs : 30_000;
  }
  const body = "json" in request.body ? request.body.json : "msgpack" in request.body ? (request.body.msgpack as Json) : undefined;
  const declared = isObject(body) ? body["timeoutMs"] : undefined;
  if (typeof declared === "number" && Number.isInteger(declared) && declared >= 1 && declared <= limits.searchTimeoutMsMax) return declared;
  const op = request.subject.split(".").at(-1) ?? "";
  if (["upsert", "delete"].includes(op)) return limits.writeTimeoutMsDefault;
  if (["search", "get", "count", "status"].includes(op) || request.subject.startsWith("jade.replica.")) return limits.searchTimeoutMsDefault;
  // Catalog and admin operations: the coordinator forward waits up to 30 s. A transaction without
  // its own timeoutMs: 5 s to its decision, then its markers and the consistency wait.
  return 30_000;
}
