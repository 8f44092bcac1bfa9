/**
 * HTTP on a node (Fastify): the REST mirror of API v1 (routes.ts), its OpenAPI document,
 * `/healthz` and `/readyz`. A request runs the NATS API's own handler on the same decoded
 * body, so validation, limits, error codes and replies are one implementation; only the
 * status line is HTTP's (status-codes.ts). Fastify's JSON parser is not used: bodies go
 * through `decodeBody` like NATS bodies (strict UTF-8, no `__proto__`, msgpack by
 * `Content-Type: application/msgpack`).
 */
import { readFileSync } from "node:fs";
import type { HttpAccess } from "./access.ts";
import { Access, everything, type Need } from "../keys/scopes.ts";
import type { Duplex } from "node:stream";
import type { NatsConnection } from "@nats-io/nats-core";
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { handle } from "../api/handlers.ts";
import type { ApiDeps } from "../api/types.ts";
import { decodeBody, encodeBody, Encoding, encodingHeader } from "../../runtime/encoding.ts";
import { ErrorCode, fail, invalidArgument, JadeError, ok, type Reply, type WireError } from "../../runtime/errors.ts";
import { limits } from "../../runtime/limits.ts";
import type { Logger } from "../../runtime/log.ts";
import { isJsonObject } from "../../runtime/payload.ts";
import { AdminOp, type ApiRoute } from "../../runtime/subjects.ts";
import { eventPagesMax, LiveEvents } from "./events.ts";
import { quote } from "../../runtime/text.ts";
import type { NodeMetrics } from "../metrics/node-metrics.ts";
import { opLabel } from "../metrics/requests.ts";
import { extractHttpTrace, SpanKind, traced, tracingEnabled } from "../../runtime/tracing.ts";
import { jsonMediaType, msgpackMediaType, openApiDocument } from "./openapi.ts";
import { readiness, type Readiness } from "./readiness.ts";
import { httpRoutes, type HttpRoute } from "./routes.ts";
import { httpStatusOf } from "./status-codes.ts";

/** Requests handled at once (as the NATS gateway's bound); past it, `rate_limited` at once. */
export const httpInflightMax = 512;
/** A client gets this long to send its whole request (a slow sender holds a socket, not the node). */
const requestReceiveMsMax = 60_000;
/** How long a client should wait before retrying a refused request. */
const retryAfterSeconds = 1;

export interface HttpOptions {
  /** 0 picks a free port. */
  port: number;
  host: string;
  /** Serve HTTPS only, with this certificate and key (PEM files, read at start). */
  tls?: { certFile: string; keyFile: string };
  /** Require an API key (`jade keys create`) on every request but health, readiness, OpenAPI and the dashboard's files. */
  apiKeys?: boolean;
}

export interface HttpDeps {
  api: ApiDeps;
  tls?: HttpOptions["tls"];
  /** Who may use the port (access.ts). */
  access: HttpAccess;
  /** For the dashboard's live feed (every node's log lines). */
  nc: NatsConnection;
  /** Connected to NATS now. */
  connected: () => boolean;
  version: string;
  /** Served at `/metrics`, and told of every API request; none when metrics are off. */
  metrics?: NodeMetrics;
  log: Logger;
}

function encodingOfRequest(req: FastifyRequest): Encoding {
  const type = req.headers["content-type"]?.split(";")[0]?.trim().toLowerCase();
  const header = req.headers[encodingHeader.toLowerCase()];
  return type === msgpackMediaType || type === "application/x-msgpack" || header === Encoding.Msgpack ? Encoding.Msgpack : Encoding.Json;
}

/** The body the operation gets: the path's collection goes into a catalog body as `name`, and must agree with one given there. */
function bodyOf(route: HttpRoute, req: FastifyRequest, encoding: Encoding): unknown {
  if (req.query && Object.keys(req.query).length > 0) throw invalidArgument("query parameters are not used: send the request in the body");
  const raw = req.body instanceof Buffer ? req.body : Buffer.alloc(0);
  const body = decodeBody(raw, encoding);
  if (!route.nameInBody || !isJsonObject(body)) return body;
  const name = (req.params as { name: string }).name;
  if ("name" in body && body.name !== name) throw invalidArgument(`name: the body names ${quote(String(body.name))}, the path ${quote(name)}`);
  return { ...body, name };
}

export class HttpServer {
  readonly #deps: HttpDeps;
  readonly #log: Logger;
  readonly #app: FastifyInstance;
  #inflight = 0;
  readonly #events: LiveEvents;

  get inflight(): number {
    return this.#inflight;
  }

