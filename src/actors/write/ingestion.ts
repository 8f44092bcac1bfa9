/**
 * JetStream ingestion: producers publish `{id, vector, payload?}` or
 * `{points:[…]}` to `jade.ingest.<collection>` (work-queue stream JADE_INGEST), in JSON or
 * (header `Jade-Encoding: msgpack`) msgpack, where columns `{ids, vectors, payloads?}` are
 * accepted too (see runtime/encoding.ts).
 * Every node pulls from the shared durable consumer. A record is acked only
 * after its shard logs acked; an invalid point goes to `jade.dlq.<collection>`
 * with the reason while the valid ones flow on; a transient failure is nak'ed
 * and redelivered. Shard-log writes reuse the ingest sequence as the request id,
 * so a redelivered record is deduplicated by JetStream, not applied twice.
 */
import type { Consumer, ConsumerMessages, JsMsg } from "@nats-io/jetstream";
import { invalidArgument, JadeError, toWireError, type WireError } from "../../runtime/errors.ts";
import { decodeBody, Encoding, encodingHeader, encodingOf, float32FromBytes } from "../../runtime/encoding.ts";
import { ColumnsBuilder, float32Of, type PointColumns } from "../../runtime/columns.ts";
import type { Logger } from "../../runtime/log.ts";
import type { NatsContext } from "../../nats/connect.ts";
import { publishDurable } from "../../nats/streams.ts";
import { checkVector, dimensionMismatch, parse } from "../../runtime/checks.ts";
import { IngestBatch, IngestColumns, Payload, Point, PointId, type CollectionConfig } from "../../runtime/schemas.ts";
import { quote } from "../../runtime/text.ts";
import { spaceOf, type VectorSpace } from "../../runtime/vectors.ts";
import type { z } from "zod";
import { isCollectionName, names, parseIngestSubject, subjects } from "../../runtime/subjects.ts";
import type { Catalog } from "../cluster/catalog.ts";
import type { Writer } from "./writer.ts";

export interface IngestionLimits {
  /** Ingest messages buffered from the consumer. */
  bufferMessagesMax: number;
  /** Ingest messages processed at once (each one is one log entry per shard it touches). */
  concurrencyMax: number;
  /** Redelivery delay after a transient failure. */
  retryDelayMs: number;
}

export const defaultIngestionLimits: IngestionLimits = { bufferMessagesMax: 1_024, concurrencyMax: 64, retryDelayMs: 1_000 };

/** A dead letter quotes the rejected record or point up to this many bytes of JSON (a record may be 8 MiB). */
export const deadLetterRecordBytesMax = 4_096;
/**
 * A record that keeps failing with an error that is not ours (a bug) is dead-lettered as
 * `internal` after this many deliveries, so one bad record cannot occupy a slot forever.
 * Retryable errors (the log unavailable) are retried without end: nothing is dropped.
 */
export const unexpectedFailuresMax = 5;

/** What becomes of a record whose processing threw `err` on its `deliveryCount`-th delivery. */
export function failureOutcome(err: unknown, deliveryCount: number): "retry" | "dead-letter" {
  if (err instanceof JadeError) return err.retryable ? "retry" : "dead-letter";
  return deliveryCount >= unexpectedFailuresMax ? "dead-letter" : "retry";
}

export interface DeadLetter {
  collection: string | null;
  subject: string;
  ingestSeq: number;
  /** Position in a `{points:[…]}` record, when one point of it was rejected. */
  index?: number;
  error: WireError;
  record: unknown;
}

const decoder = new TextDecoder();

export class Ingestion {
  readonly #nats: NatsContext;
  readonly #catalog: Catalog;
  readonly #writer: Writer;
  readonly #log: Logger;
  readonly #limits: IngestionLimits;
  #messages: ConsumerMessages | undefined;
  #loop: Promise<void> | undefined;
  readonly #inflight = new Set<Promise<void>>();

  constructor(nats: NatsContext, catalog: Catalog, writer: Writer, log: Logger, limits = defaultIngestionLimits) {
    this.#nats = nats;
    this.#catalog = catalog;
    this.#writer = writer;
    this.#log = log.child({ actor: "ingestion" });
    this.#limits = limits;
  }

  async start(): Promise<void> {
    const consumer: Consumer = await this.#nats.js.consumers.get(names.ingestStream, names.ingestConsumer);
    this.#messages = await consumer.consume({ max_messages: this.#limits.bufferMessagesMax });
    this.#loop = this.#run(this.#messages);
  }

