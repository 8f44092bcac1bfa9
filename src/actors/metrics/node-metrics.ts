/**
 * A node's Prometheus metrics (prom-client), served at `/metrics`. One registry per node
 * (tests run several nodes in one process). Requests are observed as they are answered
 * (requests.ts); everything else is read when Prometheus scrapes, from plain figures the
 * actors keep anyway (`MetricSources`), so the data path carries no metrics code.
 *
 * Names follow Prometheus conventions: `jade_` prefix, base units last (`_seconds`,
 * `_bytes`), `_total` on counters. Shard logs and migrations are the coordinator's: only
 * the leader exports them, so a sum over the cluster counts each once.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { ReplicaState } from "../../machines/replica.ts";
import { TxnOutcome, type TxnFigures } from "../../runtime/status.ts";
import { RequestMetrics, requestSecondsBuckets } from "./requests.ts";
import type { HedgeStats } from "../../runtime/hedge-budget.ts";
import type { TrimStats } from "../../runtime/native-memory.ts";

export interface ReplicaSample {
  collection: string;
  shard: number;
  state: ReplicaState;
  appliedSeq: number;
  lastSeq: number;
  points: number;
  /** Applied points the graph has not absorbed yet. */
  pending: number;
  transferredBytes: number;
  /** The index's estimate, when it answered. */
  indexMemoryBytes: number | undefined;
}

export interface ShardLogSample {
  collection: string;
  shard: number;
  firstSeq: number;
  lastSeq: number;
  messages: number;
  bytes: number;
  floor: number;
}

export interface MigrationSample {
  id: string;
  collection: string;
  shard: number;
  state: string;
  appliedSeq: number;
  targetSeq: number;
  bytesCopied: number;
  copyGoalBytes: number;
  etaMs: number | null;
}

export interface JobSample {
  kind: "backup" | "restore";
  bytesDone: number;
  bytesTotal: number;
}

/** What the node hands the metrics: functions of plain figures, read at scrape time. */
export interface MetricSources {
  nodeId: string;
  replicas(): Promise<ReplicaSample[]>;
  pointsWritten(): { upserted: number; deleted: number };
  nats(): { connected: boolean; disconnects: number; reconnects: number; slowConsumers: number };
  /** Log lines not shipped to NATS (over budget, or disconnected). */
  logLinesDropped(): number;
  coordinator(): { leader: boolean; epoch: number | null };
  /** Leader only (empty elsewhere). */
  shardLogs(): Promise<ShardLogSample[]>;
  /** Leader only (empty elsewhere). */
  migrations(): MigrationSample[];
  /** Busy share of each index worker since the previous scrape. */
  workers(): number[];
  /** Backups and restores this node runs. */
  jobs(): JobSample[];
  /** The file system of the node's data directory. */
  disk(): Promise<{ freeBytes: number; totalBytes: number }>;
  /** Transactions this node's gateway ran and its recovery finished. */
  txns(): TxnFigures;
  /** The read router's shard reads and hedges. */
  routerHedges(): HedgeStats;
  /** Freed native memory handed back to the OS (runtime/native-memory.ts). */
  memoryTrims(): TrimStats;
  /** Calls `observe` as each transaction ends: the one figure handed over as it happens, as a histogram cannot be rebuilt from totals. */
  onTxnEnded(observe: (outcome: TxnOutcome, seconds: number) => void): void;
}

export class NodeMetrics {
  readonly registry = new Registry();
  readonly requests: RequestMetrics;
  readonly #sources: MetricSources;
  readonly #setReplicas: (samples: ReplicaSample[]) => void;
  readonly #setShardLogs: (samples: ShardLogSample[]) => void;
  readonly #setMigrations: (samples: MigrationSample[]) => void;
  readonly #setJobs: (samples: JobSample[]) => void;
  readonly #setDisk: (disk: { freeBytes: number; totalBytes: number }) => void;

