/** `jade config get|set|unset|history|diff|rollback`: the cluster's settings, over NATS (`admin.config.*`; actors/config). */
import type { Command } from "commander";
import { diff, type SettingChange } from "../../actors/config/patch.ts";
import { settingPaths, type ClusterSettings, type ConfigRevision, type NodeConfigView, type SettingsPatch } from "../../actors/config/schemas.ts";
import type { JadeClient } from "../../client/client.ts";
import { AdminOp } from "../../runtime/subjects.ts";
import { compactJson, printJson, printLine, table } from "../format.ts";
import { runWithClient, withClientOptions, type ClientOptions } from "./shared.ts";

interface ConfigView extends ConfigRevision {
  effective: ClusterSettings;
  node: NodeConfigView;
  nodes: NodeConfigView[];
}

interface WriteResult {
  revision: number;
  changes: SettingChange[];
}

/** `path=value`: the value as JSON when it parses (numbers, objects), else the text itself (`log.level=debug`). */
function assignment(text: string, previous: Record<string, unknown> = {}): Record<string, unknown> {
  const eq = text.indexOf("=");
  if (eq <= 0) throw new Error(`expected <setting>=<value>, got ${JSON.stringify(text)} (settings: ${settingPaths.join(", ")})`);
  const raw = text.slice(eq + 1);
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    value = raw;
  }
  return { ...previous, [text.slice(0, eq)]: value };
}

const shown = (value: unknown) => (value === undefined ? "—" : compactJson(value));

function printChanges(changes: readonly SettingChange[]): void {
  if (changes.length === 0) return printLine("no setting changed");
  printLine(table(["setting", "from", "to"], changes.map((c) => [c.path, shown(c.from), shown(c.to)])));
}

function valueAt(settings: SettingsPatch | ClusterSettings, path: string): unknown {
  const [group, field] = path.split(".") as [string, string];
  return (settings as Record<string, Record<string, unknown> | undefined>)[group]?.[field];
}

async function revisionsOf(client: JadeClient): Promise<ConfigRevision[]> {
  return (await client.admin<{ revisions: ConfigRevision[] }>(AdminOp.ConfigHistory, {})).revisions;
}

/** Revision `n` from the history (0: nothing set). */
function pick(revisions: readonly ConfigRevision[], n: number): SettingsPatch {
  if (n === 0) return {};
  const found = revisions.find((r) => r.revision === n);
  if (!found) throw new Error(`revision ${n} is not kept (kept: ${revisions.map((r) => r.revision).join(", ") || "none"})`);
  return found.settings;
}

export function registerConfigCommands(program: Command): void {
  const config = program.command("config").description("the cluster's settings: every node applies a change live, and reports the revision it runs");
  withClientOptions(config.command("get").description("the settings: what the cluster sets, what the answering node runs, and each node's revision")).action((o: ClientOptions) =>
    runWithClient(o, async (client) => {
      const view = await client.admin<ConfigView>(AdminOp.ConfigGet, {});
      if (o.json) return printJson(view);
      const note = view.note ? ` — ${view.note}` : "";
      printLine(view.revision === 0 ? "revision 0: no cluster setting set; every node runs its own" : `revision ${view.revision}, ${view.changedAt}${note}`);
      printLine(table(["setting", "cluster", `node ${view.node.node} runs`], settingPaths.map((p) => [p, shown(valueAt(view.settings, p)), shown(valueAt(view.effective, p))])));
      printLine(table(["node", "runs revision"], view.nodes.map((n) => [n.node, n.revision < view.revision ? `${n.revision} (old: ${view.revision} is stored)` : n.revision])));
    }),
  );
  withClientOptions(
    config
      .command("set <setting=value...>")
      .description(`change settings (validated whole; refused with the reason): ${settingPaths.join(", ")}`)
      .option("--note <text>", "why: kept in the history")
      .option("--revision <n>", "only if the settings are still at this revision (from jade config get)", Number),
  ).action((assignments: string[], o: ClientOptions & { note?: string; revision?: number }) =>
    runWithClient(o, async (client) => {
      const set = assignments.reduce<Record<string, unknown>>((all, text) => assignment(text, all), {});
      const result = await client.admin<WriteResult>(AdminOp.ConfigSet, { set, ...(o.note ? { note: o.note } : {}), ...(o.revision === undefined ? {} : { revision: o.revision }) });
      if (o.json) return printJson(result);
      printLine(`revision ${result.revision}`);
      printChanges(result.changes);
    }),
  );
  withClientOptions(config.command("unset <setting...>").description("hand settings back to each node's own (its flags or the defaults)").option("--note <text>", "why: kept in the history")).action(
    (paths: string[], o: ClientOptions & { note?: string }) =>
      runWithClient(o, async (client) => {
        const result = await client.admin<WriteResult>(AdminOp.ConfigSet, { unset: paths, ...(o.note ? { note: o.note } : {}) });
        if (o.json) return printJson(result);
        printLine(`revision ${result.revision}`);
        printChanges(result.changes);
      }),
  );
  withClientOptions(config.command("history").description("every kept revision (the last 64), newest first, with what it changed")).action((o: ClientOptions) =>
    runWithClient(o, async (client) => {
      const revisions = await revisionsOf(client);
      if (o.json) return printJson(revisions);
      if (revisions.length === 0) return printLine("no revision: no cluster setting was ever set");
      const rows = revisions.map((r, i) => {
        const before = revisions[i + 1]?.settings ?? {};
        const changes = diff(before, r.settings).map((c) => `${c.path}: ${shown(c.from)} → ${shown(c.to)}`);
        return [r.revision, r.changedAt, r.note ?? "", changes.join("; ") || "(none)"];
      });
      printLine(table(["revision", "changed at", "note", "changes"], rows));
    }),
  );
  withClientOptions(config.command("diff <from> [to]").description("what differs between two revisions (to: the newest; 0: nothing set)")).action(
    (from: string, to: string | undefined, o: ClientOptions) =>
      runWithClient(o, async (client) => {
        const revisions = await revisionsOf(client);
        const toRevision = to === undefined ? (revisions[0]?.revision ?? 0) : Number(to);
        const changes = diff(pick(revisions, Number(from)), pick(revisions, toRevision));
        if (o.json) return printJson(changes);
        printChanges(changes);
      }),
  );
  withClientOptions(config.command("rollback <revision>").description("write an earlier revision again, as a new one").option("--note <text>", "why: kept in the history")).action(
    (revision: string, o: ClientOptions & { note?: string }) =>
      runWithClient(o, async (client) => {
        const result = await client.admin<WriteResult>(AdminOp.ConfigRollback, { revision: Number(revision), ...(o.note ? { note: o.note } : {}) });
        if (o.json) return printJson(result);
        printLine(`revision ${result.revision} (as revision ${revision})`);
        printChanges(result.changes);
      }),
  );
}
