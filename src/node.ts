/**
 * A JadeVectorDB node: one process that connects to NATS and hosts the
 * gateway, the ingestion actor, the shard replicas and the index worker pool.
 * Any number of nodes can share one NATS; the API is served by all of them.
 */
import { hostname } from "node:os";
import path from "node:path";
import { AppliedTracker } from "./actors/applied-tracker.ts";
import { Catalog } from "./actors/catalog.ts";
import { Gateway } from "./actors/gateway.ts";
import { IndexPool } from "./actors/index/pool.ts";
import { Ingestion } from "./actors/ingestion.ts";
import { ReplicaHost } from "./actors/replica/host.ts";
import { defaultReplicaSettings, type ReplicaSettings } from "./actors/replica/replica.ts";
import { SnapshotStore } from "./actors/replica/snapshots.ts";
import { ReadRouter } from "./actors/router.ts";
import { Writer } from "./actors/writer.ts";
import { rootLogger, type Logger } from "./runtime/log.ts";
import { connectNats, type NatsContext } from "./runtime/nats.ts";

export interface NodeOptions {
  servers: string[];
  /** Stable identity of this node; default `<hostname>-<pid>`. */
  nodeId?: string;
  /** Scratch space (snapshot files in transit). */
  dataDir: string;
  /** Index worker threads; default: one per core. */
  workers?: number;
  replica?: Partial<ReplicaSettings>;
  log?: Logger;
}

interface NodeParts {
  pool: IndexPool;
  catalog: Catalog;
  host: ReplicaHost;
  tracker: AppliedTracker;
  gateway: Gateway;
  ingestion: Ingestion;
}

export class JadeNode {
  readonly nodeId: string;
  readonly nats: NatsContext;
  readonly #parts: NodeParts;
  readonly #log: Logger;
  #stopped = false;

  private constructor(nodeId: string, nats: NatsContext, parts: NodeParts, log: Logger) {
    this.nodeId = nodeId;
    this.nats = nats;
    this.#parts = parts;
    this.#log = log;
  }

  static async start(options: NodeOptions): Promise<JadeNode> {
    const nodeId = options.nodeId ?? `${hostname()}-${process.pid}`;
    const log = (options.log ?? rootLogger).child({ node: nodeId });
    const nats = await connectNats({ servers: options.servers, name: `jade-${nodeId}` }, log);
    const catalog = new Catalog(nats, log);
    await catalog.start();
    let host: ReplicaHost | undefined;
    const pool = await IndexPool.start({
      workers: options.workers,
      logger: log.child({ actor: "index-pool" }),
      onWorkerExit: (exit) => host?.indexesLost(exit.shardKeys),
    });
    host = new ReplicaHost({
      nats,
      pool,
      snapshots: new SnapshotStore(nats.snapshots),
      nodeId,
      scratchDir: path.join(options.dataDir, "scratch"),
      log,
      settings: { ...defaultReplicaSettings, ...options.replica },
    });
    host.start(catalog);
    const tracker = new AppliedTracker();
    tracker.start(nats.nc);
    catalog.onChange((change) => {
      if (change.type === "delete") tracker.forget(change.name);
    });
    const writer = new Writer(nats, tracker);
    const router = new ReadRouter(host, nats);
    const gateway = new Gateway({ nodeId, catalog, writer, router, host }, log);
    gateway.start(nats.nc);
    const ingestion = new Ingestion(nats, catalog, writer, log);
    await ingestion.start();
    await nats.nc.flush();
    log.info({ servers: options.servers }, "node started");
    return new JadeNode(nodeId, nats, { pool, catalog, host, tracker, gateway, ingestion }, log);
  }

  /** Stops taking work, finishes what is in flight, then closes workers and the connection. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    const { gateway, ingestion, host, tracker, catalog, pool } = this.#parts;
    await gateway.stop().catch((err) => this.#log.warn({ err }, "gateway stop"));
    await ingestion.stop().catch((err) => this.#log.warn({ err }, "ingestion stop"));
    await host.stop();
    tracker.stop();
    catalog.stop();
    await pool.close();
    await this.nats.nc.drain().catch(() => this.nats.nc.close());
    this.#log.info("node stopped");
  }
}
