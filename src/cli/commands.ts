import type { Command } from "commander";

/** Client commands (collections, upsert, import, search, count, status). */
export function registerClientCommands(_program: Command): void {}