  async stop(): Promise<void> {
    this.#messages?.stop();
    await this.#loop;
    await Promise.all(this.#inflight);
  }

  async #run(messages: ConsumerMessages): Promise<void> {
    for await (const m of messages) {
      while (this.#inflight.size >= this.#limits.concurrencyMax) await Promise.race(this.#inflight);
      const task = this.#process(m).finally(() => this.#inflight.delete(task));
      this.#inflight.add(task);
    }
  }

  async #process(m: JsMsg): Promise<void> {
    const collection = parseIngestSubject(m.subject);
    const deadLetters: DeadLetter[] = [];
    const reject = (error: unknown, record: unknown, index?: number) =>
      deadLetters.push({ collection: collection ?? null, subject: m.subject, ingestSeq: m.seq, index, error: toWireError(error), record: quoted(record) });
    const encoding = encodingOf(m.headers?.get(encodingHeader));
    try {
      const record = decodeBody(m.data, encoding);
      if (collection === undefined || !isCollectionName(collection)) {
        reject(invalidArgument(`subject ${quote(m.subject)} does not name a collection`), record);
      } else {
        const config = await this.#catalog.require(collection);
        const points = validColumns(config, record, reject);
        if (points.ids.length > 0) {
          await this.#writer.upsert(config, points, { consistency: "log", requestId: `ingest-${m.seq}` });
        }
      }
    } catch (err) {
      const expected = err instanceof JadeError;
      if (failureOutcome(err, m.info.deliveryCount) === "retry") {
        if (expected) this.#log.warn({ err: err.message, seq: m.seq }, "ingest record will be retried");
        else this.#log.error({ err, seq: m.seq }, "ingest failed unexpectedly; will retry");
        m.nak(this.#limits.retryDelayMs);
        return;
      }
      if (!expected) this.#log.error({ err, seq: m.seq, deliveries: m.info.deliveryCount }, "ingest record failed unexpectedly every time; dead-lettered");
      reject(err, safeText(m.data, encoding));
    }
    try {
      for (const letter of deadLetters) await this.#deadLetter(letter);
      m.ack();
    } catch (err) {
      this.#log.warn({ err, seq: m.seq }, "dead-lettering failed; record will be redelivered");
      m.nak(this.#limits.retryDelayMs);
    }
  }

  async #deadLetter(letter: DeadLetter): Promise<void> {
    this.#log.warn({ subject: letter.subject, seq: letter.ingestSeq, index: letter.index, error: letter.error }, "ingest record dead-lettered");
    const subject = letter.collection && isCollectionName(letter.collection) ? subjects.dlq(letter.collection) : subjects.dlqUnroutable;
    await publishDurable(this.#nats.js, subject, new TextEncoder().encode(JSON.stringify(letter)), {
      msgID: `dlq-${letter.ingestSeq}-${letter.index ?? "all"}`,
      deadlineMs: 10_000,
    });
  }
}

/** A record that could not be decoded, quoted: its text (JSON), or its bytes in base64 (msgpack). */
function safeText(data: Uint8Array, encoding: Encoding): string {
  const start = data.subarray(0, deadLetterRecordBytesMax);
  return encoding === Encoding.Msgpack ? Buffer.from(start).toString("base64") : decoder.decode(start);
}

type Reject = (error: unknown, record: unknown, index?: number) => void;

/**
 * The record's valid points, as columns; each invalid one is rejected alone (dead-lettered
 * with its index), so one bad point never holds back the others.
 */
function validColumns(config: CollectionConfig, record: unknown, reject: Reject): PointColumns {
  const space = spaceOf(config);
  const isObject = typeof record === "object" && record !== null && !Array.isArray(record);
  if (isObject && "ids" in record && !("points" in record)) return validRows(space, parse(IngestColumns, record), reject);
  const isBatch = isObject && "points" in record;
  const candidates: unknown[] = isBatch ? parse(IngestBatch, record).points : [record];
  const valid = new ColumnsBuilder(space.dimension, candidates.length);
  candidates.forEach((candidate, index) => {
    try {
      const point = parse(Point, candidate);
      const vector = float32Of(point.vector);
      checkVector(vector, space, "vector");
      valid.add(point.id, vector, 0, point.payload);
    } catch (err) {
      reject(err, candidate, isBatch ? index : undefined);
    }
  });
  return valid.build();
}

/** The valid rows of a columnar record. */
function validRows(space: VectorSpace, record: z.output<typeof IngestColumns>, reject: Reject): PointColumns {
  const dim = space.dimension;
  const vectors = float32FromBytes(record.vectors);
  if (vectors.length !== record.ids.length * dim) {
    throw dimensionMismatch(dim, vectors.length / record.ids.length, `vectors (${vectors.length} values for ${record.ids.length} ids)`);
  }
  const valid = new ColumnsBuilder(dim, record.ids.length);
  record.ids.forEach((rawId, i) => {
    const row = vectors.subarray(i * dim, (i + 1) * dim);
    try {
      const id = parse(PointId, rawId);
      const rawPayload = record.payloads?.[i];
      const payload = rawPayload === undefined || rawPayload === null ? undefined : parse(Payload, rawPayload);
      checkVector(row, space, "vector");
      valid.add(id, row, 0, payload);
    } catch (err) {
      reject(err, { id: rawId, vector: Array.from(row), payload: record.payloads?.[i] }, i);
    }
  });
  return valid.build();
}

/** The record as it goes into a dead letter: itself when its JSON is short, else the start of its JSON text. */
function quoted(record: unknown): unknown {
  if (typeof record === "string") return record;
  let json: string;
  try {
    json = JSON.stringify(record) ?? "null";
  } catch {
    return "(not quoted: nested too deeply to encode)";
  }
  return Buffer.byteLength(json) <= deadLetterRecordBytesMax ? record : decoder.decode(Buffer.from(json).subarray(0, deadLetterRecordBytesMax));
}
