/**
 * NATS connection and the JetStream objects every node relies on. Creation is
 * idempotent (any node may run it at start). Works on nats-server 2.9: no
 * per-message TTL, no subject transforms, no filter_subjects arrays.
 */
import { connect, type NatsConnection } from "@nats-io/transport-node";
import {
  AckPolicy,
  DiscardPolicy,
  jetstream,
  jetstreamManager,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { Kvm, type KvOptions } from "@nats-io/kv";
import { Objm, setSha256Backend } from "@nats-io/obj";
import { nanos } from "@nats-io/nats-core";
import { limits } from "../runtime/limits.ts";
import { names, subjects } from "../runtime/subjects.ts";
import type { Logger } from "../runtime/log.ts";
import { dedupWindowMs, ensureStream } from "./streams.ts";
import { errorMessage } from "../runtime/errors.ts";
import { Backoff } from "../runtime/async.ts";
import { connectionOptions, type NatsAuth } from "./auth.ts";
import { listedKv, type ListedKv } from "./kv-keys.ts";

export interface NatsContext {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  collections: ListedKv;
  nodes: ListedKv;
  leases: ListedKv;
  placement: ListedKv;
  migrations: ListedKv;
  config: ListedKv;
  retention: ListedKv;
  backups: ListedKv;
  restores: ListedKv;
  keys: ListedKv;
  locks: ListedKv;
  txns: ListedKv;
  /** Object stores: shard snapshots are one bucket each (nats/snapshots.ts). */
  objm: Objm;
  /** Number of replicas for streams/buckets we create (1 on one server, 3 on a cluster). */
  streamReplicas: number;
  /** Connected now (false from a disconnect until the reconnect). */
  connected: () => boolean;
  /** What the connection went through since it opened (metrics). */
  events: Readonly<ConnectionEvents>;
}

export interface ConnectionEvents {
  disconnects: number;
  reconnects: number;
  /** A subscription of this client fell behind and NATS dropped messages for it. */
  slowConsumers: number;
}

export interface ConnectOptions {
  servers: string[];
  auth?: NatsAuth | undefined;
  name: string;
  streamReplicas?: number;
  /** Timeout of JetStream API requests and publishes; short so a leader election surfaces quickly. */
  jsTimeoutMs?: number;
  /** Coordinator lease lifetime: the bucket's max age (2.9 has no per-key TTL). */
  leaseTtlMs: number;
  /** How long to keep retrying the setup while JetStream is not ready (cluster starting). */
  setupDeadlineMs?: number;
}

/**
 * The object store checksums every snapshot it stores and serves with sha256; nats.js defaults
 * to a pure-JS sha256 (browser-safe). Node's own is ~3× faster end to end: a 100 MB snapshot
 * moved at 39 MB/s up and 35 MB/s down with the JS one, 113 and 107 MB/s with this (measured here),
 * which is most of a restore's or a replica's start-up time.
 */
setSha256Backend("native");

/** How long, and how many bytes of, log lines the cluster keeps (`jade logs`, diagnostics). */
const logsKeptMs = 60 * 60 * 1000;
const logsBytesMax = 64 * 1024 * 1024;
/** Transaction records are kept a day after they were last written (`jade txns get`); recovery needs only the undecided. */
const txnRecordsKeptMs = 24 * 60 * 60 * 1000;

export async function connectNats(options: ConnectOptions, log: Logger): Promise<NatsContext> {
  const nc = await connect({
    servers: options.servers,
    name: options.name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    pingInterval: 5_000,
    // nats.js captures a stack trace per request for a better timeout error: ~25 µs of every
    // request, measured on the search path (docs/performance.md). Our errors say what timed out.
    noAsyncTraces: true,
    ...(await connectionOptions(options.auth)),
  });
  let linked = true;
  const events: ConnectionEvents = { disconnects: 0, reconnects: 0, slowConsumers: 0 };
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect" || s.type === "reconnect") log.warn({ status: s.type }, "nats connection status");
      if (s.type === "disconnect") {
        linked = false;
        events.disconnects += 1;
      }
      if (s.type === "reconnect") {
        linked = true;
        events.reconnects += 1;
      }
      if (s.type === "slowConsumer") {
        events.slowConsumers += 1;
        log.warn({ subject: s.sub.getSubject(), pending: s.pending }, "slow consumer: messages dropped by this client");
      }
    }
  })();
  const connected = () => linked && !nc.isClosed();
  const timeout = options.jsTimeoutMs ?? 5_000;
  const js = jetstream(nc, { timeout });
  // A NATS cluster that just started may still be electing its JetStream meta leader.
  const jsm = await retryWhileStarting(() => jetstreamManager(nc, { timeout }), options.setupDeadlineMs ?? 60_000, log);
  const replicas = options.streamReplicas ?? 1;
  const handles = await retryWhileStarting(() => setUp(nc, js, jsm, replicas, options), options.setupDeadlineMs ?? 60_000, log);
  return { ...handles, connected, events };
}

