/**
 * Replica selection strategies (moleculer style): which replica of a shard a
 * router asks first. The order is also the retry order.
 */
import { leastLoaded } from "./least-loaded.ts";
import { roundRobin } from "./round-robin.ts";
import type { ReplicaSelection, SelectionName } from "./types.ts";

export { SelectionName, selectionDefault, type ReplicaSelection, type SelectionContext } from "./types.ts";

export function resolveSelection(name: SelectionName): ReplicaSelection {
  switch (name) {
    case "round-robin":
      return roundRobin();
    case "least-loaded":
      return leastLoaded();
  }
}
