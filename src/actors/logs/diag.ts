/**
 * Answers `jade.diag.<node>.info|metrics` for this node alone, so `jade diag` can collect every
 * node's versions and metrics over NATS, whether or not their HTTP ports are reachable from
 * where it runs.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { serve, type Serving } from "../../nats/serve.ts";
import { ErrorCode, JadeError, type Reply } from "../../runtime/errors.ts";
import type { Logger } from "../../runtime/log.ts";
import { DiagOp, subjects } from "../../runtime/subjects.ts";
import { jadeVersion } from "../../runtime/version.ts";

export interface DiagInfo {
  node: string;
  version: string;
  nodeVersion: string;
  natsServerVersion: string | undefined;
  pid: number;
  uptimeSeconds: number;
  memory: NodeJS.MemoryUsage;
  platform: string;
}

export class DiagResponder {
  readonly #nodeId: string;
  readonly #metrics: (() => Promise<string>) | undefined;
  readonly #log: Logger;
  #serving: Serving | undefined;

  /** `metrics`: the node's exposition text, when it has metrics. */
  constructor(nodeId: string, metrics: (() => Promise<string>) | undefined, log: Logger) {
    this.#nodeId = nodeId;
    this.#metrics = metrics;
    this.#log = log.child({ actor: "diag" });
  }

  start(nc: NatsConnection): void {
    this.#serving = serve(nc, {
      subjects: [{ subject: subjects.diagWildcard(this.#nodeId) }],
      handle: async (msg) => {
        const op = msg.subject.split(".").at(-1);
        if (op === DiagOp.Info) return this.#info(nc);
        if (op === DiagOp.Metrics) {
          if (!this.#metrics) throw new JadeError(ErrorCode.Unavailable, "this node runs without metrics (--no-metrics)");
          return { text: await this.#metrics() };
        }
        throw new JadeError(ErrorCode.InvalidArgument, `unknown diagnostics subject ${msg.subject}`);
      },
      encode: (reply: Reply<unknown>) => JSON.stringify(reply),
      cap: { inflightMax: 4, refusal: new JadeError(ErrorCode.RateLimited, "diagnostics already running on this node") },
      log: this.#log,
    });
  }

  async stop(): Promise<void> {
    await this.#serving?.stop();
  }

  #info(nc: NatsConnection): DiagInfo {
    return {
      node: this.#nodeId,
      version: jadeVersion,
      nodeVersion: process.version,
      natsServerVersion: nc.info?.version,
      pid: process.pid,
      uptimeSeconds: Math.round(process.uptime()),
      memory: process.memoryUsage(),
      platform: `${process.platform}-${process.arch}`,
    };
  }
}
