/**
 * `jade logs [--node ID] [--since D] [--level L] [--follow]`: the nodes' recent log lines from
 * the stream `JADE_LOGS` (each node ships its own: actors/logs), oldest first, then (with
 * `--follow`) new ones as they come. `--json` prints the lines as the nodes wrote them.
 */
import { InvalidArgumentError, type Command } from "commander";
import { readLogLines } from "../../client/logs.ts";
import { nodeIdPattern } from "../../runtime/subjects.ts";
import { printLine } from "../format.ts";
import { runWithClient, withClientOptions, type ClientOptions } from "./shared.ts";

const levels: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };
const levelNames = Object.fromEntries(Object.entries(levels).map(([name, n]) => [n, name.toUpperCase()]));

interface LogsOptions extends ClientOptions {
  node?: string;
  since: number;
  level: string;
  follow?: boolean;
}

/** `30s`, `10m`, `2h` → milliseconds. */
export function durationMs(value: string): number {
  const m = /^(\d+)(ms|s|m|h)$/.exec(value);
  if (!m) throw new InvalidArgumentError("must be a duration: 500ms, 30s, 10m or 2h");
  return Number(m[1]) * { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[m[2] as "ms" | "s" | "m" | "h"];
}

function nodeId(value: string): string {
  if (!nodeIdPattern.test(value)) throw new InvalidArgumentError(`must match ${nodeIdPattern}`);
  return value;
}

/** One line for people: time, level, node, actor, message, then the other fields as JSON. */
export function formatLogLine(line: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.trimEnd();
  }
  const { time, level, node, actor, msg, pid: _pid, hostname: _hostname, ...rest } = entry;
  const when = typeof time === "number" ? new Date(time).toISOString().slice(11, 23) : "";
  const extra = Object.keys(rest).length > 0 ? ` ${JSON.stringify(rest)}` : "";
  return `${when} ${(levelNames[level as number] ?? String(level)).padEnd(5)} ${String(node ?? "")}${actor ? ` ${String(actor)}` : ""}: ${String(msg ?? "")}${extra}`;
}

export function registerLogsCommand(program: Command): void {
  withClientOptions(
    program
      .command("logs")
      .description("the nodes' recent log lines (kept an hour), and with --follow the new ones")
      .option("--node <id>", "only this node's", nodeId)
      .option("--since <duration>", "from this long ago (500ms, 30s, 10m, 2h)", durationMs, 10 * 60_000)
      .option("--level <level>", `at least this level (${Object.keys(levels).join(", ")})`, "info")
      .option("--follow", "keep printing new lines until interrupted"),
  ).action((o: LogsOptions) =>
    runWithClient(o, async (client) => {
      const minLevel = levels[o.level];
      if (minLevel === undefined) throw new InvalidArgumentError(`--level must be one of ${Object.keys(levels).join(", ")}`);
      const interrupted = new AbortController();
      const stop = () => interrupted.abort();
      process.once("SIGINT", stop);
      try {
        await readLogLines(client.nc, { node: o.node, sinceMs: o.since, follow: o.follow, signal: interrupted.signal }, (line) => {
          const level = /"level":(\d+)/.exec(line)?.[1];
          if (level === undefined || Number(level) >= minLevel) printLine(o.json ? line : formatLogLine(line));
        });
      } finally {
        process.off("SIGINT", stop);
      }
    }),
  );
}
