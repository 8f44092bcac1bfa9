/**
 * A JadeVectorDB node: one process that connects to NATS and hosts the
 * gateway, the ingestion actor, the shard replicas and the index worker pool.
 * Any number of nodes can share one NATS; the API is served by all of them.
 */
import { hostname } from "node:os";
import path from "node:path";
import { AppliedTracker } from "./actors/write/applied-tracker.ts";
import { TransactionService } from "./actors/txn/service.ts";
import { TxnRecords } from "./actors/txn/records.ts";
import { TxnRecovery } from "./actors/txn/recovery.ts";
import { TxnAdmin } from "./actors/txn/admin.ts";
import { TxnStats } from "./actors/txn/stats.ts";
import { Catalog } from "./actors/cluster/catalog.ts";
import { Coordinator, type CoordinatorSettings } from "./actors/control/coordinator.ts";
import { Membership, type MembershipSettings } from "./actors/cluster/membership.ts";
import { PlacementStore } from "./actors/cluster/placement-store.ts";
import { ReplicaServer } from "./actors/replica/server.ts";
import { selectionDefault, type SelectionName } from "./actors/read/selection/index.ts";
import { Gateway } from "./actors/api/gateway.ts";
import { IndexPool } from "./actors/vector-index/pool.ts";
import { Ingestion } from "./actors/write/ingestion.ts";
import { LocalCheckpoints } from "./actors/replica/checkpoints.ts";
import { KeyedRateLimits, RateLimiter, systemClock, type RateSetting } from "./runtime/rate-limit.ts";
import { Mutex } from "./runtime/mutex.ts";
import { ReplicaHost } from "./actors/replica/host.ts";
import type { ReplicaSettings } from "./actors/replica/types.ts";
import { SnapshotStore } from "./nats/snapshots.ts";
import { UploadThread } from "./actors/replica/upload-thread.ts";
import { ReadRouter } from "./actors/read/router.ts";
import { Writer } from "./actors/write/writer.ts";
import { paceDefaults, type PaceSettings } from "./actors/write/pace.ts";
import { rootLogger, setLogLevel, type Logger } from "./runtime/log.ts";
import { connectBulk, connectNats, type BulkConnection, type NatsContext } from "./nats/connect.ts";
import { nodeIdPattern } from "./runtime/subjects.ts";
import { Backups, defaultBackupSettings, type BackupSettings } from "./actors/backup/service.ts";
import { HttpServer, type HttpOptions } from "./actors/http/server.ts";
import { jadeVersion } from "./runtime/version.ts";
import { NodeMetrics } from "./actors/metrics/node-metrics.ts";
import { LogShipper } from "./actors/logs/shipper.ts";
import { DiagResponder } from "./actors/logs/diag.ts";
import type { NatsAuth } from "./nats/auth.ts";
import { KeyStore } from "./actors/keys/store.ts";
import { HttpAccess } from "./actors/http/access.ts";
import { ownSettings, resolveSettings, type NodeSettings } from "./node/settings.ts";
import { metricSources, replicaBeatOf } from "./node/sources.ts";
import { startMemoryTrimmer, trimIntervalMsDefault, type MemoryTrimmer } from "./runtime/native-memory.ts";
import { joinFormats } from "./actors/cluster/formats.ts";
import { Departures } from "./actors/cluster/departures.ts";
import { ClusterConfig } from "./actors/config/store.ts";
import type { ClusterSettings } from "./actors/config/schemas.ts";

/** For the CLI, which says why a node would not join (cli/ imports no actor). */
export { isIncompatibleFormatError } from "./actors/cluster/formats.ts";

