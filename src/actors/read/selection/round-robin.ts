import type { ReplicaSelection } from "./types.ts";

/** Rotates the starting replica per shard, so reads spread evenly over the replicas. */
export function roundRobin(): ReplicaSelection {
  const counters = new Map<string, number>();
  return {
    order(nodes, { key }) {
      if (nodes.length <= 1) return [...nodes];
      const n = counters.get(key) ?? 0;
      counters.set(key, (n + 1) % nodes.length);
      return nodes.map((_, i) => nodes[(n + i) % nodes.length]!);
    },
  };
}