/** A connection for moving bulk data (replicas' snapshots, backups, restores), with the JetStream handles on it. */
export interface BulkConnection {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  objm: Objm;
}

/**
 * A second connection for bulk transfers. On the node's own connection, a restore publishing
 * multi-megabyte entries and reading a log back queued the coordinator's lease renewals and
 * the heartbeats behind them until they timed out (the leader stepped down mid-restore); on
 * its own connection bulk traffic waits only for itself.
 */
export async function connectBulk(servers: string[], name: string, options: { auth?: NatsAuth | undefined; jsTimeoutMs?: number } = {}): Promise<BulkConnection> {
  const { auth, jsTimeoutMs = 30_000 } = options;
  const nc = await connect({ servers, name, maxReconnectAttempts: -1, reconnectTimeWait: 250, noAsyncTraces: true, ...(await connectionOptions(auth)) });
  const js = jetstream(nc, { timeout: jsTimeoutMs });
  return { nc, js, jsm: await jetstreamManager(nc, { timeout: jsTimeoutMs }), objm: new Objm(js) };
}

async function retryWhileStarting<T>(step: () => Promise<T>, deadlineMs: number, log: Logger): Promise<T> {
  const deadline = performance.now() + deadlineMs;
  const backoff = new Backoff({ initialMs: 100, maxMs: 2_000 });
  for (;;) {
    try {
      return await step();
    } catch (err) {
      if (performance.now() + backoff.nextMs > deadline) throw err;
      log.warn({ err: errorMessage(err) }, "JetStream not ready yet; retrying");
      await backoff.wait();
    }
  }
}

async function setUp(
  nc: NatsConnection,
  js: JetStreamClient,
  jsm: JetStreamManager,
  replicas: number,
  options: ConnectOptions,
): Promise<Omit<NatsContext, "connected" | "events">> {
  const kvm = new Kvm(js);
  // Every bucket lists its keys from its stream (nats/kv-keys.ts), never with `kv.keys()`.
  const bucket = async (name: string, settings: Partial<KvOptions>): Promise<ListedKv> => listedKv(await kvm.create(name, { replicas, ...settings }), jsm, name);
  const collections = await bucket(names.collectionsBucket, { history: 10 });
  const nodes = await bucket(names.nodesBucket, { history: 1, ttl: 60_000 });
  const leases = await bucket(names.leasesBucket, { history: 1, ttl: options.leaseTtlMs });
  const placement = await bucket(names.placementBucket, { history: 5 });
  const migrations = await bucket(names.migrationsBucket, { history: 5 });
  // KV keeps at most 64 revisions of a key: the settings history (`jade config history`) is that long.
  const config = await bucket(names.configBucket, { history: 64 });
  const retention = await bucket(names.retentionBucket, { history: 1 });
  const backups = await bucket(names.backupsBucket, { history: 1 });
  const restores = await bucket(names.restoresBucket, { history: 1 });
  const keys = await bucket(names.keysBucket, { history: 1 });
  const locks = await bucket(names.locksBucket, { history: 1 });
  // A decided record is kept a day (`jade txns get`), then expires: recovery needs only the undecided ones.
  const txns = await bucket(names.txnsBucket, { history: 1, ttl: txnRecordsKeptMs });
  await ensureStream(jsm, {
    name: names.ingestStream,
    subjects: [subjects.ingestWildcard],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    num_replicas: replicas,
    duplicate_window: nanos(dedupWindowMs),
    max_msg_size: limits.natsPayloadBytesMax,
  });
  await ensureStream(jsm, {
    name: names.dlqStream,
    subjects: [subjects.dlqWildcard],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: replicas,
    max_age: nanos(7 * 24 * 3_600_000),
    discard: DiscardPolicy.Old,
  });
  // Recent log lines of every node: an hour, at most 64 MiB, the oldest dropped first.
  await ensureStream(jsm, {
    name: names.logsStream,
    subjects: [subjects.logsWildcard],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: replicas,
    max_age: nanos(logsKeptMs),
    max_bytes: logsBytesMax,
    discard: DiscardPolicy.Old,
  });
  await jsm.consumers
    .add(names.ingestStream, {
      durable_name: names.ingestConsumer,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(30_000),
      max_ack_pending: 10_000,
    })
    .catch((err) => {
      // Another node created it concurrently with the same config: fine.
      if (!(err instanceof JetStreamApiError)) throw err;
    });
  return { nc, js, jsm, collections, nodes, leases, placement, migrations, config, retention, backups, restores, keys, locks, txns, objm: new Objm(js), streamReplicas: replicas };
}
