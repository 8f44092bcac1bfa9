/** What a node tells about itself: the figures its metrics read, and its heartbeat's view of each replica. */
import { statfs } from "node:fs/promises";
import type { ReplicaBeat } from "../actors/cluster/membership.ts";
import type { Catalog } from "../actors/cluster/catalog.ts";
import type { Backups } from "../actors/backup/service.ts";
import type { Coordinator } from "../actors/control/coordinator.ts";
import { readLogState } from "../actors/control/retention.ts";
import type { LogShipper } from "../actors/logs/shipper.ts";
import type { MetricSources } from "../actors/metrics/node-metrics.ts";
import type { ReplicaHost } from "../actors/replica/host.ts";
import type { ShardReplica } from "../actors/replica/replica.ts";
import type { TxnStats } from "../actors/txn/stats.ts";
import type { IndexPool } from "../actors/vector-index/pool.ts";
import type { Writer } from "../actors/write/writer.ts";
import type { ReadRouter } from "../actors/read/router.ts";
import type { NatsContext } from "../nats/connect.ts";
import type { MemoryTrimmer } from "../runtime/native-memory.ts";

/** The figures the metrics read at scrape time (actors/metrics/node-metrics.ts). */
export function metricSources(parts: {
  nodeId: string;
  nats: NatsContext;
  host: ReplicaHost;
  writer: Writer;
  coordinator: Coordinator;
  catalog: Catalog;
  backups: Backups;
  pool: IndexPool;
  logs: LogShipper;
  txns: TxnStats;
  router: ReadRouter;
  trimmer: MemoryTrimmer | undefined;
  dataDir: string;
}): MetricSources {
  const { nodeId, nats, host, writer, coordinator, catalog, backups, pool, logs, txns, router, trimmer, dataDir } = parts;
  return {
    nodeId,
    memoryTrims: () => trimmer?.stats ?? { trims: 0, releasedBytes: 0, seconds: 0 },
    routerHedges: () => router.hedgeStats,
    replicas: () =>
      Promise.all(
        host.all().map(async (r) => ({
          collection: r.config.name,
          shard: r.shard,
          state: r.state,
          appliedSeq: r.appliedSeq,
          lastSeq: r.lastSeq,
          points: r.pointCount,
          pending: r.pendingRows,
          transferredBytes: r.transferredBytes,
          indexMemoryBytes: (await r.indexStats())?.memoryBytes,
        })),
      ),
    pointsWritten: () => writer.written,
    nats: () => ({ connected: nats.connected(), ...nats.events }),
    logLinesDropped: () => logs.dropped,
    coordinator: () => ({ leader: coordinator.isLeader, epoch: coordinator.epoch }),
    shardLogs: async () => {
      if (!coordinator.isLeader) return [];
      const logs = await Promise.all(catalog.cached().map(async (c) => ({ name: c.name, state: await readLogState(nats.retention, c.name, c.uid).catch(() => undefined) })));
      return logs.flatMap(({ name, state }) => (state?.shards ?? []).map((s) => ({ collection: name, ...s })));
    },
    migrations: () =>
      coordinator.runningMigrations().map((m) => ({
        id: m.id,
        collection: m.transfer.collection,
        shard: m.transfer.shard,
        state: m.state,
        appliedSeq: m.progress.appliedSeq,
        targetSeq: m.progress.targetSeq,
        bytesCopied: m.progress.bytesCopied,
        copyGoalBytes: m.progress.copyGoalBytes,
        etaMs: m.progress.etaMs,
      })),
    workers: () => pool.utilization(),
    disk: async () => {
      const fs = await statfs(dataDir);
      return { freeBytes: fs.bavail * fs.bsize, totalBytes: fs.blocks * fs.bsize };
    },
    txns: () => txns.figures(),
    onTxnEnded: (observe) => txns.onEnded(observe),
    jobs: () => {
      const nowMs = Date.now();
      return [
        ...backups.backups.running(nowMs).filter((b) => b.node === nodeId).map((b) => ({ kind: "backup" as const, ...b.progress })),
        ...backups.restores.running(nowMs).filter((r) => r.node === nodeId).map((r) => ({ kind: "restore" as const, ...r.progress })),
      ];
    },
  };
}

/** What this node's heartbeat says about one of its replicas. */
export function replicaBeatOf(r: ShardReplica): ReplicaBeat {
  return {
    collection: r.config.name,
    uid: r.config.uid,
    shard: r.shard,
    state: r.state,
    appliedSeq: r.appliedSeq,
    lag: Math.max(0, r.lastSeq - r.appliedSeq),
    count: r.pointCount,
    transferredBytes: r.transferredBytes,
    copyGoalBytes: r.copyGoalBytes,
    checkpointSeq: r.checkpointSeq,
    pending: r.pendingRows,
    snapshotUnabsorbed: r.snapshotUnabsorbed,
    ...(r.restored ? { restored: r.restored } : {}),
  };
}