  constructor(deps: HttpDeps) {
    this.#deps = deps;
    this.#log = deps.log.child({ actor: "http" });
    this.#app = Fastify({
      ...(deps.tls ? { https: { cert: readFileSync(deps.tls.certFile), key: readFileSync(deps.tls.keyFile) } } : {}),
      logger: false,
      bodyLimit: limits.natsPayloadBytesMax,
      requestTimeout: requestReceiveMsMax,
      return503OnClosing: true,
      // A path's collection may be any length: past 64 characters it is refused as invalid by the handler, as over NATS,
      // not unrouted (Fastify's default of 100 would answer not_found).
      routerOptions: { maxParamLength: 16 * 1024 },
      // A path that does not decode (`/v1/collections/%ZZ`): answered before any route.
      frameworkErrors: (err, _req, reply) => this.#send(reply, fail(invalidArgument(err.message)), Encoding.Json),
      clientErrorHandler: (err, socket) => this.#clientError(err, socket),
    });
    this.#events = new LiveEvents(
      deps.nc,
      {
        status: () => handle({ kind: "cluster", op: "status" }, {}, deps.api),
        migrations: () => handle({ kind: "admin", op: AdminOp.Migrations }, {}, deps.api),
      },
      this.#log,
    );
    // Open event streams would hold the close forever: end them first.
    this.#app.addHook("preClose", (done) => {
      this.#events.closeAll();
      done();
    });
    this.#app.removeAllContentTypeParsers();
    // Every body arrives as bytes and is decoded like a NATS body.
    this.#app.addContentTypeParser("*", { parseAs: "buffer" }, (_req, body, done) => done(null, body));
    this.#app.setErrorHandler((err: FastifyError, _req, reply) => this.#send(reply, fail(this.#framingError(err)), Encoding.Json));
    this.#app.setNotFoundHandler((req, reply) =>
      this.#send(reply, fail(new JadeError(ErrorCode.NotFound, `no route ${req.method} ${req.url.split("?")[0]} (see /v1/openapi.json)`)), Encoding.Json),
    );
    this.#routes();
  }

  /** Listens; resolves with the base URL. */
  async start(options: HttpOptions): Promise<string> {
    await this.#app.listen({ port: options.port, host: options.host });
    const address = this.#app.server.address();
    if (address === null || typeof address === "string") throw new Error(`HTTP server has no TCP address: ${String(address)}`);
    const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
    const url = `${this.#deps.tls ? "https" : "http"}://${host}:${address.port}`;
    this.#log.info({ url }, "http listening");
    return url;
  }

  /** Stops taking requests and waits for those in flight. */
  async stop(): Promise<void> {
    await this.#app.close();
  }

  #routes(): void {
    const document = openApiDocument(httpRoutes, this.#deps.version);
    this.#app.get("/v1/openapi.json", (_req, reply) => reply.type(jsonMediaType).send(document));
    const metrics = this.#deps.metrics;
    const { access } = this.#deps;
    if (metrics) {
      this.#app.get("/metrics", async (req, reply) => {
        const refused = await this.#refused(req, { collection: everything, access: Access.Read });
        if (refused) return this.#send(reply, refused, Encoding.Json);
        const { text, contentType } = await metrics.scrape();
        return reply.type(contentType).send(text);
      });
    }
    for (const [path, file, type] of dashboardFiles) {
      this.#app.get(path, (_req, reply) => reply.type(type).header("cache-control", "no-cache").send(file));
    }
    this.#app.get("/v1/events", async (req, reply) => {
      // The live feed shows the whole cluster and every node's logs.
      const refused = await this.#refused(req, { collection: everything, access: Access.Admin });
      if (refused) return this.#send(reply, refused, Encoding.Json);
      if (this.#events.full) return this.#send(reply, fail(new JadeError(ErrorCode.RateLimited, `more than ${eventPagesMax} live pages on this node`)), Encoding.Json);
      reply.hijack();
      this.#events.open(reply.raw);
      return reply;
    });
    this.#app.get("/healthz", (_req, reply) => this.#send(reply, ok({ status: "alive", node: this.#deps.api.nodeId }), Encoding.Json));
    this.#app.get("/readyz", (_req, reply) => {
      const state = readiness(this.#deps.connected(), this.#deps.api.host);
      return this.#send(reply, state.ready ? ok(state) : fail(notReady(state)), Encoding.Json);
    });
    for (const route of httpRoutes) {
      this.#app.route({ method: route.method, url: route.path.replace("{name}", ":name"), handler: (req, reply) => this.#serve(route, req, reply) });
    }
  }

  async #serve(route: HttpRoute, req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const encoding = encodingOfRequest(req);
    const startedMs = performance.now();
    const api = route.api((req.params as { name?: string }).name ?? "");
    const result =
      this.#inflight >= httpInflightMax
        ? fail(new JadeError(ErrorCode.RateLimited, `more than ${httpInflightMax} HTTP requests in flight on this node`))
        : await this.#run(api, route, req, encoding);
    this.#deps.metrics?.requests.observe("http", api, result.ok ? "ok" : result.error.code, (performance.now() - startedMs) / 1000);
    if (!result.ok) {
      const level = result.error.code === ErrorCode.Internal ? "error" : "warn";
      this.#log[level]({ method: req.method, url: req.url, error: result.error, ms: Math.round(performance.now() - startedMs) }, "request failed");
    }
    return this.#send(reply, result, encoding);
  }

  /** The refusal of a request that does not present a key good for `need`; undefined when it may go on. */
  async #refused(req: FastifyRequest, need: Need): Promise<Reply<never> | undefined> {
    try {
      await this.#deps.access.check(req.headers.authorization, need);
      return undefined;
    } catch (err) {
      return fail(err);
    }
  }

  async #run(api: ApiRoute, route: HttpRoute, req: FastifyRequest, encoding: Encoding): Promise<Reply<unknown>> {
    this.#inflight++;
    try {
      const name = (req.params as { name?: string }).name;
      const run = () => this.#deps.access.api(req.headers.authorization, api, name, () => handle(api, bodyOf(route, req, encoding), this.#deps.api));
      if (!tracingEnabled()) return ok(await run());
      const op = opLabel(api);
      const attributes = { "jade.node": this.#deps.api.nodeId, "jade.op": op, "jade.transport": "http", "http.request.method": req.method };
      return ok(await traced(`jade.api ${op}`, attributes, run, { kind: SpanKind.SERVER, parent: extractHttpTrace(req.headers) }));
    } catch (err) {
      return fail(err);
    } finally {
      this.#inflight--;
    }
  }

  #send(reply: FastifyReply, result: Reply<unknown>, encoding: Encoding): FastifyReply {
    const status = result.ok ? 200 : httpStatusOf[result.error.code];
    if (!result.ok && result.error.retryable) reply.header("retry-after", String(retryAfterOf(result.error)));
    return reply
      .code(status)
      .type(encoding === Encoding.Msgpack ? msgpackMediaType : jsonMediaType)
      .send(Buffer.from(encodeBody(result, encoding)));
  }

  /**
   * What Node's HTTP parser refuses before Fastify sees a request (a malformed request line,
   * headers too large, a body never finished): answered on the socket with the same envelope.
   */
  #clientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    if (err.code === "ECONNRESET" || socket.destroyed) return;
    // 408, not the 504 of `timeout`: here the client was slow, not the node.
    const [status, reason, error] =
      err.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? [408, "Request Timeout", new JadeError(ErrorCode.Timeout, `request not received within ${requestReceiveMsMax} ms`)]
        : err.code === "HPE_HEADER_OVERFLOW"
          ? [431, "Request Header Fields Too Large", new JadeError(ErrorCode.PayloadTooLarge, "request headers too large")]
          : [400, "Bad Request", invalidArgument(`malformed HTTP request (${err.code ?? err.message})`)];
    this.#log.warn({ err: { code: err.code, message: err.message }, status }, "malformed http request");
    const body = Buffer.from(encodeBody(fail(error), Encoding.Json));
    socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: ${jsonMediaType}\r\nContent-Length: ${body.byteLength}\r\n\r\n${body.toString()}`);
  }

  /** Errors Fastify raises before a handler runs: the body too large, a malformed request. */
  #framingError(err: FastifyError): JadeError {
    if (err.statusCode === 413) return new JadeError(ErrorCode.PayloadTooLarge, `request body exceeds ${limits.natsPayloadBytesMax} bytes`);
    if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) return invalidArgument(err.message);
    this.#log.error({ err }, "http framework error");
    return new JadeError(ErrorCode.Internal, err.message);
  }
}

/** The dashboard, read once: a few files, served from memory. */
const dashboardFiles: readonly [string, Buffer, string][] = [
  ["/", "index.html", "text/html; charset=utf-8"],
  ["/dashboard/app.js", "app.js", "text/javascript; charset=utf-8"],
  ["/dashboard/style.css", "style.css", "text/css; charset=utf-8"],
].map(([path, file, type]) => [path!, readFileSync(new URL(`./dashboard/${file}`, import.meta.url)), type!]);

/** Seconds to wait: what a rate limit said (`details.retryAfterMs`), else the default. */
function retryAfterOf(error: WireError): number {
  const ms = (error.details as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
  return typeof ms === "number" && ms > 0 ? Math.ceil(ms / 1000) : retryAfterSeconds;
}

function notReady(state: Readiness): JadeError {
  return new JadeError(ErrorCode.Unavailable, `not ready: ${state.reasons.join("; ")}`, { details: { reasons: state.reasons, replicas: state.replicas } });
}
