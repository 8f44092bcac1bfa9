/** `jade nodes drain|undrain|remove`, `jade shards move`, `jade rebalance`, `jade migrations …`. */
import { registerRestartCommands } from "./restart.ts";
import type { Command } from "commander";
import type { MigrationView } from "../../actors/control/migrations.ts";
import type { Move } from "../../runtime/rebalance.ts";
import { formatSeconds, printJson, printLine, table } from "../format.ts";
import { copying, type TransferProgress } from "../../runtime/transfer.ts";
import { integer, runWithClient, withClientOptions, type ClientOptions } from "./shared.ts";
import { registerInspectCommands } from "./inspect.ts";

function printMoves(moves: Move[]): void {
  if (moves.length === 0) return printLine("nothing to move");
  printLine(table(["collection", "shard", "from", "to"], moves.map((m) => [m.collection, m.shard, m.from, m.to])));
}

/** `copying x/y MiB` or `seq applied/target, x MiB`, then the ETA — what an operator watches during a move. */
function progressText(p: TransferProgress | undefined): string {
  if (!p || p.startedAtMs === 0) return "-";
  const mib = (bytes: number) => (bytes / (1024 * 1024)).toFixed(1);
  const eta = p.etaMs === null ? "?" : `${formatSeconds(p.etaMs)} s`;
  const where = copying(p) ? `copying ${mib(p.bytesCopied)}/${mib(p.copyGoalBytes)} MiB` : `seq ${p.appliedSeq}/${p.targetSeq}, ${mib(p.bytesCopied)} MiB`;
  return `${where}, ETA ${eta}`;
}

function printMigrations(migrations: MigrationView[]): void {
  if (migrations.length === 0) return printLine("no migrations");
  printLine(
    table(
      ["id", "state", "move", "reason", "progress"],
      migrations.map((m) => [m.id, m.state, `${m.transfer.collection}/${m.transfer.shard}: ${m.transfer.from ?? "(new)"} → ${m.transfer.to}`, m.transfer.reason, progressText(m.progress)]),
    ),
  );
}

export function registerAdminCommands(program: Command): void {
  const nodes = program.command("nodes").description("list, inspect, drain, undrain or remove cluster nodes");
  withClientOptions(nodes.command("drain <node>").description("move every replica off a node (zero-downtime migrations) and give it no new ones")).action(
    (node: string, o: ClientOptions) =>
      runWithClient(o, async (client) => {
        const result = await client.admin<{ cordoned: string[]; moves: Move[] }>("drain", { node });
        if (o.json) return printJson(result);
        printLine(`drained nodes: ${result.cordoned.join(", ")}`);
        printMoves(result.moves);
      }),
  );
  withClientOptions(nodes.command("undrain <node>").description("let a drained node receive replicas again")).action((node: string, o: ClientOptions) =>
    runWithClient(o, async (client) => {
      const result = await client.admin<{ cordoned: string[] }>("undrain", { node });
      if (o.json) return printJson(result);
      printLine(`drained nodes: ${result.cordoned.join(", ") || "(none)"}`);
    }),
  );
  withClientOptions(nodes.command("remove <node>").description("forget a node: its replicas are placed elsewhere at once (drain a live node first)")).action(
    (node: string, o: ClientOptions) =>
      runWithClient(o, async (client) => {
        const result = await client.admin<{ removed: string[] }>("remove", { node });
        if (o.json) return printJson(result);
        printLine(`removed nodes: ${result.removed.join(", ")}`);
      }),
  );

  const shards = program.command("shards").description("list shards, move shard replicas");
  registerInspectCommands(nodes, shards);
  registerRestartCommands(nodes);
  withClientOptions(
    shards
      .command("move <collection> <shard>")
      .description("move one replica of a shard to another node, with zero downtime")
      .requiredOption("--from <node>", "node that holds the replica now")
      .requiredOption("--to <node>", "node to move it to"),
  ).action((collection: string, shard: string, o: ClientOptions & { from: string; to: string }) =>
    runWithClient(o, async (client) => {
      const view = await client.admin<MigrationView>("move", { collection, shard: integer(0)(shard), from: o.from, to: o.to });
      if (o.json) return printJson(view);
      printMigrations([view]);
    }),
  );

  withClientOptions(program.command("rebalance").description("spread replicas evenly over the live nodes (zero-downtime migrations)")).action((o: ClientOptions) =>
    runWithClient(o, async (client) => {
      const result = await client.admin<{ moves: Move[] }>("rebalance");
      if (o.json) return printJson(result);
      printMoves(result.moves);
    }),
  );

  const migrations = program.command("migrations").description("list and control shard migrations");
  withClientOptions(migrations.command("list").description("every migration with its state and progress")).action((o: ClientOptions) =>
    runWithClient(o, async (client) => {
      const result = await client.admin<{ migrations: MigrationView[] }>("migrations");
      if (o.json) return printJson(result);
      printMigrations(result.migrations);
    }),
  );
  for (const op of ["pause", "resume", "cancel"] as const) {
    withClientOptions(migrations.command(`${op} <id>`).description(`${op} a migration`)).action((id: string, o: ClientOptions) =>
      runWithClient(o, async (client) => {
        const view = await client.admin<MigrationView>(op, { id });
        if (o.json) return printJson(view);
        printMigrations([view]);
      }),
    );
  }
}
