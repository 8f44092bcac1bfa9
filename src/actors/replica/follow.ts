/**
 * The replica's hot path: consume the shard log in order from a sequence and
 * apply it to the index actor in batches. Whatever the NATS client has already
 * buffered while the previous batch was applied becomes the next batch, so
 * batches grow under load and stay small (low latency) when idle.
 */
import { DeliverPolicy, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import type { ApplyResult, LogRecord } from "../index/api.ts";

export interface FollowLimits {
  /** Entries handed to the index actor in one call. */
  batchEntriesMax: number;
  batchBytesMax: number;
  /** Bytes the consumer may buffer ahead of the apply loop. */
  bufferBytesMax: number;
}

export const defaultFollowLimits: FollowLimits = {
  batchEntriesMax: 512,
  batchBytesMax: 16 * 1024 * 1024,
  bufferBytesMax: 64 * 1024 * 1024,
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
}

/** Runs until the signal aborts (resolves) or the log cannot be followed (rejects). */
export async function followLog(options: FollowOptions): Promise<void> {
  const limits = options.limits ?? defaultFollowLimits;
  const info = await options.jsm.streams.info(options.stream);
  if (info.state.first_seq > options.fromSeq && info.state.messages > 0) {
    throw new Error(
      `log ${options.stream} starts at ${info.state.first_seq}, after the needed sequence ${options.fromSeq}: restore a newer snapshot`,
    );
  }
  // Report where the log ends now, so an idle shard is known to be caught up without any message.
  options.onProgress(options.fromSeq - 1, info.state.last_seq);
  if (options.signal.aborted) return;

  const consumer = await options.js.consumers.get(options.stream, {
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: options.fromSeq,
  });
  const messages = await consumer.consume({ max_bytes: limits.bufferBytesMax });
  const stop = () => void messages.stop();
  options.signal.addEventListener("abort", stop, { once: true });
  try {
    let batch: LogRecord[] = [];
    let bytes = 0;
    let lastSeq = 0;
    for await (const m of messages) {
      if (options.signal.aborted) break;
      batch.push({ seq: m.seq, data: m.data });
      bytes += m.data.byteLength;
      lastSeq = m.seq + m.info.pending;
      const moreBuffered = messages.getPending() > 0;
      if (moreBuffered && batch.length < limits.batchEntriesMax && bytes < limits.batchBytesMax) continue;
      const result = await options.apply(batch);
      batch = [];
      bytes = 0;
      if (options.signal.aborted) break;
      options.onProgress(result.appliedSeq, Math.max(lastSeq, result.appliedSeq));
    }
  } finally {
    options.signal.removeEventListener("abort", stop);
    messages.stop();
  }
}

