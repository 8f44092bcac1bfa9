/**
 * `jade nodes list|get`, `jade shards list [collection]`: the cluster status cut by node and
 * by shard, as tables or (`--json`) as the status' own objects.
 */
import type { Command } from "commander";
import { ErrorCode, JadeError } from "../../runtime/errors.ts";
import type { ClusterStatus, ReplicaStatus } from "../../runtime/status.ts";
import { formatCount, formatMib as mib, keyValues, printJson, printLine, table } from "../format.ts";
import { runWithClient, withClientOptions, type ClientOptions } from "./shared.ts";

/** Every replica a node hosts, with its collection and shard. */
function replicasOn(status: ClusterStatus, node: string): (ReplicaStatus & { collection: string; shard: number })[] {
  return status.collections.flatMap((c) => c.shards.flatMap((s) => s.replicas.filter((r) => r.node === node).map((r) => ({ ...r, collection: c.name, shard: s.shard }))));
}

export function registerInspectCommands(nodes: Command, shards: Command): void {
  withClientOptions(nodes.command("list").description("every node: liveness, load, memory, replicas, which leads")).action((o: ClientOptions) =>
    runWithClient(o, async (client) => {
      const status = await client.clusterStatus();
      const rows = status.nodes.map((n) => ({ ...n, coordinator: n.id === status.coordinator, replicas: replicasOn(status, n.id).length }));
      if (o.json) return printJson(rows);
      printLine(
        table(
          ["node", "state", "coordinator", "replicas", "load", "memory", "last heartbeat", "version"],
          rows.map((n) => [n.id, (n.live ? "live" : "silent") + (n.drained ? ", drained" : ""), n.coordinator ? "yes" : "", n.replicas, n.load, mib(n.rssBytes), `${formatCount(n.lastSeenMs)} ms ago`, n.version]),
        ),
      );
      for (const d of status.departed) printLine(`${d.node}: stopped cleanly at ${d.at}, expected back (its replicas stay placed)`);
    }),
  );

  withClientOptions(nodes.command("get <node>").description("one node and every replica it hosts")).action((node: string, o: ClientOptions) =>
    runWithClient(o, async (client) => {
      const status = await client.clusterStatus();
      const found = status.nodes.find((n) => n.id === node);
      if (!found) throw new JadeError(ErrorCode.NotFound, `no node ${JSON.stringify(node)} has sent a heartbeat (jade nodes list)`);
      const replicas = replicasOn(status, node);
      if (o.json) return printJson({ ...found, coordinator: node === status.coordinator, replicas });
      printLine(
        keyValues([
          ["node", found.id],
          ["state", (found.live ? "live" : "silent") + (found.drained ? ", drained" : "")],
          ["coordinator", node === status.coordinator ? "yes" : "no"],
          ["load", found.load],
          ["memory", mib(found.rssBytes)],
          ["last heartbeat", `${formatCount(found.lastSeenMs)} ms ago`],
        ]),
      );
      printLine("");
      printLine(
        replicas.length === 0
          ? "no replicas"
          : table(
              ["collection", "shard", "state", "applied", "lag", "points"],
              replicas.map((r) => [r.collection, r.shard, r.state, r.appliedSeq, r.lag, r.count ?? null]),
            ),
      );
    }),
  );

  withClientOptions(shards.command("list [collection]").description("every shard: its replicas, their state and lag, and its log")).action(
    (collection: string | undefined, o: ClientOptions) =>
      runWithClient(o, async (client) => {
        const status = await client.clusterStatus();
        const collections = status.collections.filter((c) => collection === undefined || c.name === collection);
        if (collection !== undefined && collections.length === 0) throw new JadeError(ErrorCode.NotFound, `collection ${JSON.stringify(collection)} does not exist`);
        const rows = collections.flatMap((c) => c.shards.map((s) => ({ collection: c.name, ...s })));
        if (o.json) return printJson(rows);
        printLine(
          table(
            ["collection", "shard", "replicas", "log entries", "log size", "purge floor"],
            rows.map((s) => [
              s.collection,
              s.shard,
              [
                s.replicas.length === 0 ? "(not hosted)" : s.replicas.map((r) => `${r.node} ${r.state} lag ${r.lag}`).join(", "),
                ...s.learners.map((r) => `learner ${r.node} ${r.state} lag ${r.lag}`),
              ].join(", "),
              s.log ? s.log.messages : null,
              s.log ? mib(s.log.bytes) : null,
              s.log ? `${s.log.floor} (${s.log.heldBy})` : null,
            ]),
          ),
        );
      }),
  );
}
