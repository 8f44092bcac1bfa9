/**
 * A rolling restart, planned from the cluster status (pure): one node at a time, the
 * coordinator last (one lease handover instead of one per step), and for each step the shards
 * that would have no serving replica while that node is away. Restarting one node at a time,
 * each back and serving before the next, never has two replicas of a shard down at once; what
 * the plan adds is which steps are unsafe now, and why.
 */
import type { ClusterStatus } from "./status.ts";

export interface RestartStep {
  node: string;
  coordinator: boolean;
  /** Replicas it hosts. */
  replicas: number;
  /** `collection/shard` with no other serving replica: unavailable while this node restarts. */
  alone: string[];
}

export interface RestartPlan {
  steps: RestartStep[];
  /** Nodes that are not live now: bring them back before restarting any other. */
  down: string[];
}

export function restartPlan(status: ClusterStatus): RestartPlan {
  const live = status.nodes.filter((n) => n.live).map((n) => n.id);
  const order = [...live].sort((a, b) => Number(a === status.coordinator) - Number(b === status.coordinator) || (a < b ? -1 : 1));
  const steps = order.map((node): RestartStep => {
    let replicas = 0;
    const alone: string[] = [];
    for (const c of status.collections) {
      for (const s of c.shards) {
        if (!s.replicas.some((r) => r.node === node)) continue;
        replicas++;
        if (!s.replicas.some((r) => r.node !== node && r.state === "serving")) alone.push(`${c.name}/${s.shard}`);
      }
    }
    return { node, coordinator: node === status.coordinator, replicas, alone };
  });
  const down = [...status.nodes.filter((n) => !n.live).map((n) => n.id), ...status.departed.map((d) => d.node)].filter((n, i, all) => all.indexOf(n) === i).sort();
  return { steps, down };
}

/** A node is back from a restart: live, and every replica it hosts serving with no lag. */
export function nodeReady(status: ClusterStatus, node: string): boolean {
  if (!status.nodes.find((n) => n.id === node)?.live) return false;
  if (status.departed.some((d) => d.node === node)) return false;
  return status.collections.every((c) => c.shards.every((s) => s.replicas.every((r) => r.node !== node || (r.state === "serving" && r.lag === 0))));
}
