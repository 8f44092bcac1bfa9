/**
 * The API gateway: serves `jade.v1.>` in the queue group `jade-api`, so any
 * node answers any request. Every reply is `{ok:true,result}` or
 * `{ok:false,error}`; bad input is answered and logged, never thrown.
 */
import type { Msg, NatsConnection, Subscription } from "@nats-io/nats-core";
import { ErrorCode, fail, JadeError, ok, type Reply } from "../../runtime/errors.ts";
import { decodeJsonBody } from "../../runtime/json-body.ts";
import { limits } from "../../runtime/limits.ts";
import type { Logger } from "../../runtime/log.ts";
import { apiQueueGroup, nodeApiWildcard, parseApiSubject, subjects } from "../../runtime/subjects.ts";
import { handle, type ApiDeps } from "./handlers.ts";

/** Requests handled at once; past this a request is answered `rate_limited` at once. */
export const inflightMax = 512;

export class Gateway {
  readonly #deps: ApiDeps;
  readonly #log: Logger;
  #subs: Subscription[] = [];
  #inflight = 0;

  get inflight(): number {
    return this.#inflight;
  }

  constructor(deps: ApiDeps, log: Logger) {
    this.#deps = deps;
    this.#log = log.child({ actor: "gateway" });
  }

  /** Serves the API in the shared queue group and on this node's own subjects. */
  start(nc: NatsConnection): void {
    const callback = (err: Error | null, msg: Msg) => {
      if (err) {
        this.#log.error({ err }, "api subscription error");
        return;
      }
      void this.#serve(msg);
    };
    this.#subs = [
      nc.subscribe(subjects.apiWildcard, { queue: apiQueueGroup, callback }),
      nc.subscribe(nodeApiWildcard(this.#deps.nodeId), { callback }),
    ];
  }

  /** Stops taking requests and waits for those in flight (bounded by their own deadlines). */
  async stop(): Promise<void> {
    await Promise.all(this.#subs.map((s) => s.drain()));
  }

  async #serve(msg: Msg): Promise<void> {
    if (!msg.reply) return;
    const started = performance.now();
    let reply: Reply<unknown>;
    if (this.#inflight >= inflightMax) {
      reply = fail(new JadeError(ErrorCode.RateLimited, `more than ${inflightMax} requests in flight on this node`));
    } else {
      this.#inflight++;
      try {
        reply = ok(await handle(parseApiSubject(msg.subject), decodeJsonBody(msg.data), this.#deps));
      } catch (err) {
        reply = fail(err);
      } finally {
        this.#inflight--;
      }
    }
    if (!reply.ok) {
      const level = reply.error.code === ErrorCode.Internal ? "error" : "warn";
      this.#log[level]({ subject: msg.subject, error: reply.error, ms: Math.round(performance.now() - started) }, "request failed");
    }
    let text = JSON.stringify(reply);
    if (Buffer.byteLength(text) > limits.natsPayloadBytesMax) {
      text = JSON.stringify(
        fail(new JadeError(ErrorCode.PayloadTooLarge, `reply exceeds ${limits.natsPayloadBytesMax} bytes: ask for fewer points, or without vectors`)),
      );
    }
    try {
      msg.respond(text);
    } catch (err) {
      this.#log.error({ err, subject: msg.subject }, "could not send reply");
    }
  }
}
