/**
 * The nodes' log lines from the stream `JADE_LOGS` (each node ships its own: actors/logs), in
 * order from an instant: those already there, then, when following, new ones until stopped.
 * One reader for `jade logs` and `jade diag`.
 */
import { DeliverPolicy, jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { names, subjects } from "../runtime/subjects.ts";

export interface LogReadOptions {
  /** One node's lines only. */
  node?: string;
  sinceMs: number;
  /** Keep reading new lines until `signal` aborts; otherwise stop at the last line there now. */
  follow?: boolean;
  signal?: AbortSignal;
}

/** Calls `onLine` with each line (as the node wrote it, newline trimmed); `false` from it stops the read. */
export async function readLogLines(nc: NatsConnection, options: LogReadOptions, onLine: (line: string) => boolean | void): Promise<void> {
  const consumer = await jetstream(nc).consumers.get(names.logsStream, {
    filter_subjects: options.node ? subjects.logs(options.node) : subjects.logsWildcard,
    deliver_policy: DeliverPolicy.StartTime,
    opt_start_time: new Date(Date.now() - options.sinceMs).toISOString(),
  });
  // Nothing there and not following: an ordered consumer would wait for a first line forever.
  if (!options.follow && (await consumer.info()).num_pending === 0) return;
  const messages = await consumer.consume();
  const stop = () => void messages.stop();
  options.signal?.addEventListener("abort", stop);
  try {
    for await (const m of messages) {
      if (onLine(m.string().trimEnd()) === false) break;
      if (!options.follow && m.info.pending === 0) break;
    }
  } finally {
    options.signal?.removeEventListener("abort", stop);
  }
}
