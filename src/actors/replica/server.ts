/**
 * Serves this node's replicas to other nodes' routers. Bounded: past
 * `inflightMax` requests a read is refused as rate_limited, so the router
 * tries another replica instead of queueing behind an overloaded node.
 */
import type { Msg, NatsConnection, Subscription } from "@nats-io/nats-core";
import { ErrorCode, invalidArgument, JadeError, toWireError, unavailable } from "../../runtime/errors.ts";
import type { Logger } from "../../runtime/log.ts";
import { checkVector, parse } from "../../runtime/checks.ts";
import { parseReplicaSubject, subjects } from "../../runtime/subjects.ts";
import { quote } from "../../runtime/text.ts";
import { spaceOf } from "../../runtime/vectors.ts";
import type { ReplicaHost } from "./host.ts";
import { decodeReplicaRequest, encodeReplicaMessage, ReplicaReadRequest, vectorFromBytes, type ReplicaReadReply } from "./protocol.ts";

export const replicaInflightMax = 256;

export class ReplicaServer {
  readonly #host: ReplicaHost;
  readonly #nodeId: string;
  readonly #log: Logger;
  #sub: Subscription | undefined;
  #inflight = 0;

  constructor(host: ReplicaHost, nodeId: string, log: Logger) {
    this.#host = host;
    this.#nodeId = nodeId;
    this.#log = log.child({ actor: "replica-server" });
  }

  get inflight(): number {
    return this.#inflight;
  }

  start(nc: NatsConnection): void {
    this.#sub = nc.subscribe(subjects.replicaWildcard(this.#nodeId), { callback: (_err, msg) => void this.#serve(msg) });
  }

  async stop(): Promise<void> {
    await this.#sub?.drain();
  }

  async #serve(msg: Msg): Promise<void> {
    if (!msg.reply) return;
    let reply: ReplicaReadReply;
    if (this.#inflight >= replicaInflightMax) {
      reply = { ok: false, error: new JadeError(ErrorCode.RateLimited, "replica reads saturated on this node").toWire() };
    } else {
      this.#inflight++;
      try {
        reply = { ok: true, result: await this.#read(msg) };
      } catch (err) {
        reply = { ok: false, error: toWireError(err) };
        // Refusals of what a router never sends (bad bodies, bugs) are worth a line; a replica not serving is routine.
        if (reply.error.code === ErrorCode.InvalidArgument || reply.error.code === ErrorCode.Internal) {
          this.#log[reply.error.code === ErrorCode.Internal ? "error" : "warn"]({ subject: msg.subject, error: reply.error }, "replica request failed");
        }
      } finally {
        this.#inflight--;
      }
    }
    try {
      msg.respond(encodeReplicaMessage(reply));
    } catch (err) {
      this.#log.warn({ err, subject: msg.subject }, "could not answer a replica read");
    }
  }

  async #read(msg: Msg): Promise<unknown> {
    const route = parseReplicaSubject(msg.subject);
    if (!route) throw invalidArgument(`bad replica subject ${quote(msg.subject)}`);
    const request = parse(ReplicaReadRequest, decodeReplicaRequest(msg.data));
    const replica = this.#host.replicas(route.collection)[route.shard];
    if (!replica || replica.config.uid !== request.uid) throw unavailable(`no replica of ${route.collection}/${route.shard} here`);
    const missing = () => invalidArgument(`a ${route.op} request needs its "${route.op}" field`);
    switch (route.op) {
      case "search": {
        if (!request.search) throw missing();
        const vector = vectorFromBytes(request.search.vector);
        checkVector(vector, spaceOf(replica.config), "search.vector");
        return replica.search({ ...request.search, vector }, request.minSeq, request.timeoutMs);
      }
      case "get":
        if (!request.get) throw missing();
        return replica.get(request.get.ids, request.get.withVectors, request.minSeq, request.timeoutMs);
      case "count":
        return replica.count(request.count?.filter, request.minSeq, request.timeoutMs);
      case "checkpoint":
        return replica.offerCheckpoint();
      case "chunk": {
        if (!request.chunk) throw missing();
        const { seq, offset, length } = request.chunk;
        return replica.readCheckpoint(seq, offset, length);
      }
    }
  }
}
