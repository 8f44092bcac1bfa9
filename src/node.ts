/**
 * A JadeVectorDB node: one process that connects to NATS and hosts the
 * gateway, the ingestion actor, the shard replicas and the index worker pool.
 * Any number of nodes can share one NATS; the API is served by all of them.
 */
import { hostname } from "node:os";
import path from "node:path";
import { AppliedTracker } from "./actors/write/applied-tracker.ts";
import { Catalog } from "./actors/cluster/catalog.ts";
import { Coordinator, defaultCoordinatorSettings, type CoordinatorSettings } from "./actors/control/coordinator.ts";
import { defaultMembershipSettings, Membership, type MembershipSettings } from "./actors/cluster/membership.ts";
import { PlacementStore } from "./actors/cluster/placement-store.ts";
import { ReplicaServer } from "./actors/replica/server.ts";
import type { SelectionName } from "./actors/read/selection/index.ts";
import { Gateway } from "./actors/api/gateway.ts";
import { IndexPool } from "./actors/vector-index/pool.ts";
import { Ingestion } from "./actors/write/ingestion.ts";
import { LocalCheckpoints } from "./actors/replica/checkpoints.ts";
import { RateLimiter, systemClock } from "./runtime/rate-limit.ts";
import { ReplicaHost } from "./actors/replica/host.ts";
import { defaultReplicaSettings, type ReplicaSettings } from "./actors/replica/replica.ts";
import { SnapshotStore } from "./actors/replica/snapshots.ts";
import { ReadRouter } from "./actors/read/router.ts";
import { Writer } from "./actors/write/writer.ts";
import { rootLogger, type Logger } from "./runtime/log.ts";
import { connectNats, type NatsContext } from "./nats/connect.ts";
import { nodeIdPattern } from "./runtime/subjects.ts";

export interface NodeOptions {
  servers: string[];
  /** Stable identity of this node; default `<hostname>-<pid>`. */
  nodeId?: string;
  /** Scratch space (snapshot files in transit). */
  dataDir: string;
  /** Index worker threads; default: one per core. */
  workers?: number;
  /** Replicas of the streams and buckets this node creates: 1 on one NATS server, 3 on a cluster. */
  streamReplicas?: number;
  /** How a router picks among a shard's replicas. */
  selection?: SelectionName;
  replica?: Partial<ReplicaSettings>;
  membership?: Partial<MembershipSettings>;
  coordinator?: Partial<CoordinatorSettings>;
  log?: Logger;
}

interface NodeParts {
  pool: IndexPool;
  catalog: Catalog;
  placements: PlacementStore;
  host: ReplicaHost;
  membership: Membership;
  coordinator: Coordinator;
  tracker: AppliedTracker;
  gateway: Gateway;
  replicaServer: ReplicaServer;
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
    const nodeId = options.nodeId ?? `${hostname()}-${process.pid}`.replace(/[^a-zA-Z0-9_-]/g, "_");
    if (!nodeIdPattern.test(nodeId)) throw new Error(`node id ${JSON.stringify(nodeId)} must match ${nodeIdPattern}`);
    const log = (options.log ?? rootLogger).child({ node: nodeId });
    const coordinatorSettings = { ...defaultCoordinatorSettings, ...options.coordinator };
    const nats = await connectNats(
      { servers: options.servers, name: `jade-${nodeId}`, streamReplicas: options.streamReplicas, leaseTtlMs: coordinatorSettings.leaseTtlMs },
      log,
    );
    const catalog = new Catalog(nats, log);
    await catalog.start();
    const placements = new PlacementStore(nats.placement, log);
    await placements.start();
    let host: ReplicaHost | undefined;
    const pool = await IndexPool.start({
      workers: options.workers,
      logger: log.child({ actor: "index-pool" }),
      onWorkerExit: (exit) => host?.indexesLost(exit.shardKeys),
    });
    const replicaSettings = { ...defaultReplicaSettings, ...options.replica };
    host = new ReplicaHost({
      nats,
      pool,
      snapshots: new SnapshotStore(nats.snapshots),
      nodeId,
      scratchDir: path.join(options.dataDir, "scratch"),
      checkpoints: new LocalCheckpoints(path.join(options.dataDir, "checkpoints")),
      log,
      settings: replicaSettings,
      // A one-second burst: a small shard moves without waiting at all.
      transfer: new RateLimiter(replicaSettings.transferBytesPerSecMax, replicaSettings.transferBytesPerSecMax, systemClock),
    });
    host.start(catalog, placements);
    const tracker = new AppliedTracker();
    tracker.start(nats.nc);
    catalog.onChange((change) => {
      if (change.type === "delete") tracker.forget(change.name);
    });
    const replicaServer = new ReplicaServer(host, nodeId, log);
    let gateway: Gateway | undefined;
    const replicas = host;
    const membership = new Membership(
      nats.nodes,
      nodeId,
      () => ({
        replicas: replicas.all().map((r) => ({ collection: r.config.name, uid: r.config.uid, shard: r.shard, state: r.state, appliedSeq: r.appliedSeq, lag: Math.max(0, r.lastSeq - r.appliedSeq), count: r.pointCount, transferredBytes: r.transferredBytes, ...(r.restored ? { restored: r.restored } : {}) })),
        load: replicaServer.inflight + (gateway?.inflight ?? 0),
      }),
      log,
      { ...defaultMembershipSettings, ...options.membership },
    );
    await membership.start();
    const coordinator = new Coordinator({
      nodeId,
      nc: nats.nc,
      jsm: nats.jsm,
      leases: nats.leases,
      migrations: nats.migrations,
      config: nats.config,
      catalog,
      membership,
      placements,
      log,
      settings: coordinatorSettings,
    });
    await coordinator.start();
    const writer = new Writer(nats, tracker);
    const router = new ReadRouter({ nodeId, nats, host, placements, membership, selection: options.selection ?? "least-loaded" });
    replicaServer.start(nats.nc);
    gateway = new Gateway({ nodeId, catalog, writer, router, host, membership, placements, coordinator }, log);
    gateway.start(nats.nc);
    const ingestion = new Ingestion(nats, catalog, writer, log);
    await ingestion.start();
    await nats.nc.flush();
    log.info({ servers: options.servers }, "node started");
    return new JadeNode(nodeId, nats, { pool, catalog, placements, host, membership, coordinator, tracker, gateway, replicaServer, ingestion }, log);
  }

  /** Stops taking work, finishes what is in flight, then closes workers and the connection. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    const { gateway, replicaServer, ingestion, host, membership, coordinator, tracker, catalog, placements, pool } = this.#parts;
    host.freeze();
    // Say goodbye first so peers stop routing here, and hand the coordinator lease over.
    await membership.beat(true).catch(() => undefined);
    await coordinator.stop().catch((err) => this.#log.warn({ err }, "coordinator stop"));
    await gateway.stop().catch((err) => this.#log.warn({ err }, "gateway stop"));
    await ingestion.stop().catch((err) => this.#log.warn({ err }, "ingestion stop"));
    await replicaServer.stop().catch((err) => this.#log.warn({ err }, "replica server stop"));
    await host.stop();
    await membership.stop();
    tracker.stop();
    catalog.stop();
    placements.stop();
    await pool.close();
    await this.nats.nc.drain().catch(() => this.nats.nc.close());
    this.#log.info("node stopped");
  }
}
