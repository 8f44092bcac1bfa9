/** `jade nodes restart-plan`, `jade nodes ready <node>`: rolling restarts and upgrades (docs/operations.md). */
import type { Command } from "commander";
import { nodeReady, restartPlan } from "../../runtime/restart-plan.ts";
import { ErrorCode, JadeError } from "../../runtime/errors.ts";
import { printJson, printLine, table } from "../format.ts";
import { runWithClient, withClientOptions, type ClientOptions } from "./shared.ts";

const readyPollMs = 500;

export function registerRestartCommands(nodes: Command): void {
  withClientOptions(nodes.command("restart-plan").description("the safe order for a rolling restart or upgrade: one node at a time, the coordinator last")).action((o: ClientOptions) =>
    runWithClient(o, async (client) => {
      const plan = restartPlan(await client.clusterStatus());
      if (o.json) return printJson(plan);
      if (plan.down.length > 0) printLine(`not live now: ${plan.down.join(", ")}: bring ${plan.down.length === 1 ? "it" : "them"} back before restarting another node\n`);
      printLine("Restart one node at a time, in this order. Stop it cleanly (SIGTERM): its replicas stay placed for");
      printLine("coordinator.restartDelayMs (jade config) and it replays only what it missed. Before the next step,");
      printLine("wait until it is back with every replica serving: jade nodes ready <node>.\n");
      printLine(
        table(
          ["step", "node", "replicas", "while it restarts"],
          plan.steps.map((s, i) => [
            i + 1,
            s.node + (s.coordinator ? " (coordinator)" : ""),
            s.replicas,
            s.alone.length === 0 ? "every shard keeps a serving replica" : `no other serving replica: ${s.alone.join(", ")}`,
          ]),
        ),
      );
    }),
  );
  withClientOptions(
    nodes
      .command("ready <node>")
      .description("wait until a node is live with every replica it hosts serving and caught up (exit 1 on timeout)")
      .option("--timeout-ms <ms>", "give up after this long", Number, 300_000),
  ).action((node: string, o: ClientOptions & { timeoutMs: number }) =>
    runWithClient(o, async (client) => {
      const deadline = performance.now() + o.timeoutMs;
      for (;;) {
        const status = await client.clusterStatus().catch(() => undefined);
        if (status && nodeReady(status, node)) return printLine(`${node} is ready`);
        if (performance.now() > deadline) throw new JadeError(ErrorCode.Timeout, `${node} was not ready within ${o.timeoutMs} ms (jade nodes get ${node})`);
        await new Promise((resolve) => setTimeout(resolve, readyPollMs));
      }
    }),
  );
}
