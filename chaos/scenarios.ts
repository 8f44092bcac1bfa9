/**
 * Scenarios, written once against FaultDriver: each picks its target (seeded),
 * injects the fault, holds it, heals it; the runner then waits for the cluster to
 * settle and measures failover from the workload's searches and status samples.
 */
import type { JadeClient } from "../src/client/client.ts";
import type { ClusterInfo, Fault, FaultDriver } from "./driver.ts";
import { progress, waitFor, withTimeout } from "./util.ts";
import { pickOne } from "../src/runtime/random.ts";
import { nodeReady, restartPlan } from "../src/runtime/restart-plan.ts";

export interface ScenarioContext {
  client: JadeClient;
  info: ClusterInfo;
  random: () => number;
  /** Scales hold times (1 for CI, more for the soak). */
  holdScale: number;
  driver: FaultDriver;
}

/** What a scenario promises for its whole window, besides what every run checks (run.ts checks each). */
export interface Promises {
  /** Every search of the RF 2 collection answered by every shard. */
  completeSearches: boolean;
  /** No write attempt failed. */
  noFailedWrites: boolean;
  /** No placement changed, no migration ran, and every replica restarted from its own checkpoint. */
  nothingCopied: boolean;
}

export interface Scenario {
  name: string;
  /** How long the fault is held before it is healed. */
  holdMs: number;
  /** One fault, held for holdMs, then healed… */
  fault?(ctx: ScenarioContext): Promise<Fault>;
  /** …or a procedure, run to its end (an operator's rolling restart). */
  procedure?(ctx: ScenarioContext): Promise<void>;
  promises?: Promises;
}

/** Restart time of one node, clean stop to every replica serving again. */
const restartReadyMsMax = 120_000;

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
  {
    name: "rolling-restart",
    holdMs: 0,
    // The promise for an upgrade: with RF 2, nothing a client does notices, and nothing is copied.
    promises: { completeSearches: true, noFailedWrites: true, nothingCopied: true },
    procedure: async (ctx) => {
      const plan = restartPlan(await withTimeout(ctx.client.clusterStatus(), 10_000, "cluster status"));
      if (plan.down.length > 0) throw new Error(`not every node is up: ${plan.down.join(", ")}`);
      for (const step of plan.steps) {
        progress(`rolling-restart: ${step.node}${step.coordinator ? " (coordinator)" : ""}`);
        const start = await ctx.driver.inject({ kind: "restart", target: { kind: "node", id: step.node } });
        await start();
        await waitFor(async () => nodeReady(await ctx.client.clusterStatus(), step.node), { what: `${step.node} back with every replica serving`, timeoutMs: restartReadyMsMax, intervalMs: 250 });
      }
    },
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
  "rolling-restart",
];

export function scenarioByName(name: string): Scenario {
  const s = scenarios.find((x) => x.name === name);
  if (!s) throw new Error(`unknown scenario ${name}; known: ${scenarios.map((x) => x.name).join(", ")}`);
  return s;
}
