/**
 * Is this node ready for traffic (`/readyz`)? Connected to NATS, and every replica the
 * placement puts here answers reads. A lagging replica counts as ready: it serves reads and
 * catches up, and a load balancer that dropped a node whenever a write burst put one replica
 * past its lag threshold would flap under ingest.
 */
import { isReadable } from "../../machines/replica.ts";
import type { ReplicaHost } from "../replica/host.ts";

export interface Readiness {
  ready: boolean;
  /** Why not, one line per cause (at most `reasonsMax`, then a count). */
  reasons: string[];
  /** Replicas placed on this node. */
  replicas: number;
}

const reasonsMax = 20;

export function readiness(connected: boolean, host: Pick<ReplicaHost, "placed">): Readiness {
  const reasons: string[] = [];
  if (!connected) reasons.push("not connected to NATS");
  const placed = host.placed();
  const waiting = placed.filter(({ replica }) => replica === undefined || !isReadable(replica.state));
  for (const { collection, shard, replica } of waiting.slice(0, reasonsMax)) {
    reasons.push(`replica ${collection}/${shard} is ${replica ? replica.state : "not started yet"}`);
  }
  if (waiting.length > reasonsMax) reasons.push(`and ${waiting.length - reasonsMax} more replicas not serving`);
  return { ready: reasons.length === 0, reasons, replicas: placed.length };
}
