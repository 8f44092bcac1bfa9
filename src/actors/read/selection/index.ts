/**
 * Replica selection strategies (moleculer style): which replica of a shard a
 * router asks first. The order is also the retry order.
 */
import { leastLoaded } from "./least-loaded.ts";
import { roundRobin } from "./round-robin.ts";

export const SelectionName = { RoundRobin: "round-robin", LeastLoaded: "least-loaded" } as const;
export type SelectionName = (typeof SelectionName)[keyof typeof SelectionName];

export interface SelectionContext {
  /** Identifies the shard (round-robin keeps one counter per key). */
  key: string;
  /** Requests in flight on a node, from its heartbeat. */
  loadOf: (node: string) => number;
  self: string;
}

export interface ReplicaSelection {
  order(nodes: readonly string[], context: SelectionContext): string[];
}

export function resolveSelection(name: SelectionName): ReplicaSelection {
  switch (name) {
    case "round-robin":
      return roundRobin();
    case "least-loaded":
      return leastLoaded();
  }
}