  constructor(sources: MetricSources) {
    const registry = this.registry;
    registry.setDefaultLabels({ node: sources.nodeId });
    // Process CPU and memory, event-loop lag (nodejs_eventloop_lag_*), GC: the standard names dashboards know.
    collectDefaultMetrics({ register: registry });
    this.requests = new RequestMetrics(
      new Counter({
        name: "jade_requests_total",
        help: "API requests answered, by transport, operation and outcome (ok or the error code)",
        labelNames: ["transport", "op", "code"],
        registers: [registry],
      }),
      new Histogram({
        name: "jade_request_duration_seconds",
        help: "API request latency, arrival to reply, by transport and operation",
        labelNames: ["transport", "op"],
        buckets: requestSecondsBuckets,
        registers: [registry],
      }),
      new Counter({
        name: "jade_requests_throttled_total",
        help: "Requests refused rate_limited because their API key or NATS tenant was over its rate (a subset of jade_requests_total)",
        labelNames: ["transport"],
        registers: [registry],
      }),
    );
    this.#sources = sources;
    this.#setReplicas = this.#replicas();
    this.#setShardLogs = this.#shardLogs();
    this.#setMigrations = this.#migrations();
    this.#setJobs = this.#jobs();
    this.#setDisk = this.#disk();
    this.#writes(sources);
    this.#nats(sources);
    this.#coordinator(sources);
    this.#workers(sources);
    this.#txns(sources);
    this.#router(sources);
    this.#memoryTrims(sources);
  }

