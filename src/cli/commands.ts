/**
 * The client commands of `jade` (collections, upsert, import, search, count,
 * get, delete, status, changes; nodes, shards, rebalance, migrations; backup, restore; txns). Each takes `--nats URL[,URL…]` and `--json`; they all
 * talk to the cluster through JadeClient. See docs/cli.md.
 */
import type { Command } from "commander";
import { registerAdminCommands } from "./commands/admin.ts";
import { registerAuthCommands } from "./commands/auth.ts";
import { registerKeysCommands } from "./commands/keys.ts";
import { registerConfigCommands } from "./commands/config.ts";
import { registerBackupCommands } from "./commands/backup.ts";
import { registerChangesCommand } from "./commands/changes.ts";
import { registerLogsCommand } from "./commands/logs.ts";
import { registerDiagCommand } from "./commands/diag.ts";
import { registerCollectionCommands } from "./commands/collections.ts";
import { registerReadCommands } from "./commands/read.ts";
import { registerStatusCommand } from "./commands/status.ts";
import { registerWriteCommands } from "./commands/write.ts";
import { registerTxnsCommands } from "./commands/txns.ts";

export function registerClientCommands(program: Command): void {
  registerCollectionCommands(program);
  registerWriteCommands(program);
  registerReadCommands(program);
  registerStatusCommand(program);
  registerChangesCommand(program);
  registerAdminCommands(program);
  registerBackupCommands(program);
  registerLogsCommand(program);
  registerDiagCommand(program);
  registerAuthCommands(program);
  registerKeysCommands(program);
  registerConfigCommands(program);
  registerTxnsCommands(program);
}