export interface NodeOptions {
  servers: string[];
  /** TLS and the identity this node's connections use (nats/auth.ts); none for an open NATS. */
  auth?: NatsAuth;
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
  /** Bytes of vectors a shard's fresh buffer holds before applies wait for its graph (shard-index.ts). */
  freshBytesMax?: number;
  /** How far this node's writes may run ahead of a shard's graph before they slow down (write/pace.ts). */
  pace?: Partial<PaceSettings>;
  /** How often freed native memory is handed back to the OS (runtime/native-memory.ts); 0: never. */
  memoryTrimIntervalMs?: number;
  replica?: Partial<ReplicaSettings>;
  membership?: Partial<MembershipSettings>;
  coordinator?: Partial<CoordinatorSettings>;
  backup?: Partial<BackupSettings>;
  /** Serve HTTP (the REST API, OpenAPI, health, metrics): off without it. */
  http?: HttpOptions;
  /** Prometheus metrics at `/metrics` (default on; off only to measure what they cost). */
  metrics?: boolean;
  /** Requests per second (and burst) each API key (HTTP) and each NATS tenant may make on this node; unlimited by default. */
  rateLimits?: { httpKey?: RateSetting; natsTenant?: RateSetting };
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
  /** The connection of snapshot downloads and restores (nats/connect.ts, connectBulk). */
  bulk: BulkConnection;
  /** Snapshot uploads, on a thread and a connection of their own (actors/replica/upload-thread.ts). */
  uploader: UploadThread;
  backups: Backups;
  http: HttpServer | undefined;
  logs: LogShipper;
  keys: KeyStore;
  diag: DiagResponder;
  config: ClusterConfig;
  departures: Departures;
  /** Undefined where libc cannot trim, or when trimming is off. */
  trimmer: MemoryTrimmer | undefined;
}

export class JadeNode {
  readonly nodeId: string;
  readonly nats: NatsContext;
  #httpUrl: string | undefined;
  readonly #parts: NodeParts;
  readonly #log: Logger;
  #stopped = false;

  /** The HTTP base URL, when serving HTTP. */
  get httpUrl(): string | undefined {
    return this.#httpUrl;
  }

  private constructor(nodeId: string, nats: NatsContext, parts: NodeParts, log: Logger) {
    this.nodeId = nodeId;
    this.nats = nats;
    this.#parts = parts;
    this.#log = log;
  }

