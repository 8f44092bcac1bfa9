/**
 * JetStream streams: idempotent creation, the shard log's configuration, and the durable
 * publish every write goes through. nats-server 2.9: no per-message TTL, no subject transforms.
 */
import {
  DiscardPolicy,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
  type PubAck,
} from "@nats-io/jetstream";
import { nanos, type MsgHdrs } from "@nats-io/nats-core";
import { limits } from "../runtime/limits.ts";
import { names, subjects } from "../runtime/subjects.ts";
import { Backoff } from "../runtime/async.ts";

/** How long a stream remembers a msgID, so a retried publish is stored once. */
export const dedupWindowMs = 2 * 60_000;

type StreamConfigInput = Parameters<JetStreamManager["streams"]["add"]>[0];

/** Creates the stream, or leaves an existing one with that name as it is. */
export async function ensureStream(jsm: JetStreamManager, config: StreamConfigInput): Promise<void> {
  try {
    await jsm.streams.add(config);
  } catch (err) {
    if (err instanceof JetStreamApiError && (await streamExists(jsm, config.name!))) return;
    throw err;
  }
}

export async function streamExists(jsm: JetStreamManager, name: string): Promise<boolean> {
  try {
    await jsm.streams.info(name);
    return true;
  } catch {
    return false;
  }
}

export function shardStreamConfig(collection: string, shard: number, replicas: number): StreamConfigInput {
  return {
    name: names.logStream(collection, shard),
    subjects: [subjects.log(collection, shard)],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: replicas,
    duplicate_window: nanos(dedupWindowMs),
    max_msg_size: limits.natsPayloadBytesMax,
    discard: DiscardPolicy.New,
  };
}

export interface PublishOptions {
  msgID: string;
  /** Overall deadline including retries. */
  deadlineMs: number;
  /** Stored with the entry (a traced write's traceparent). */
  headers?: MsgHdrs;
}

/**
 * Publishes to a stream, retrying with backoff while JetStream is briefly
 * unavailable (leader election, reconnect). The same msgID on every attempt
 * lets the stream's dedup window drop a duplicate if an earlier attempt landed.
 */
export async function publishDurable(
  js: JetStreamClient,
  subject: string,
  data: Uint8Array,
  options: PublishOptions,
): Promise<PubAck> {
  const deadline = performance.now() + options.deadlineMs;
  const backoff = new Backoff({ initialMs: 50, maxMs: 1_000 });
  for (;;) {
    const remaining = deadline - performance.now();
    try {
      return await js.publish(subject, data, { msgID: options.msgID, timeout: Math.max(250, Math.min(remaining, 5_000)), ...(options.headers ? { headers: options.headers } : {}) });
    } catch (err) {
      if (!isTransient(err) || performance.now() + backoff.nextMs >= deadline) throw err;
      await backoff.wait();
    }
  }
}

function isTransient(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  // Only an API error with a definite answer (e.g. wrong stream) is final; no-responders, timeouts and
  // "jetstream is not enabled" during elections are worth another try.
  if (err instanceof JetStreamApiError) return err.status >= 500;
  return true;
}