  #router(sources: MetricSources): void {
    this.#counterFrom("jade_router_shard_reads_total", "Shard reads the router made (each may ask more than one replica)", () => sources.routerHedges().attempts);
    this.#counterFrom("jade_router_hedges_total", "Shard reads that also asked the next replica, the first silent for 250 ms", () => sources.routerHedges().hedged);
    this.#counterFrom("jade_router_hedges_rationed_total", "Shard reads that waited on a silent replica because the hedge budget was spent", () => sources.routerHedges().hedgesRationed);
  }

  #memoryTrims(sources: MetricSources): void {
    this.#counterFrom("jade_native_memory_trims_total", "Times freed native memory was handed back to the OS (glibc malloc_trim)", () => sources.memoryTrims().trims);
    this.#counterFrom("jade_native_memory_trimmed_bytes_total", "Resident bytes those trims gave back", () => sources.memoryTrims().releasedBytes);
    this.#counterFrom("jade_native_memory_trim_seconds_total", "Time spent trimming, on the thread pool (not the event loop)", () => sources.memoryTrims().seconds);
  }

  /**
   * The exposition text and its content type. Groups of gauges read from one source (the
   * replicas, each index's memory asked of its worker, the shard logs from KV, migrations,
   * jobs) are filled first, from one reading: prom-client reads each metric right after
   * its own `collect`, so a gauge filled by another's collect would show the previous scrape.
   */
  async scrape(): Promise<{ text: string; contentType: string }> {
    const [replicas, logs, disk] = await Promise.all([this.#sources.replicas(), this.#sources.shardLogs(), this.#sources.disk()]);
    this.#setReplicas(replicas);
    this.#setShardLogs(logs);
    this.#setDisk(disk);
    this.#setMigrations(this.#sources.migrations());
    this.#setJobs(this.#sources.jobs());
    return { text: await this.registry.metrics(), contentType: this.registry.contentType };
  }

  /** Gauges read from the replicas: filled by `#refreshReplicas` before each scrape. */
  #replicas(): (samples: ReplicaSample[]) => void {
    const registers = [this.registry];
    const labelNames = ["collection", "shard"] as const;
    const applied = new Gauge({ name: "jade_replica_applied_sequence", help: "Last shard-log sequence the replica applied", labelNames, registers });
    const lag = new Gauge({ name: "jade_replica_lag_entries", help: "Shard-log entries the replica has not applied yet", labelNames, registers });
    const points = new Gauge({ name: "jade_replica_points", help: "Points in the replica's index", labelNames, registers });
    const pending = new Gauge({ name: "jade_replica_unabsorbed_points", help: "Applied points the HNSW graph has not absorbed yet (searched exactly meanwhile)", labelNames, registers });
    const memory = new Gauge({ name: "jade_replica_index_memory_bytes", help: "The index's estimate of the memory it holds (vectors, graph, payloads)", labelNames, registers });
    const transferred = new Counter({ name: "jade_replica_transferred_bytes_total", help: "Bytes copied to build the replica (snapshot download and log)", labelNames, registers });
    const state = new Gauge({ name: "jade_replica_state", help: "1 for the replica's current state, 0 for the others", labelNames: [...labelNames, "state"], registers });
    const hosted = new Gauge({ name: "jade_replicas", help: "Replicas hosted on this node", registers });
    return (samples) => {
      for (const metric of [applied, lag, points, pending, memory, transferred, state]) metric.reset();
      for (const r of samples) {
        const labels = { collection: r.collection, shard: r.shard };
        applied.set(labels, r.appliedSeq);
        lag.set(labels, Math.max(0, r.lastSeq - r.appliedSeq));
        points.set(labels, r.points);
        pending.set(labels, r.pending);
        if (r.indexMemoryBytes !== undefined) memory.set(labels, r.indexMemoryBytes);
        // The actor's total (reset above, so this sets it): a new process starts from 0, as counters may.
        transferred.inc(labels, r.transferredBytes);
        for (const s of Object.values(ReplicaState)) state.set({ ...labels, state: s }, s === r.state ? 1 : 0);
      }
      hosted.set(samples.length);
    };
  }

  #writes(sources: MetricSources): void {
    new Counter({
      name: "jade_points_written_total",
      help: "Points whose upsert or delete this node made durable in the shard logs (the ingest rate: rate() of it)",
      labelNames: ["op"],
      registers: [this.registry],
      collect() {
        const written = sources.pointsWritten();
        this.reset();
        this.inc({ op: "upsert" }, written.upserted);
        this.inc({ op: "delete" }, written.deleted);
      },
    });
  }

  /** An unlabelled gauge read at scrape time. */
  #gaugeFrom(name: string, help: string, read: () => number): void {
    new Gauge({ name, help, registers: [this.registry], collect() { this.set(read()); } });
  }

  /** An unlabelled counter whose total an actor keeps, read at scrape time (a new process starts from 0, as counters may). */
  #counterFrom(name: string, help: string, read: () => number): void {
    new Counter({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  }

  #nats(sources: MetricSources): void {
    this.#gaugeFrom("jade_nats_connected", "1 while connected to NATS", () => (sources.nats().connected ? 1 : 0));
    this.#counterFrom("jade_nats_disconnects_total", "Times the NATS connection was lost", () => sources.nats().disconnects);
    this.#counterFrom("jade_nats_reconnects_total", "Times the NATS connection was re-established", () => sources.nats().reconnects);
    this.#counterFrom("jade_nats_slow_consumer_events_total", "Times a subscription fell behind and NATS dropped messages for it", () => sources.nats().slowConsumers);
    this.#counterFrom("jade_log_lines_dropped_total", "Log lines not shipped to jade.logs (over the shipping budget, or while disconnected)", () => sources.logLinesDropped());
  }

  #coordinator(sources: MetricSources): void {
    this.#gaugeFrom("jade_coordinator_leader", "1 on the node that leads the cluster", () => (sources.coordinator().leader ? 1 : 0));
    this.#gaugeFrom("jade_coordinator_epoch", "The lease revision the leader leads under; 0 on the other nodes", () => sources.coordinator().epoch ?? 0);
  }

  /** Gauges of the shard logs: filled before each scrape. */
  #shardLogs(): (samples: ShardLogSample[]) => void {
    const registers = [this.registry];
    const labelNames = ["collection", "shard"] as const;
    const first = new Gauge({ name: "jade_shard_log_first_sequence", help: "First sequence still in the shard log", labelNames, registers });
    const last = new Gauge({ name: "jade_shard_log_last_sequence", help: "Last sequence of the shard log", labelNames, registers });
    const messages = new Gauge({ name: "jade_shard_log_messages", help: "Entries in the shard log", labelNames, registers });
    const bytes = new Gauge({ name: "jade_shard_log_bytes", help: "Bytes the shard log holds", labelNames, registers });
    const floor = new Gauge({ name: "jade_shard_log_purge_floor_sequence", help: "Entries at or below this sequence are purged (or may be)", labelNames, registers });
    return (samples) => {
      for (const metric of [first, last, messages, bytes, floor]) metric.reset();
      for (const s of samples) {
        const labels = { collection: s.collection, shard: s.shard };
        first.set(labels, s.firstSeq);
        last.set(labels, s.lastSeq);
        messages.set(labels, s.messages);
        bytes.set(labels, s.bytes);
        floor.set(labels, s.floor);
      }
    };
  }

  /** Gauges of the leader's running migrations: filled before each scrape. */
  #migrations(): (samples: MigrationSample[]) => void {
    const registers = [this.registry];
    const labelNames = ["id", "collection", "shard", "state"] as const;
    const progress = new Gauge({ name: "jade_migration_progress_ratio", help: "A running migration's target: applied / shard-log sequence (1 = caught up)", labelNames, registers });
    const copied = new Gauge({ name: "jade_migration_copied_bytes", help: "Bytes a running migration's target copied so far", labelNames, registers });
    const goal = new Gauge({ name: "jade_migration_copy_goal_bytes", help: "What a running migration's copied bytes read once the snapshot or checkpoint it copies is in (0: none started)", labelNames, registers });
    const eta = new Gauge({ name: "jade_migration_eta_seconds", help: "Estimated seconds until a running migration can cut over (while copying: until the copy is in)", labelNames, registers });
    const running = new Gauge({ name: "jade_migrations_running", help: "Shard migrations the leader runs now", registers });
    return (samples) => {
      for (const metric of [progress, copied, goal, eta]) metric.reset();
      for (const m of samples) {
        const labels = { id: m.id, collection: m.collection, shard: m.shard, state: m.state };
        progress.set(labels, m.targetSeq > 0 ? Math.min(1, m.appliedSeq / m.targetSeq) : 0);
        copied.set(labels, m.bytesCopied);
        goal.set(labels, m.copyGoalBytes);
        if (m.etaMs !== null) eta.set(labels, m.etaMs / 1000);
      }
      running.set(samples.length);
    };
  }

  /** Gauges of the backups and restores this node runs: filled before each scrape. */
  #jobs(): (samples: JobSample[]) => void {
    const registers = [this.registry];
    const labelNames = ["kind"] as const;
    const running = new Gauge({ name: "jade_jobs_running", help: "Backups and restores this node runs now", labelNames, registers });
    const done = new Gauge({ name: "jade_job_done_bytes", help: "Bytes the running backups or restores have moved", labelNames, registers });
    const total = new Gauge({ name: "jade_job_total_bytes", help: "Bytes the running backups or restores will move", labelNames, registers });
    return (samples) => {
      for (const kind of ["backup", "restore"] as const) {
        const jobs = samples.filter((j) => j.kind === kind);
        running.set({ kind }, jobs.length);
        done.set({ kind }, jobs.reduce((n, j) => n + j.bytesDone, 0));
        total.set({ kind }, jobs.reduce((n, j) => n + j.bytesTotal, 0));
      }
    };
  }

  /** The data directory's file system: filled before each scrape. */
  #disk(): (disk: { freeBytes: number; totalBytes: number }) => void {
    const registers = [this.registry];
    const free = new Gauge({ name: "jade_disk_free_bytes", help: "Bytes free for unprivileged use on the file system of the node's data directory", registers });
    const total = new Gauge({ name: "jade_disk_size_bytes", help: "Size of the file system of the node's data directory", registers });
    return (disk) => {
      free.set(disk.freeBytes);
      total.set(disk.totalBytes);
    };
  }

  /** Transactions: outcomes counted by the gateway and by recovery, durations observed as they end. */
  #txns(sources: MetricSources): void {
    const registers = [this.registry];
    new Counter({
      name: "jade_transactions_total",
      help: "Transactions this node's gateway ran, by outcome (committed, conflict, aborted, in_doubt)",
      labelNames: ["outcome"],
      registers,
      collect() {
        const t = sources.txns();
        this.reset();
        const counts: Record<TxnOutcome, number> = { committed: t.committed, conflict: t.conflicts, aborted: t.aborted, in_doubt: t.inDoubt };
        for (const outcome of Object.values(TxnOutcome)) this.inc({ outcome }, counts[outcome]);
      },
    });
    new Counter({
      name: "jade_transactions_recovered_total",
      help: "Transactions this node finished from their records (recovery's sweep while leading, an operator's abort), by outcome",
      labelNames: ["outcome"],
      registers,
      collect() {
        const { recovered } = sources.txns();
        this.reset();
        this.inc({ outcome: "committed" }, recovered.committed);
        this.inc({ outcome: "aborted" }, recovered.aborted);
      },
    });
    this.#gaugeFrom("jade_transactions_running", "Transactions this node's gateway runs now", () => sources.txns().running);
    const seconds = new Histogram({ name: "jade_transaction_duration_seconds", help: "Transactions from their start to their decision, by outcome", labelNames: ["outcome"], buckets: requestSecondsBuckets, registers });
    sources.onTxnEnded((outcome, s) => seconds.observe({ outcome }, s));
  }

  #workers(sources: MetricSources): void {
    new Gauge({
      name: "jade_index_worker_utilization_ratio",
      help: "Share of time each index worker thread was busy since the previous scrape",
      labelNames: ["worker"],
      registers: [this.registry],
      collect() {
        this.reset();
        sources.workers().forEach((ratio, worker) => this.set({ worker }, ratio));
      },
    });
  }
}
