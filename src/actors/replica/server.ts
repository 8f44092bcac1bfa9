/**
 * Serves this node's replicas to other nodes' routers. Bounded: past
 * `inflightMax` requests a read is refused as rate_limited, so the router
 * tries another replica instead of queueing behind an overloaded node.
 */
import { encodeChunk } from "./chunk-encoding.ts";
import type { Msg, NatsConnection } from "@nats-io/nats-core";
import { serve, type Serving } from "../../nats/serve.ts";
import { ErrorCode, invalidArgument, JadeError, unavailable, type WireError } from "../../runtime/errors.ts";
import type { Logger } from "../../runtime/log.ts";
import { checkVector, parse } from "../../runtime/checks.ts";
import { parseReplicaSubject, subjects } from "../../runtime/subjects.ts";
import { quote } from "../../runtime/text.ts";
import { spaceOf } from "../../runtime/vectors.ts";
import type { ReplicaHost } from "./host.ts";
import { float32FromBytes } from "../../runtime/encoding.ts";
import { decodeReplicaRequest, encodeReplicaMessage, readToWire, ReplicaReadRequest } from "./protocol.ts";
import { extractTrace, SpanKind, traced, tracingEnabled } from "../../runtime/tracing.ts";

export const replicaInflightMax = 256;

/** Refusals of what a router never sends (bad bodies, bugs) are worth a line; a replica not serving (or saturated) is routine. */
function failureLevel(error: WireError): "error" | "warn" | undefined {
  if (error.code === ErrorCode.Internal) return "error";
  return error.code === ErrorCode.InvalidArgument ? "warn" : undefined;
}

export class ReplicaServer {
  readonly #host: ReplicaHost;
  readonly #nodeId: string;
  readonly #log: Logger;
  #serving: Serving | undefined;

  constructor(host: ReplicaHost, nodeId: string, log: Logger) {
    this.#host = host;
    this.#nodeId = nodeId;
    this.#log = log.child({ actor: "replica-server" });
  }

  get inflight(): number {
    return this.#serving?.inflight ?? 0;
  }

  start(nc: NatsConnection): void {
    this.#serving = serve(nc, {
      subjects: [{ subject: subjects.replicaWildcard(this.#nodeId) }],
      handle: (msg) => {
        if (!tracingEnabled()) return this.#read(msg);
        const route = parseReplicaSubject(msg.subject);
        const attributes = { "jade.node": this.#nodeId, "jade.collection": route?.collection ?? "", "jade.shard": route?.shard ?? -1 };
        return traced(`jade.replica.${route?.op ?? "unknown"}`, attributes, () => this.#read(msg), { kind: SpanKind.SERVER, parent: extractTrace(msg.headers) });
      },
      encode: encodeReplicaMessage,
      cap: { inflightMax: replicaInflightMax, refusal: new JadeError(ErrorCode.RateLimited, "replica reads saturated on this node") },
      failureLevel,
      log: this.#log,
    });
  }

  async stop(): Promise<void> {
    await this.#serving?.stop();
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
        const vector = float32FromBytes(request.search.vector);
        checkVector(vector, spaceOf(replica.config), "search.vector");
        const assume = request.assume ? { assume: request.assume } : {};
        return readToWire(await replica.search({ ...request.search, vector, ...assume }, request.minSeq, request.timeoutMs));
      }
      case "get":
        if (!request.get) throw missing();
        return readToWire(await replica.get(request.get.ids, request.get.withVectors, request.minSeq, request.timeoutMs, request.assume));
      case "count":
        return readToWire(await replica.count(request.count?.filter, request.minSeq, request.timeoutMs, request.assume));
      case "digest":
        return replica.contentDigest(request.minSeq, request.timeoutMs);
      case "vote":
        if (!request.vote) throw missing();
        return replica.vote(request.vote.txn, request.minSeq, request.timeoutMs);
      case "checkpoint":
        return replica.offerCheckpoint();
      case "chunk": {
        if (!request.chunk) throw missing();
        const { seq, offset, length, accept } = request.chunk;
        const raw = await replica.readCheckpoint(seq, offset, length);
        return accept ? encodeChunk(raw, accept) : raw;
      }
    }
  }
}
