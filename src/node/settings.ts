/** A node's settings: its options with the defaults filled in and their relations checked, and its own cluster settings (actors/config). */
import { ClusterSettings } from "../actors/config/schemas.ts";
import { defaultCoordinatorSettings, type CoordinatorSettings } from "../actors/control/coordinator.ts";
import { defaultMembershipSettings, type MembershipSettings } from "../actors/cluster/membership.ts";
import { defaultReplicaSettings, type ReplicaSettings } from "../actors/replica/types.ts";
import { processLogLevel } from "../runtime/log.ts";
import { pointInTimeMsDefault, snapshotIntervalMsDefault } from "../runtime/schemas.ts";
import type { NodeOptions } from "../node.ts";

export interface NodeSettings {
  replica: ReplicaSettings;
  membership: MembershipSettings;
  coordinator: CoordinatorSettings;
}

/** The node's settings with defaults filled in, refused when they contradict each other. */
export function resolveSettings(options: NodeOptions): NodeSettings {
  const settings = {
    replica: { ...defaultReplicaSettings, ...options.replica },
    membership: { ...defaultMembershipSettings, ...options.membership },
    coordinator: { ...defaultCoordinatorSettings, ...options.coordinator },
  };
  const { membership, coordinator } = settings;
  assertSetting(membership.failureTimeoutMs >= 2 * membership.heartbeatIntervalMs, "a node is judged silent only after missing two heartbeats");
  assertSetting(
    coordinator.nodeDeadAfterMs > membership.failureTimeoutMs,
    "a node's replicas are re-placed only after routers stopped reading from it (nodeDeadAfterMs > failureTimeoutMs)",
  );
  assertSetting(coordinator.renewIntervalMs * 2 <= coordinator.leaseTtlMs, "the coordinator renews its lease at least twice per lease lifetime");
  return settings;
}

/** The node's own cluster settings (its options, or the defaults): what it runs where the cluster's patch sets nothing. */
export function ownSettings(options: NodeOptions, settings: NodeSettings): ClusterSettings {
  const unlimited = { perSecond: 0, burst: 1 };
  const level = ClusterSettings.shape.log.shape.level.safeParse(processLogLevel);
  return {
    membership: settings.membership,
    replica: { transferBytesPerSecMax: settings.replica.transferBytesPerSecMax },
    migration: { concurrentMax: settings.coordinator.migration.concurrentMax },
    coordinator: { restartDelayMs: settings.coordinator.restartDelayMs },
    snapshot: { intervalMs: snapshotIntervalMsDefault },
    retention: { pointInTimeMs: pointInTimeMsDefault },
    rateLimits: { httpKey: options.rateLimits?.httpKey ?? unlimited, natsTenant: options.rateLimits?.natsTenant ?? unlimited },
    // JADE_LOG_LEVEL=silent has no setting of its own: the quietest one.
    log: { level: level.success ? level.data : "fatal" },
  };
}

function assertSetting(holds: boolean, relation: string): void {
  if (!holds) throw new Error(`node settings contradict each other: ${relation}`);
}
