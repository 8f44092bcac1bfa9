import type { ReplicaSelection } from "./types.ts";

/** Fewest requests in flight first (from heartbeats); this node wins ties, since a local read skips the network. */
export function leastLoaded(): ReplicaSelection {
  return {
    order(nodes, { loadOf, self }) {
      return [...nodes].sort((a, b) => loadOf(a) - loadOf(b) || (a === self ? -1 : b === self ? 1 : a < b ? -1 : 1));
    },
  };
}
