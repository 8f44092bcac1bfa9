/**
 * The API gateway: serves `jade.v1.>` in the queue group `jade-api`, so any
 * node answers any request, in JSON or msgpack (runtime/encoding.ts). Every reply is
 * `{ok:true,result}` or `{ok:false,error}`; bad input is answered and logged, never thrown.
 */
import type { Msg, NatsConnection } from "@nats-io/nats-core";
import { serve, type Serving } from "../../nats/serve.ts";
import { ErrorCode, fail, JadeError, rateLimited, type Reply } from "../../runtime/errors.ts";
import type { KeyedRateLimits } from "../../runtime/rate-limit.ts";
import { tenantOfReply } from "../../nats/permissions.ts";
import { decodeBody, encodeBody, type Encoding, encodingHeader, encodingOf } from "../../runtime/encoding.ts";
import { limits } from "../../runtime/limits.ts";
import type { Logger } from "../../runtime/log.ts";
import { apiQueueGroup, nodeApiWildcard, parseApiSubject, subjects } from "../../runtime/subjects.ts";
import { opLabel, type RequestMetrics } from "../metrics/requests.ts";
import { extractTrace, SpanKind, traced, tracingEnabled } from "../../runtime/tracing.ts";
import { handle } from "./handlers.ts";
import type { ApiDeps } from "./types.ts";

/** Requests handled at once; past this a request is answered `rate_limited` at once. */
export const inflightMax = 512;

/** Writes carry up to 8 MiB each, decoded and re-encoded on this thread: they start one per turn (nats/serve.ts). */
function isWrite(msg: Msg): boolean {
  const route = parseApiSubject(msg.subject);
  return route.kind === "collection" && (route.op === "upsert" || route.op === "delete");
}

/** The request's encoding of a message (JSON unless its `Jade-Encoding` header says msgpack). */
function encodingOfMsg(msg: Msg): Encoding {
  return encodingOf(msg.headers?.get(encodingHeader));
}

/** Encoded like the request, except that a reply NATS would refuse to carry becomes a payload_too_large error. */
function encodeReply(reply: Reply<unknown>, msg: Msg): Uint8Array {
  const encoding = encodingOfMsg(msg);
  const bytes = encodeBody(reply, encoding);
  if (bytes.byteLength <= limits.natsPayloadBytesMax) return bytes;
  return encodeBody(
    fail(new JadeError(ErrorCode.PayloadTooLarge, `reply exceeds ${limits.natsPayloadBytesMax} bytes: ask for fewer points, or without vectors`)),
    encoding,
  );
}

function observer(metrics: RequestMetrics): (msg: Msg, reply: Reply<unknown>, ms: number) => void {
  return (msg, reply, ms) => metrics.observe("nats", parseApiSubject(msg.subject), reply.ok ? "ok" : reply.error.code, ms / 1000);
}

export class Gateway {
  readonly #deps: ApiDeps;
  readonly #log: Logger;
  readonly #tenantRates: KeyedRateLimits | undefined;
  #serving: Serving | undefined;

  get inflight(): number {
    return this.#serving?.inflight ?? 0;
  }

  readonly #metrics: RequestMetrics | undefined;

  constructor(deps: ApiDeps, log: Logger, metrics?: RequestMetrics, tenantRates?: KeyedRateLimits) {
    this.#deps = deps;
    this.#log = log.child({ actor: "gateway" });
    this.#metrics = metrics;
    this.#tenantRates = tenantRates;
  }

  /** Refuses a tenant over its rate (`--nats-tenant-rate`, or the cluster's rateLimits.natsTenant; per node). */
  #admit(msg: Msg): void {
    const rates = this.#tenantRates;
    if (!rates || rates.unlimited) return;
    const tenant = tenantOfReply(msg.reply);
    const waitMs = tenant === undefined ? 0 : rates.admit(tenant);
    if (waitMs <= 0) return;
    this.#metrics?.throttled("nats");
    throw rateLimited(`tenant ${tenant} is over its rate: retry in ${Math.ceil(waitMs)} ms`, waitMs);
  }

  /** Serves the API in the shared queue group and on this node's own subjects. */
  start(nc: NatsConnection): void {
    this.#serving = serve(nc, {
      subjects: [{ subject: subjects.apiWildcard, queue: apiQueueGroup }, { subject: nodeApiWildcard(this.#deps.nodeId) }],
      handle: (msg) => {
        this.#admit(msg);
        const route = parseApiSubject(msg.subject);
        const run = () => handle(route, decodeBody(msg.data, encodingOfMsg(msg)), this.#deps);
        if (!tracingEnabled()) return run();
        const op = opLabel(route);
        return traced(`jade.api ${op}`, { "jade.node": this.#deps.nodeId, "jade.op": op, "jade.transport": "nats" }, run, { kind: SpanKind.SERVER, parent: extractTrace(msg.headers) });
      },
      encode: encodeReply,
      cap: { inflightMax, refusal: new JadeError(ErrorCode.RateLimited, `more than ${inflightMax} requests in flight on this node`) },
      oneByOne: isWrite,
      observe: this.#metrics && observer(this.#metrics),
      log: this.#log,
    });
  }

  /** Stops taking requests and waits for those in flight (bounded by their own deadlines). */
  async stop(): Promise<void> {
    await this.#serving?.stop();
  }
}
