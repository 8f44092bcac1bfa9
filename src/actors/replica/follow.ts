/**
 * The replica's hot path: consume the shard log in order from a sequence and
 * apply it to the index actor in batches. Whatever arrived while the previous
 * batch was applied becomes the next batch, so batches grow under load and stay
 * small (low latency) when idle.
 */
import { DeliverPolicy, JetStreamApiCodes, JetStreamApiError, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import type { ApplyResult, LogRecord } from "../vector-index/api.ts";
import { Backoff } from "../../runtime/async.ts";
import { logPurgedPast } from "../../runtime/retention.ts";
import { extractTrace, hasSpan, startSpan, tracingEnabled } from "../../runtime/tracing.ts";
import type { Attributes, Context, Span } from "@opentelemetry/api";

export interface FollowLimits {
  /** Entries handed to the index actor in one call. */
  batchEntriesMax: number;
  batchBytesMax: number;
  /**
   * Entries the consumer may buffer ahead of the apply loop (an entry is at most one
   * request, 8 MiB). Counted in messages: byte-bounded pulls of an ordered consumer
   * stalled on nats-server 2.9 with entries left unpulled until the next write.
   */
  bufferEntriesMax: number;
  /** How often an idle consumer is checked against the log's last sequence. */
  stallCheckMs: number;
}

export const defaultFollowLimits: FollowLimits = {
  batchEntriesMax: 512,
  batchBytesMax: 16 * 1024 * 1024,
  bufferEntriesMax: 64,
  stallCheckMs: 2_000,
};

export interface FollowOptions {
  js: JetStreamClient;
  jsm: JetStreamManager;
  stream: string;
  fromSeq: number;
  apply: (records: LogRecord[]) => Promise<ApplyResult>;
  onProgress: (appliedSeq: number, lastSeq: number) => void;
  signal: AbortSignal;
  limits?: FollowLimits;
  /** On the spans of traced entries' applies (the node, collection and shard). */
  traceAttributes?: Attributes;
}

/**
 * Entries this replica needs were purged from the log (retention moved the floor past it,
 * e.g. while its node was away): following on would skip them, so the replica restores a
 * snapshot instead.
 */
export class LogPurgedError extends Error {
  override readonly name = "LogPurgedError";
  readonly code = "log_purged" as const;

  constructor(stream: string, neededSeq: number, firstSeq: number) {
    super(`log ${stream} starts at ${firstSeq}, after the needed sequence ${neededSeq}: restore a newer snapshot`);
  }
}

export function isLogPurgedError(err: unknown): err is LogPurgedError {
  return err instanceof LogPurgedError;
}

/** Runs until the signal aborts (resolves) or the log cannot be followed (rejects). */
export async function followLog(options: FollowOptions): Promise<void> {
  const limits = options.limits ?? defaultFollowLimits;
  const info = await options.jsm.streams.info(options.stream);
  if (logPurgedPast(info.state, options.fromSeq)) throw new LogPurgedError(options.stream, options.fromSeq, info.state.first_seq);
  // Report where the log ends now, so an idle shard is known to be caught up without any message.
  options.onProgress(options.fromSeq - 1, info.state.last_seq);
  let next = options.fromSeq;
  const backoff = new Backoff(followRetryBackoff);
  while (!options.signal.aborted) {
    try {
      next = await followFrom(options, limits, next);
      backoff.reset();
    } catch (err) {
      // The index is intact: a consumer that failed (NATS server lost, JetStream electing)
      // is simply recreated from the next sequence. Only a log that is gone, or purged past
      // what this replica applied, ends following.
      if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) throw err;
      if (isLogPurgedError(err)) throw err;
      await backoff.wait();
    }
  }
}

/** A failed consumer is recreated after 0.1 s, doubling to 2 s while JetStream stays away. */
const followRetryBackoff = { initialMs: 100, maxMs: 2_000 };


/**
 * One consumer's life: follows from `fromSeq` until aborted, or until the watchdog
 * finds the consumer stalled (the log grew, nothing arrived: after a NATS server
 * or network fault an ordered consumer can take 30–60 s to notice by itself).
 * Returns the next sequence to follow from.
 */
