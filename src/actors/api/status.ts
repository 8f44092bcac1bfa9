/**
 * `jade.v1.cluster.status`: the cluster as this node sees it — live nodes from
 * heartbeats, the coordinator, and per collection the shard × replica grid from
 * the placement, with each replica's state and applied sequence from its node's
 * heartbeat (our own replicas first-hand) and lag against the shard log.
 */
import type { CollectionConfig } from "../../runtime/schemas.ts";
import type { ClusterStatus, JobStatus, ReplicaStatus } from "../../runtime/status.ts";
import type { ApiDeps } from "./types.ts";
import { readLogState } from "../control/retention.ts";
import { NodeSets } from "../control/admin.ts";
import { names } from "../../runtime/subjects.ts";

function runningJobs(deps: ApiDeps): JobStatus[] {
  const nowMs = Date.now();
  const backups = deps.backups.backups.running(nowMs);
  const restores = deps.backups.restores.running(nowMs);
  return [
    ...backups.map((b) => ({ id: b.id, kind: "backup" as const, node: b.node, collections: b.collections, ...b.progress })),
    ...restores.map((r) => ({ id: r.id, kind: "restore" as const, node: r.node, collections: r.collections.map((c) => c.to), ...r.progress })),
  ];
}

/** One replica of a shard: first-hand when this node hosts it, else from its node's heartbeat. */
function replicaStatus(deps: ApiDeps, config: CollectionConfig, shard: number, node: string, lastSeq: number | undefined): ReplicaStatus {
  const { membership, host, nodeId } = deps;
  const local = node === nodeId ? host.replicas(config.name)[shard] : undefined;
  const beat = membership.replicaBeat(node, config.uid, shard);
  const state = local?.state ?? (membership.isLive(node) ? (beat?.state ?? "starting") : "unreachable");
  const appliedSeq = local?.appliedSeq ?? beat?.appliedSeq ?? 0;
  const count = local?.pointCount ?? beat?.count;
  const pending = local?.pendingRows ?? beat?.pending;
  const snapshotUnabsorbed = local?.snapshotUnabsorbed ?? beat?.snapshotUnabsorbed;
  const last = lastSeq ?? appliedSeq;
  const restored = local?.restored ?? beat?.restored;
  return {
    node,
    state,
    appliedSeq,
    lastSeq: last,
    lag: Math.max(0, last - appliedSeq),
    ...(count === undefined ? {} : { count }),
    ...(pending === undefined ? {} : { pending }),
    ...(snapshotUnabsorbed === undefined ? {} : { snapshotUnabsorbed }),
    ...(restored ? { restored } : {}),
  };
}

export async function clusterStatus(deps: ApiDeps): Promise<ClusterStatus> {
  const { membership, placements, catalog, host, router, nodeId } = deps;
  // A drained node keeps serving what it still holds; the status says it takes nothing new.
  const drained = new Set(await new NodeSets(deps.config).get(names.cordonedKey).catch(() => []));
  const nodes = membership
    .members()
    .map((m) => ({
      id: m.heartbeat.nodeId,
      self: m.heartbeat.nodeId === nodeId,
      live: membership.isLive(m.heartbeat.nodeId),
      drained: drained.has(m.heartbeat.nodeId),
      load: m.heartbeat.load,
      rssBytes: m.heartbeat.rssBytes,
      lastSeenMs: Math.round(performance.now() - m.seenAtMs),
      configRevision: m.heartbeat.configRevision,
      version: m.heartbeat.version,
      ...(m.heartbeat.txns ? { txns: m.heartbeat.txns } : {}),
    }))
    .sort((a, b) => (a.id < b.id ? -1 : 1));
  const collections = await Promise.all(
    catalog.cached().map(async (config) => {
      const stored = placements.get(config.name);
      const placed = stored && stored.record.uid === config.uid ? stored.record.shards : [];
      const logs = await readLogState(deps.retention, config.name, config.uid).catch(() => undefined);
      const shards = await Promise.all(
        Array.from({ length: config.shards }, async (_, shard) => {
          const lastSeq = await router.streamLastSeq(config, shard).catch(() => undefined);
          const replicas = (placed[shard]?.replicas ?? []).map((node) => replicaStatus(deps, config, shard, node, lastSeq));
          const learners = (placed[shard]?.learners ?? []).map((node) => replicaStatus(deps, config, shard, node, lastSeq));
          const logState = logs?.shards[shard];
          if (logState === undefined) return { shard, replicas, learners };
          const { firstSeq, lastSeq: logLastSeq, messages, bytes, floor, heldBy } = logState;
          return { shard, replicas, learners, log: { firstSeq, lastSeq: logLastSeq, messages, bytes, floor, heldBy } };
        }),
      );
      return { name: config.name, dimension: config.dimension, metric: config.metric, replicas: config.replicas, epoch: stored?.record.epoch ?? 0, shards };
    }),
  );
  const departed = deps.departures.within(deps.settings.settings.coordinator.restartDelayMs).map(({ node, at }) => ({ node, at }));
  return { nodes, departed, configRevision: deps.settings.storedRevision, coordinator: deps.coordinator.leader, jobs: runningJobs(deps), collections };
}
