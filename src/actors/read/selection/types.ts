/** What a replica selection strategy is, apart from `resolveSelection` so strategies import it without a loop. */
export const SelectionName = { RoundRobin: "round-robin", LeastLoaded: "least-loaded" } as const;
export type SelectionName = (typeof SelectionName)[keyof typeof SelectionName];
/** Reads go to the replica with the fewest requests in flight unless the node is told otherwise. */
export const selectionDefault: SelectionName = SelectionName.LeastLoaded;

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
