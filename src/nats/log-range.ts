/**
 * Reading a shard log by position and by time: a range of entries in order (backups copy one,
 * restores from the live cluster replay one), and the sequence at an instant (the change feed
 * starts there, a backup's cut and a point-in-time restore end there). Entries carry their
 * append time (the stream leader's clock); they are appended in order, so times never decrease.
 */
import { DeliverPolicy, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";

/** One stored log entry. */
export interface LogMessage {
  seq: number;
  /** Append time, nanoseconds since the epoch. */
  timeNs: bigint;
  data: Uint8Array;
}

export interface StreamSpan {
  first_seq: number;
  last_seq: number;
}

/** Entries from `fromSeq` on were purged, or the range runs past what the log holds. */
export class LogRangeError extends Error {
  override readonly name = "LogRangeError";
  readonly code = "log_range" as const;
  constructor(
    readonly stream: string,
    readonly seq: number,
    message: string,
  ) {
    super(`${stream}: ${message}`);
  }
}

export function isLogRangeError(err: unknown): err is LogRangeError {
  return err instanceof LogRangeError;
}

/**
 * The entries `fromSeq`..`toSeq` of `stream`, in order, each exactly once (an ordered consumer:
 * nats.js recreates it where it left off after a server failover). A missing sequence means
 * the entries were purged under the reader: that is an error, never a silent gap.
 */
export async function* readLogRange(js: JetStreamClient, stream: string, fromSeq: number, toSeq: number): AsyncGenerator<LogMessage> {
  if (toSeq < fromSeq) return;
  const consumer = await js.consumers.get(stream, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: fromSeq });
  // Counted in messages, as the followers do (follow.ts): byte-bounded pulls stalled on nats-server 2.9.
  const messages = await consumer.consume({ max_messages: 16 });
  try {
    let expected = fromSeq;
    for await (const m of messages) {
      if (m.seq !== expected) throw new LogRangeError(stream, expected, `entry ${expected} is gone (the next stored is ${m.seq}): purged while it was read`);
      yield { seq: m.seq, timeNs: BigInt(m.info.timestampNanos), data: m.data };
      if (m.seq >= toSeq) return;
      expected = m.seq + 1;
    }
    throw new LogRangeError(stream, expected, `the log ended before entry ${toSeq}`);
  } finally {
    await messages.stop();
  }
}

/**
 * The first entry appended at or after `at` (ms since the epoch): a binary search with one
 * direct read per step, ~20 for a million entries. None yet: the next one to be written.
 */
export async function firstSeqAtOrAfter(jsm: JetStreamManager, stream: string, span: StreamSpan, atMs: number): Promise<number> {
  let low = Math.max(1, span.first_seq);
  let high = span.last_seq + 1;
  while (low < high) {
    const mid = Math.floor((low + high) / 2);
    const stored = await jsm.streams.getMessage(stream, { seq: mid }).catch(() => null);
    // Purged meanwhile: everything at or below it is gone, so the answer is above.
    if (stored === null || stored.time.getTime() < atMs) low = mid + 1;
    else high = mid;
  }
  return low;
}

/** The last entry appended at or before `atMs` (0 when none is, or all such were purged: check against first_seq). */
export async function lastSeqAtOrBefore(jsm: JetStreamManager, stream: string, span: StreamSpan, atMs: number): Promise<number> {
  // Direct reads give milliseconds: an entry in the same millisecond as `atMs` counts as at it.
  return (await firstSeqAtOrAfter(jsm, stream, span, atMs + 1)) - 1;
}

/** An entry's append time in ms, or undefined when it is not stored (purged, or never written). */
export async function entryTimeMs(jsm: JetStreamManager, stream: string, seq: number): Promise<number | undefined> {
  if (seq < 1) return undefined;
  const stored = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
  return stored?.time.getTime();
}