async function followFrom(options: FollowOptions, limits: FollowLimits, fromSeq: number): Promise<number> {
  const consumer = await options.js.consumers.get(options.stream, {
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: fromSeq,
  });
  const messages = await consumer.consume({ max_messages: limits.bufferEntriesMax });
  const buffer = new RecordBuffer(limits);
  let next = fromSeq;
  let received = false;
  let gap: LogPurgedError | undefined;
  /** Traced entries not applied yet: sequence → the write that made it. */
  const traces = new Map<number, Context>();
  const stop = () => {
    void messages.stop();
    buffer.end();
  };
  options.signal.addEventListener("abort", stop, { once: true });
  const watchdog = setInterval(() => {
    if (received) {
      received = false;
      return;
    }
    options.jsm.streams
      .info(options.stream)
      .then((now) => {
        if (now.state.last_seq < next) return;
        if (logPurgedPast(now.state, next)) gap = new LogPurgedError(options.stream, next, now.state.first_seq);
        // Entries exist that never arrived: show the lag, and start a fresh consumer.
        options.onProgress(next - 1, now.state.last_seq);
        stop();
      })
      .catch(() => undefined);
  }, limits.stallCheckMs);
  // The pump moves messages into the buffer; the apply loop takes whatever has
  // accumulated whenever the index actor is free (bounded by the limits).
  const pump = (async () => {
    let expected = fromSeq;
    for await (const m of messages) {
      received = true;
      // Sequences are contiguous (entries are never deleted one by one): a jump is a purge.
      if (m.seq > expected) {
        gap = new LogPurgedError(options.stream, expected, m.seq);
        break;
      }
      expected = m.seq + 1;
      if (tracingEnabled()) {
        const parent = extractTrace(m.headers);
        if (hasSpan(parent)) traces.set(m.seq, parent);
      }
      await buffer.push({ seq: m.seq, data: m.data }, m.seq + m.info.pending);
    }
  })().finally(() => buffer.end());
  try {
    for (;;) {
      const taken = await buffer.take();
      if (!taken || options.signal.aborted) break;
      const spans = traces.size > 0 ? applySpans(taken.records, traces, options.traceAttributes ?? {}) : [];
      let result: ApplyResult;
      try {
        result = await options.apply(taken.records);
      } finally {
        for (const span of spans) span.end();
      }
      next = result.appliedSeq + 1;
      if (options.signal.aborted) break;
      // Readers and writers count on what took effect: a write held behind a transaction has not.
      options.onProgress(result.visibleSeq ?? result.appliedSeq, Math.max(taken.lastSeq, result.appliedSeq));
    }
    await pump;
    if (gap) throw gap;
  } finally {
    clearInterval(watchdog);
    options.signal.removeEventListener("abort", stop);
    stop();
  }
  return next;
}

/** A span per traced entry of a batch, each a child of the write that made the entry, open while the batch applies. */
function applySpans(records: readonly LogRecord[], traces: Map<number, Context>, attributes: Attributes): Span[] {
  const spans: Span[] = [];
  for (const { seq } of records) {
    const parent = traces.get(seq);
    if (!parent) continue;
    traces.delete(seq);
    const span = startSpan("jade.replica.apply", { ...attributes, "jade.seq": seq, "jade.batch.entries": records.length }, parent);
    if (span) spans.push(span);
  }
  return spans;
}

/**
 * A bounded hand-off between the consumer and the apply loop. Why not batch on the iterator's
 * `getPending()`: in @nats-io/jetstream 3.4 it can stay above 0 after the last message was
 * yielded (the pull-request callbacks queued among messages are not counted down), so a loop
 * that waited for "more pending" held delivered entries unapplied until the next write
 * (reproduced with 60 entries of 1.5 MB applied at 100 ms each: delivered through 60, applied
 * through 54). The buffer wakes the taker on every push instead.
 */
class RecordBuffer {
  readonly #limits: FollowLimits;
  #records: LogRecord[] = [];
  #lastSeq = 0;
  #ended = false;
  #wakeTaker: (() => void) | undefined;
  #wakePusher: (() => void) | undefined;

  constructor(limits: FollowLimits) {
    this.#limits = limits;
  }

  /** Adds a record; waits while the buffer is full. */
  async push(record: LogRecord, lastSeq: number): Promise<void> {
    while (this.#records.length >= this.#limits.bufferEntriesMax && !this.#ended) {
      await new Promise<void>((r) => (this.#wakePusher = r));
    }
    this.#records.push(record);
    this.#lastSeq = Math.max(this.#lastSeq, lastSeq);
    this.#wake("taker");
  }

  /** The next batch (as much as the batch limits allow), or undefined once ended and empty. */
  async take(): Promise<{ records: LogRecord[]; lastSeq: number } | undefined> {
    while (this.#records.length === 0) {
      if (this.#ended) return undefined;
      await new Promise<void>((r) => (this.#wakeTaker = r));
    }
    let count = 0;
    let bytes = 0;
    while (count < this.#records.length && count < this.#limits.batchEntriesMax && (count === 0 || bytes < this.#limits.batchBytesMax)) {
      bytes += this.#records[count]!.data.byteLength;
      count++;
    }
    const records = this.#records.splice(0, count);
    this.#wake("pusher");
    return { records, lastSeq: this.#lastSeq };
  }

  end(): void {
    this.#ended = true;
    this.#wake("taker");
    this.#wake("pusher");
  }

  #wake(which: "taker" | "pusher"): void {
    const wake = which === "taker" ? this.#wakeTaker : this.#wakePusher;
    if (which === "taker") this.#wakeTaker = undefined;
    else this.#wakePusher = undefined;
    wake?.();
  }
}
