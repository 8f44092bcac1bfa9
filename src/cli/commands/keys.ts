/** `jade keys create|list|revoke`: API keys for HTTP, over NATS (`admin.keys.*`; docs/security.md). */
import { InvalidArgumentError, type Command } from "commander";
import type { KeyView } from "../../actors/keys/schemas.ts";
import { Access, everything, type Scope } from "../../actors/keys/scopes.ts";
import { AdminOp } from "../../runtime/subjects.ts";
import { printJson, printLine, table } from "../format.ts";
import { runWithClient, withClientOptions, type ClientOptions } from "./shared.ts";

/** `<collection|*>:<read|write|admin>`, repeatable. */
function scope(value: string, previous: Scope[] = []): Scope[] {
  const [collection, access, ...rest] = value.split(":");
  const levels: string[] = Object.values(Access);
  if (!collection || !access || rest.length > 0 || !levels.includes(access)) {
    throw new InvalidArgumentError(`expected <collection|${everything}>:<${levels.join("|")}>`);
  }
  return [...previous, { collection, access: access as Scope["access"] }];
}

const scopesText = (scopes: readonly Scope[]) => scopes.map((s) => `${s.collection}:${s.access}`).join(", ");

export function registerKeysCommands(program: Command): void {
  const keys = program.command("keys").description("API keys for HTTP, with per-collection scopes (read, write, admin)");
  withClientOptions(
    keys
      .command("create")
      .description("create an API key; it is printed once and never stored")
      .requiredOption("--name <name>", "what the key is for")
      .requiredOption("--scope <collection:access>", `what it may do: <collection|${everything}>:<read|write|admin> (repeatable)`, scope),
  ).action((o: ClientOptions & { name: string; scope: Scope[] }) =>
    runWithClient(o, async (client) => {
      const created = await client.admin<KeyView & { key: string }>(AdminOp.KeysCreate, { name: o.name, scopes: o.scope });
      if (o.json) return printJson(created);
      printLine(`key ${created.id} (${created.name}): ${scopesText(created.scopes)}\n${created.key}\nkeep it now: it is not shown again`);
    }),
  );
  withClientOptions(keys.command("list").description("every API key: id, name, scopes (never the secret)")).action((o: ClientOptions) =>
    runWithClient(o, async (client) => {
      const { keys: all } = await client.admin<{ keys: KeyView[] }>(AdminOp.KeysList, {});
      if (o.json) return printJson(all);
      if (all.length === 0) return printLine("no API keys");
      printLine(table(["id", "name", "scopes", "created"], all.map((k) => [k.id, k.name, scopesText(k.scopes), k.createdAt])));
    }),
  );
  withClientOptions(keys.command("revoke <id>").description("revoke an API key: every node refuses it within a second")).action((id: string, o: ClientOptions) =>
    runWithClient(o, async (client) => {
      const result = await client.admin<{ revoked: string }>(AdminOp.KeysRevoke, { id });
      if (o.json) return printJson(result);
      printLine(`revoked ${result.revoked}`);
    }),
  );
}
