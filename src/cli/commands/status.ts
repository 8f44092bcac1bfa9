/** `jade status`: nodes, coordinator, and per collection the shard × replica grid. */
import type { Command } from "commander";
import type { ClusterStatus, ReplicaStatus, ShardLogStatus, TxnFigures } from "../../runtime/status.ts";
import { formatCount, formatMib, plural, printJson, printLine, table, type Cell } from "../format.ts";
import { runWithClient, withClientOptions, type ClientOptions } from "./shared.ts";

function replicaCell(r: ReplicaStatus | undefined): string {
  if (!r) return "";
  const count = r.count === undefined ? "?" : formatCount(r.count);
  return `${r.state} @${r.appliedSeq} lag ${r.lag} n=${count} (${r.node})`;
}

function logCell(log: ShardLogStatus | undefined): string {
  if (!log) return "";
  const entries = log.messages === 0 ? "empty" : `${log.firstSeq}–${log.lastSeq}`;
  return `${entries}, ${formatCount(Math.round(log.bytes / 1024))} KiB; purged ≤ ${log.floor}, held by ${log.heldBy}`;
}

/** The settings revision a node runs, flagged when an older one than is stored (jade config). */
function configText(runs: number, stored: number): string {
  return runs < stored ? `rev ${runs} (OLD: ${stored} stored)` : `rev ${runs}`;
}

/** A node's transactions in one cell: outcomes, those running and in doubt, recent durations. */
function txnsText(t: TxnFigures | undefined): string {
  if (!t) return "";
  const parts = [`${formatCount(t.committed)} committed`, `${formatCount(t.conflicts)} conflicts`, `${formatCount(t.aborted)} aborted`];
  if (t.inDoubt > 0) parts.push(`${formatCount(t.inDoubt)} in doubt`);
  if (t.running > 0) parts.push(`${formatCount(t.running)} running`);
  const recovered = t.recovered.committed + t.recovered.aborted;
  if (recovered > 0) parts.push(`${formatCount(recovered)} recovered`);
  return parts.join(", ") + (t.recentMs ? `; p50 ${t.recentMs.p50} ms, p99 ${t.recentMs.p99} ms` : "");
}

/** Transactions get a column once a node has run or recovered one. */
const anyTxns = (status: ClusterStatus) => status.nodes.some((n) => n.txns && (n.txns.running > 0 || n.txns.recentMs !== undefined || n.txns.recovered.committed + n.txns.recovered.aborted > 0));

/** The human rendering of a cluster status. */
export function renderStatus(status: ClusterStatus): string {
  const out: string[] = [];
  out.push(`coordinator: ${status.coordinator ?? "(none)"}`);
  const txns = anyTxns(status);
  out.push(
    "",
    table(
      ["node", "state", "load", "memory", "last heartbeat", "settings", ...(txns ? ["transactions"] : [])],
      status.nodes.map((n) => [
        n.id + (n.id === status.coordinator ? " (coordinator)" : "") + (n.self ? " *" : ""),
        (n.live ? "live" : "silent") + (n.drained ? ", drained" : ""),
        n.load,
        formatMib(n.rssBytes),
        `${formatCount(n.lastSeenMs)} ms ago`,
        configText(n.configRevision, status.configRevision),
        ...(txns ? [txnsText(n.txns)] : []),
      ]),
    ),
  );
  for (const d of status.departed ?? []) out.push("", `${d.node}: stopped cleanly at ${d.at}, expected back (its replicas stay placed)`);
  for (const job of status.jobs ?? []) {
    const mib = (bytes: number) => (bytes / 1_048_576).toFixed(1);
    out.push("", `${job.kind} ${job.id} on ${job.node} (${job.collections.join(", ")}): ${mib(job.bytesDone)}/${mib(job.bytesTotal)} MiB, ${job.shardsDone}/${job.shardsTotal} shards`);
  }
  if (status.collections.length === 0) {
    out.push("", "no collections");
    return out.join("\n");
  }
  for (const c of status.collections) {
    const replicas = Math.max(1, ...c.shards.map((s) => s.replicas.length));
    const total = c.shards.reduce((sum, s) => sum + (s.replicas[0]?.count ?? 0), 0);
    out.push("");
    out.push(
      `collection ${c.name}: dimension ${c.dimension}, ${c.metric}, ${plural(c.shards.length, "shard")} × RF ${c.replicas}, ${plural(total, "point")}, placement epoch ${c.epoch}`,
    );
    // Learners (replicas a migration is building) get a column only while there are some.
    const learning = c.shards.some((s) => s.learners.length > 0);
    const headers = ["shard", ...Array.from({ length: replicas }, (_, i) => `replica ${i}`), ...(learning ? ["learners"] : []), "log"];
    const rows: Cell[][] = c.shards.map((s) => [
      s.shard,
      ...Array.from({ length: replicas }, (_, i) => (s.replicas.length === 0 && i === 0 ? "(not hosted)" : replicaCell(s.replicas[i]))),
      ...(learning ? [s.learners.map((r) => replicaCell(r)).join(", ")] : []),
      logCell(s.log),
    ]);
    out.push(table(headers, rows));
  }
  out.push(
    "",
    "cells: state @applied-sequence lag <entries behind the log> n=<points> (node); * = the node that answered",
    "log: entries held, size; the purge floor and what holds it (the newest snapshot, a replica, the point-in-time window)",
  );
  return out.join("\n");
}

export function registerStatusCommand(program: Command): void {
  withClientOptions(program.command("status").description("show nodes, coordinator and the state of every shard replica")).action(
    (o: ClientOptions) =>
      runWithClient(o, async (client) => {
        const status = await client.clusterStatus();
        if (o.json) return printJson(status);
        printLine(renderStatus(status));
      }),
  );
}
