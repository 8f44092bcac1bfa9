/**
 * `jade changes <collection>`: the collection's change feed, as JSON lines (`--json`) or one
 * line per change, following until interrupted (Ctrl-C prints the position to resume from)
 * or, with `--until-caught-up`, until it delivered what the logs held when it started.
 */
import { InvalidArgumentError, type Command } from "commander";
import type { ChangeStart } from "../../client/changes.ts";
import { compactJson, printLine, vectorPreview } from "../format.ts";
import { runWithClient, withClientOptions, type ClientOptions } from "./shared.ts";

interface ChangesCliOptions extends ClientOptions {
  from: ChangeStart;
  untilCaughtUp?: boolean;
}

/** `start`, `now`, an ISO 8601 instant, or a position token (`v1.…`). */
export function changeStart(value: string): ChangeStart {
  if (value === "start" || value === "now" || value.startsWith("v1.")) return value;
  const at = new Date(value);
  if (Number.isNaN(at.getTime()) || !/^\d{4}-\d{2}-\d{2}/.test(value)) {
    throw new InvalidArgumentError("expected start, now, an ISO 8601 time (2026-12-05T10:00:00Z) or a position token (v1.…)");
  }
  return at;
}

export function registerChangesCommand(program: Command): void {
  withClientOptions(
    program
      .command("changes <collection>")
      .description("stream a collection's changes (upserts and deletes), each once per shard in log order")
      .option("--from <where>", "start, now, an ISO 8601 time, or a position token a change carried", changeStart, "now")
      .option("--until-caught-up", "stop once what the logs held at the start was delivered (default: follow)"),
  ).action((collection: string, o: ChangesCliOptions) =>
    runWithClient(o, async (client) => {
      const feed = await client.changes(collection, { from: o.from, untilCaughtUp: o.untilCaughtUp === true });
      const interrupt = () => feed.stop();
      process.once("SIGINT", interrupt);
      try {
        for await (const change of feed) {
          if (o.json) printLine(JSON.stringify(change));
          else printLine(`${change.time}  shard ${change.shard} seq ${change.seq}  ${change.op.padEnd(6)} ${change.id}  ${vectorPreview(change.vector)} ${compactJson(change.payload ?? undefined, 60)}`.trimEnd());
        }
      } finally {
        process.removeListener("SIGINT", interrupt);
      }
      // Where to resume: on stderr, so JSON lines on stdout stay one change each.
      process.stderr.write(`position: ${feed.position}\n`);
    }),
  );
}