  static async start(options: NodeOptions): Promise<JadeNode> {
    const nodeId = options.nodeId ?? `${hostname()}-${process.pid}`.replace(/[^a-zA-Z0-9_-]/g, "_");
    if (!nodeIdPattern.test(nodeId)) throw new Error(`node id ${JSON.stringify(nodeId)} must match ${nodeIdPattern}`);
    const settings = resolveSettings(options);
    const log = (options.log ?? rootLogger).child({ node: nodeId });
    const nats = await connectNats(
      { servers: options.servers, auth: options.auth, name: `jade-${nodeId}`, streamReplicas: options.streamReplicas, leaseTtlMs: settings.coordinator.leaseTtlMs },
      log,
    );
    // Before anything reads the cluster's logs or messages: a node that cannot read them stays out.
    await joinFormats(nats.config).catch(async (err: unknown) => {
      await nats.nc.close();
      throw err;
    });
    const catalog = new Catalog(nats, new SnapshotStore(nats.js, nats.streamReplicas), log);
    await catalog.start();
    const placements = new PlacementStore(nats.placement, log);
    await placements.start();
    let membership: Membership | undefined;
    const config = new ClusterConfig({
      nodeId,
      kv: nats.config,
      own: ownSettings(options, settings),
      bounds: { nodeDeadAfterMs: settings.coordinator.nodeDeadAfterMs },
      nodes: () => (membership?.members() ?? []).map((m) => ({ node: m.heartbeat.nodeId, revision: m.heartbeat.configRevision })).sort((a, b) => (a.node < b.node ? -1 : 1)),
      log: log.child({ actor: "config" }),
    });
    await config.start();
    const departures = new Departures(nats.config, log.child({ actor: "departures" }));
    await departures.start();
    const data = await startDataPlane({ nodeId, nats, catalog, placements, options, settings, config, departures, log });
    const parts = await startServing({ nodeId, nats, catalog, placements, options, settings, config, departures, log, ...data });
    membership = parts.membership;
    await nats.nc.flush();
    const node = new JadeNode(nodeId, nats, parts, log);
    if (options.http) {
      // A taken port fails the start, and leaves nothing running.
      node.#httpUrl = await parts.http?.start(options.http).catch(async (err: unknown) => {
        await node.stop();
        throw err;
      });
    }
    log.info({ servers: options.servers, http: node.httpUrl }, "node started");
    return node;
  }

  /** Stops taking work, finishes what is in flight, then closes workers and the connection. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    const { gateway, replicaServer, ingestion, host, membership, coordinator, tracker, catalog, placements, pool, bulk, uploader, backups, http, logs, diag, keys, config, departures, trimmer } = this.#parts;
    await http?.stop().catch((err) => this.#log.warn({ err }, "http stop"));
    host.freeze();
    // Before the goodbye: the coordinator keeps this node's replicas for the restart delay, and
    // retention the log they will replay from (each replica's checkpoint covers at least this).
    const replicas = host.all().map((r) => ({ collection: r.config.name, uid: r.config.uid, shard: r.shard, seq: r.appliedSeq }));
    await departures.announce({ node: this.nodeId, replicas }).catch((err) => this.#log.warn({ err }, "could not announce the departure"));
    // Say goodbye first so peers stop routing here, and hand the coordinator lease over.
    await membership.beat(true).catch(() => undefined);
    await coordinator.stop().catch((err) => this.#log.warn({ err }, "coordinator stop"));
    await backups.stop().catch(() => undefined);
    await gateway.stop().catch((err) => this.#log.warn({ err }, "gateway stop"));
    await diag.stop();
    await ingestion.stop().catch((err) => this.#log.warn({ err }, "ingestion stop"));
    await replicaServer.stop().catch((err) => this.#log.warn({ err }, "replica server stop"));
    await host.stop();
    await uploader.close();
    await bulk.nc.close().catch(() => undefined);
    await membership.stop();
    tracker.stop();
    catalog.stop();
    placements.stop();
    await keys.stop();
    await config.stop();
    await departures.stop();
    await pool.close();
    await trimmer?.stop();
    logs.stop();
    await this.nats.nc.drain().catch(() => this.nats.nc.close());
    this.#log.info("node stopped");
  }
}

interface StartContext {
  nodeId: string;
  nats: NatsContext;
  catalog: Catalog;
  placements: PlacementStore;
  options: NodeOptions;
  settings: NodeSettings;
  /** The cluster's settings as this node runs them (actors/config): parts start with them and follow their changes. */
  config: ClusterConfig;
  /** Nodes that stopped on purpose (this one too, if it is coming back). */
  departures: Departures;
  log: Logger;
}

