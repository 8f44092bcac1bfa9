/**
 * The one request-serving loop (API gateway, replica server, coordinator admin):
 * subscribe, run a handler per request with a bound on how many run at once,
 * reply `{ok:true,result}` or `{ok:false,error}`, and drain on stop. What a
 * handler throws is answered, never thrown: a JadeError as its wire error,
 * anything else as `internal`.
 */
import type { Msg, NatsConnection } from "@nats-io/nats-core";
import { ErrorCode, fail, ok, type JadeError, type Reply, type WireError } from "../runtime/errors.ts";
import { TurnQueue } from "../runtime/async.ts";
import type { Logger } from "../runtime/log.ts";

export interface ServeOptions {
  /** A `queue` shares the subject with the group's other members: one of them gets each request. */
  subjects: { subject: string; queue?: string }[];
  /** Decodes and answers one request. */
  handle: (msg: Msg) => Promise<unknown>;
  /** The reply's wire format (it may follow the request's: `msg`). */
  encode: (reply: Reply<unknown>, msg: Msg) => string | Uint8Array;
  /**
   * Past `inflightMax` handlers running, a request is answered `refusal` at once: an
   * overloaded node says so instead of queueing without bound. Without it, unbounded.
   */
  cap?: { inflightMax: number; refusal: JadeError };
  /**
   * Requests that start one per event-loop turn, in arrival order (runtime/async.ts
   * TurnQueue): bulk writes, whose decoding and encoding hold the thread for milliseconds,
   * so the reads that arrived with them are not queued behind all of them.
   */
  oneByOne?: (msg: Msg) => boolean;
  /** Told of every reply as it is sent, with the time since the request arrived (metrics). */
  observe?: (msg: Msg, reply: Reply<unknown>, ms: number) => void;
  /** How loud a failed reply is logged (undefined: not at all); by default internal errors at error, the rest at warn. */
  failureLevel?: (error: WireError) => "error" | "warn" | undefined;
  log: Logger;
}

export interface Serving {
  /** Handlers running now: the load a node reports in its heartbeats. */
  readonly inflight: number;
  /** Stops taking requests and waits for the handlers in flight (bounded by their own deadlines); never rejects. */
  stop(): Promise<void>;
}

function defaultFailureLevel(error: WireError): "error" | "warn" {
  return error.code === ErrorCode.Internal ? "error" : "warn";
}

export function serve(nc: NatsConnection, options: ServeOptions): Serving {
  const { handle, encode, cap, log } = options;
  const failureLevel = options.failureLevel ?? defaultFailureLevel;
  const running = new Set<Promise<void>>();
  const turns = new TurnQueue();

  const answer = (msg: Msg, reply: Reply<unknown>, startedMs: number): void => {
    options.observe?.(msg, reply, performance.now() - startedMs);
    if (!reply.ok) {
      const level = failureLevel(reply.error);
      if (level) log[level]({ subject: msg.subject, error: reply.error, ms: Math.round(performance.now() - startedMs) }, "request failed");
    }
    try {
      msg.respond(encode(reply, msg));
    } catch (err) {
      // The requester times out instead; usually the connection is closing.
      log.warn({ err, subject: msg.subject }, "could not send reply");
    }
  };

  const run = async (msg: Msg, startedMs: number): Promise<void> => {
    let reply: Reply<unknown>;
    try {
      if (options.oneByOne?.(msg)) await turns.turn();
      reply = ok(await handle(msg));
    } catch (err) {
      reply = fail(err);
    }
    answer(msg, reply, startedMs);
  };

  const callback = (err: Error | null, msg: Msg): void => {
    if (err) {
      log.error({ err }, "subscription error");
      return;
    }
    // A plain publish expects no answer.
    if (!msg.reply) return;
    const startedMs = performance.now();
    if (cap && running.size >= cap.inflightMax) {
      answer(msg, fail(cap.refusal), startedMs);
      return;
    }
    const task = run(msg, startedMs).finally(() => running.delete(task));
    running.add(task);
  };

  const subs = options.subjects.map(({ subject, queue }) => nc.subscribe(subject, { queue, callback }));
  return {
    get inflight() {
      return running.size;
    },
    async stop() {
      // Draining serves what the server already routed here; it only fails on a closed
      // connection (or a closed subscription), where nothing is left to drain.
      await Promise.allSettled(subs.map((s) => s.drain()));
      await Promise.all(running);
    },
  };
}
