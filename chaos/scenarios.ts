/**
 * Scenarios, written once against FaultDriver: each picks its target (seeded),
 * injects the fault, holds it, heals it; the runner then waits for the cluster to
 * settle and measures failover from the workload's searches and status samples.
 */
import type { JadeClient } from "../src/client/client.ts";
import type { ClusterInfo, Fault } from "./driver.ts";
import { withTimeout } from "./util.ts";
import { pickOne } from "../src/runtime/random.ts";

export interface ScenarioContext {
  client: JadeClient;
  info: ClusterInfo;
  random: () => number;
  /** Scales hold times (1 for CI, more for the soak). */
  holdScale: number;
}

export interface Scenario {
  name: string;
  /** How long the fault is held before it is healed. */
  holdMs: number;
  fault(ctx: ScenarioContext): Promise<Fault>;
}

const randomNode = async (ctx: ScenarioContext) => ({ kind: "node" as const, id: pickOne(ctx.random, ctx.info.nodes) });

export const scenarios: Scenario[] = [
  {
    name: "kill-random-node",
    // Longer than --node-dead-after-ms (8 s): the dead node's replicas are re-placed.
    holdMs: 10_000,
    fault: async (ctx) => ({ kind: "kill", target: await randomNode(ctx) }),
  },
  {
    name: "kill-coordinator",
    holdMs: 10_000,
    fault: async (ctx) => {
      const status = await withTimeout(ctx.client.clusterStatus(), 10_000, "cluster status");
      if (!status.coordinator) throw new Error("no coordinator to kill");
      return { kind: "kill", target: { kind: "node", id: status.coordinator } };
    },
  },
  {
    name: "kill-nats-server",
    holdMs: 10_000,
    fault: async (ctx) => ({ kind: "kill", target: { kind: "nats", id: pickOne(ctx.random, ctx.info.natsServers) } }),
  },
  {
    name: "pause-node",
    // Shorter than the dead timeout: reads route around it, nothing is re-placed.
    holdMs: 5_000,
    fault: async (ctx) => ({ kind: "pause", target: await randomNode(ctx) }),
  },
  {
    name: "partition-node",
    holdMs: 10_000,
    fault: async (ctx) => ({ kind: "partition", target: await randomNode(ctx) }),
  },
  {
    name: "blackhole-node",
    // amount 1: the partition swallows bytes silently instead of resetting connections.
    holdMs: 10_000,
    fault: async (ctx) => ({ kind: "partition", target: await randomNode(ctx), amount: 1 }),
  },
  {
    name: "latency-node",
    holdMs: 10_000,
    fault: async (ctx) => ({ kind: "latency", target: await randomNode(ctx), amount: 200 }),
  },
  {
    name: "bandwidth-node",
    holdMs: 10_000,
    fault: async (ctx) => ({ kind: "bandwidth", target: await randomNode(ctx), amount: 32 * 1024 }),
  },
  {
    name: "memory-pressure",
    holdMs: 10_000,
    fault: async (ctx) => ({ kind: "memory-pressure", target: await randomNode(ctx), amount: 256 * 1024 * 1024 }),
  },
];

/** The CI-sized set: one round, every scenario but the slow black hole. */
export const ciScenarios = [
  "kill-random-node",
  "kill-coordinator",
  "kill-nats-server",
  "pause-node",
  "partition-node",
  "latency-node",
  "bandwidth-node",
  "memory-pressure",
];

export function scenarioByName(name: string): Scenario {
  const s = scenarios.find((x) => x.name === name);
  if (!s) throw new Error(`unknown scenario ${name}; known: ${scenarios.map((x) => x.name).join(", ")}`);
  return s;
}