/** The index workers, the replicas this node hosts, and the server peers read them through. */
async function startDataPlane(ctx: StartContext): Promise<DataPlane> {
  const { nodeId, nats, options, settings, config, departures, log } = ctx;
  let host: ReplicaHost | undefined;
  // Snapshots move on the bulk connection, as restores do: on the node's own one, a 300 MB
  // download for a new replica shares the socket with every API reply. Uploads, which come
  // with every save, run on a thread of their own (upload-thread.ts says why).
  const bulk = await connectBulk(options.servers, `jade-${nodeId}-bulk`, { auth: options.auth });
  // Read once, before the replicas start: the record is cleared once this node is back.
  const departed = departures.of(nodeId);
  const pool = await IndexPool.start({
    workers: options.workers,
    shardIndex: { vectorDir: path.join(options.dataDir, "vectors"), ...(options.freshBytesMax === undefined ? {} : { freshBytesMax: options.freshBytesMax }) },
    logger: log.child({ actor: "index-pool" }),
    onWorkerExit: (exit) => host?.indexesLost(exit.shardKeys),
  });
  const { transferBytesPerSecMax } = config.settings.replica;
  // A one-second burst: a small shard moves without waiting at all.
  const transfer = new RateLimiter(transferBytesPerSecMax, transferBytesPerSecMax, systemClock);
  const uploader = new UploadThread({
    servers: options.servers,
    auth: options.auth,
    name: `jade-${nodeId}-uploads`,
    streamReplicas: nats.streamReplicas,
    bytesPerSec: settings.replica.snapshotUploadBytesPerSecMax,
  });
  uploader.start();
  host = new ReplicaHost({
    nats,
    pool,
    snapshots: new SnapshotStore(bulk.js, nats.streamReplicas),
    nodeId,
    scratchDir: path.join(options.dataDir, "scratch"),
    checkpoints: new LocalCheckpoints(path.join(options.dataDir, "checkpoints")),
    log,
    settings: settings.replica,
    snapshotIntervalMs: () => config.settings.snapshot.intervalMs,
    departedAt: (uid, shard) => departed?.replicas.find((r) => r.uid === uid && r.shard === shard)?.seq,
    transfer,
    uploader,
    downloads: new Mutex(),
    saves: new Mutex(),
  });
  host.start(ctx.catalog, ctx.placements);
  const trimmer = await startMemoryTrimmer(options.memoryTrimIntervalMs ?? trimIntervalMsDefault, log.child({ actor: "native-memory" }));
  return { pool, host, replicaServer: new ReplicaServer(host, nodeId, log), transfer, trimmer, bulk, uploader };
}

interface DataPlane {
  pool: IndexPool;
  host: ReplicaHost;
  replicaServer: ReplicaServer;
  transfer: RateLimiter;
  trimmer: MemoryTrimmer | undefined;
  /** The connection snapshot downloads and restores move on (connectBulk). */
  bulk: BulkConnection;
  /** The thread snapshot uploads run on, with a connection of its own. */
  uploader: UploadThread;
}

/** Heartbeats, the coordinator, and the API: the write and read paths, the gateway and ingestion. */
async function startServing(ctx: StartContext & DataPlane): Promise<NodeParts> {
  const { nodeId, nats, catalog, placements, host, replicaServer, bulk, options, settings, config, departures, log } = ctx;
  const tracker = new AppliedTracker();
  tracker.start(nats.nc);
  catalog.onChange((change) => {
    if (change.type === "delete") tracker.forget(change.name);
  });
  let gateway: Gateway | undefined;
  let http: HttpServer | undefined;
  const txnStats = new TxnStats();
  const membership = new Membership(
    nats.nodes,
    nodeId,
    () => ({ replicas: host.all().map(replicaBeatOf), load: replicaServer.inflight + (gateway?.inflight ?? 0) + (http?.inflight ?? 0), configRevision: config.revision, txns: txnStats.figures() }),
    log,
    config.settings.membership,
  );
  await membership.start();
  // Back (or new): whatever this node said when it last left no longer holds.
  await departures.clear(nodeId);
  const snapshots = new SnapshotStore(nats.js, nats.streamReplicas);
  const backups = new Backups({
    nodeId,
    servers: options.servers,
    ...(options.auth ? { auth: options.auth } : {}),
    seedCheckpoint: (config, shard, seq, file) => host.seedCheckpoint(config, shard, seq, file),
    unseedCheckpoints: (config) => host.unseedCheckpoints(config),
    pinCheckpoint: (uid, shard, dir, accept) => host.pinCheckpoint(uid, shard, dir, accept),
    nc: nats.nc,
    js: bulk.js,
    jsm: bulk.jsm,
    objm: bulk.objm,
    streamReplicas: nats.streamReplicas,
    backupsKv: nats.backups,
    restoresKv: nats.restores,
    catalog,
    snapshots: new SnapshotStore(bulk.js, nats.streamReplicas),
    membership,
    placements,
    scratchDir: path.join(options.dataDir, "scratch", "backups"),
    log,
    settings: { ...defaultBackupSettings, ...options.backup },
  });
  await backups.start();
  const txnRecords = new TxnRecords(nats.txns);
  const txnRecovery = new TxnRecovery({ js: nats.js, nc: nats.nc, locks: nats.locks, records: txnRecords, placements, membership, log: log.child({ actor: "txn-recovery" }), graceMs: settings.coordinator.txnRecoveryGraceMs, stats: txnStats });
  const coordinator = new Coordinator({
    nodeId,
    nc: nats.nc,
    jsm: nats.jsm,
    leases: nats.leases,
    migrations: nats.migrations,
    config: nats.config,
    retention: nats.retention,
    snapshots,
    backups,
    catalog,
    membership,
    placements,
    log,
    settings: settings.coordinator,
    live: () => config.settings,
    departures,
    txnRecovery,
  });
  await coordinator.start();
  const writer = new Writer(nats, tracker, { ...paceDefaults, ...options.pace });
  const router = new ReadRouter({ nodeId, nats, host, placements, membership, selection: options.selection ?? selectionDefault, records: txnRecords });
  replicaServer.start(nats.nc);
  const keys = new KeyStore(nats.keys, log.child({ actor: "keys" }));
  await keys.start();
  const txns = new TransactionService({ nodeId, nats, records: txnRecords, config: nats.config, placements, membership, tracker, recoveryGraceMs: settings.coordinator.txnRecoveryGraceMs, stats: txnStats, log: log.child({ actor: "txns" }) });
  const txnAdmin = new TxnAdmin(txnRecords, txnRecovery);
  const api = { nodeId, catalog, writer, router, host, membership, placements, coordinator, backups, keys, settings: config, departures, retention: nats.retention, config: nats.config, txns, txnAdmin };
  const logs = new LogShipper(nats.nc, nodeId, nats.connected);
  logs.start();
  const metrics = options.metrics === false ? undefined : new NodeMetrics(metricSources({ nodeId, nats, host, writer, coordinator, catalog, backups, pool: ctx.pool, logs, txns: txnStats, router, trimmer: ctx.trimmer, dataDir: options.dataDir }));
  const tenantRates = new KeyedRateLimits(config.settings.rateLimits.natsTenant, systemClock);
  const keyRates = new KeyedRateLimits(config.settings.rateLimits.httpKey, systemClock);
  gateway = new Gateway(api, log, metrics?.requests, tenantRates);
  gateway.start(nats.nc);
  const access = new HttpAccess(options.http?.apiKeys ? keys : undefined, keyRates, () => metrics?.requests.throttled("http"));
  if (options.http) http = new HttpServer({ api, access, ...(options.http.tls ? { tls: options.http.tls } : {}), nc: nats.nc, connected: nats.connected, version: jadeVersion, metrics, log });
  const diag = new DiagResponder(nodeId, metrics && (async () => (await metrics.scrape()).text), log);
  diag.start(nats.nc);
  const ingestion = new Ingestion(nats, catalog, writer, log);
  await ingestion.start();
  // Every part that reads a cluster setting follows its changes from here on, without a restart
  // (and catches up at once with a revision that arrived while the parts were being made). The
  // log level is the process's: it changes only when the cluster's does (in-process test nodes
  // share one process, and a test may set its own).
  let logLevel = ownSettings(options, settings).log.level;
  const apply = (live: ClusterSettings) => {
    membership.setTiming(live.membership);
    ctx.transfer.setRate(live.replica.transferBytesPerSecMax, live.replica.transferBytesPerSecMax);
    coordinator.settingsChanged();
    host.snapshotIntervalChanged();
    tenantRates.set(live.rateLimits.natsTenant);
    keyRates.set(live.rateLimits.httpKey);
    if (live.log.level !== logLevel) setLogLevel((logLevel = live.log.level));
  };
  config.onChange(apply);
  apply(config.settings);
  return { pool: ctx.pool, catalog, placements, host, membership, coordinator, tracker, gateway, replicaServer, ingestion, bulk, uploader: ctx.uploader, backups, http, logs, diag, keys, config, departures, trimmer: ctx.trimmer };
}
