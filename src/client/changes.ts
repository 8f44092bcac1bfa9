/**
 * The change feed (docs/changes.md, decision 007): a collection's changes read straight from
 * its shard logs, every change once per shard in log order, with a position to resume from.
 *
 * A position is per shard: the entry (stream sequence) and the point in it to deliver next.
 * It travels as an opaque token (`v1.` + base64url JSON `{c: uid, s: [[shard, seq, index]…]}`)
 * and is bound to the collection's incarnation (uid): a token of a dropped and re-created
 * collection is refused. A position whose entries were purged (below the shard's purge
 * floor) is refused with `out_of_range`, and a reader overtaken by a purge while it reads
 * stops with the same error: a gap is never silent.
 *
 * Points moved between shards by vector sharding appear as their upsert on the new shard
 * only (the old shard's removal of the copy is not a change of the collection).
 *
 * Transactions (decision 013): a shard's changes come in the order they took effect on its
 * replicas, which run the same sequencer (runtime/txn-sequencer.ts): a transaction's changes
 * come together when its commit is read (carrying its prepare's sequence), an aborted one's
 * never, and a plain write that waited for a transaction comes after it. A position is then
 * "read from this entry, skip this many changes": while a transaction is open on a shard its
 * entry is the one where the shard's reading last had nothing open, so a reader resuming
 * anywhere replays from there to the same changes, and skips the ones it had.
 */
import {
  DeliverPolicy,
  jetstream,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { z } from "zod";
import { ErrorCode, JadeError } from "../runtime/errors.ts";
import { decodeEntry, EntryKind, type LogEntry } from "../runtime/log-entry.ts";
import { TxnSequencer, type Effect } from "../runtime/txn-sequencer.ts";
import { logPurgedPast } from "../runtime/retention.ts";
import type { CollectionConfig, Payload } from "../runtime/schemas.ts";
import { names } from "../runtime/subjects.ts";
import { firstSeqAtOrAfter } from "../nats/log-range.ts";

/** One change of a collection, as the feed delivers it (format 1). */
export interface Change {
  op: "upsert" | "delete";
  id: string;
  /** Upserts: the stored vector. */
  vector?: number[];
  /** Upserts: the payload, or null when the point has none. */
  payload?: Payload | null;
  shard: number;
  /** The shard log sequence of the entry that made the change. */
  seq: number;
  /** The point's place in that entry. */
  index: number;
  /** When the entry was appended to the log (ISO 8601). */
  time: string;
  /** The feed's position just after this change: resume from it to get every later change once. */
  position: string;
}

/** Where a feed starts: the oldest entry still in the logs, the next one written, an instant, or a position token. */
export type ChangeStart = "start" | "now" | Date | string;

export interface ChangesOptions {
  from?: ChangeStart;
  /** Stop once every shard has delivered what its log held when the feed started (default: follow for ever). */
  untilCaughtUp?: boolean;
  /** Changes buffered ahead of the reader, across shards. */
  bufferMax?: number;
}

const tokenPrefix = "v1.";
const Token = z.object({ c: z.string(), s: z.array(z.tuple([z.number().int().min(0), z.number().int().min(0), z.number().int().min(0)])) });

interface ShardPosition {
  /** The entry to read from… */
  seq: number;
  /** …and how many of the changes read from there were delivered already. */
  index: number;
}

/** One shard's reading: the sequencer's state, where it last had nothing open, and what was delivered since. */
interface ShardReading {
  txns: TxnSequencer;
  base: number;
  delivered: number;
  /** Changes to pass over after a resume: delivered before it. */
  skip: number;
}

export function encodePosition(uid: string, positions: ReadonlyMap<number, ShardPosition>): string {
  const s = [...positions].sort(([a], [b]) => a - b).map(([shard, p]) => [shard, p.seq, p.index]);
  return tokenPrefix + Buffer.from(JSON.stringify({ c: uid, s })).toString("base64url");
}

/** The per-shard positions of a token, checked against the collection it is used with. */
export function decodePosition(token: string, config: Pick<CollectionConfig, "name" | "uid" | "shards">): Map<number, ShardPosition> {
  const bad = (why: string) => new JadeError(ErrorCode.InvalidArgument, `change position: ${why}`);
  if (!token.startsWith(tokenPrefix)) throw bad("not a position token (they start with v1.)");
  let parsed: z.infer<typeof Token>;
  try {
    parsed = Token.parse(JSON.parse(Buffer.from(token.slice(tokenPrefix.length), "base64url").toString("utf8")));
  } catch {
    throw bad("not a position token");
  }
  if (parsed.c !== config.uid) throw bad(`it belongs to another incarnation of ${config.name} (dropped and re-created since)`);
  const positions = new Map(parsed.s.map(([shard, seq, index]) => [shard, { seq, index }]));
  if (positions.size !== config.shards || [...positions.keys()].some((shard) => shard >= config.shards)) throw bad(`it does not hold one position per shard of ${config.name}`);
  return positions;
}

/** A running feed: iterate it for changes; `position` is where it stands; `stop()` ends it. */
export class ChangeFeed implements AsyncIterable<Change> {
  readonly #config: CollectionConfig;
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #options: Required<Omit<ChangesOptions, "from">>;
  /** Where each shard's reading stands: past every change queued (handed out or buffered). */
  readonly #positions = new Map<number, ShardPosition>();
  readonly #readings = new Map<number, ShardReading>();
  /** The position after the last change handed to the reader (a change's token covers exactly what was queued before it). */
  #handedOut = "";
  readonly #queue: Change[] = [];
  #wakeReader: (() => void) | undefined;
  #wakePumps: (() => void)[] = [];
  #error: unknown;
  #running = 0;
  readonly #stops: (() => void)[] = [];
  #stopped = false;

  private constructor(config: CollectionConfig, js: JetStreamClient, jsm: JetStreamManager, options: ChangesOptions) {
    this.#config = config;
    this.#js = js;
    this.#jsm = jsm;
    this.#options = { untilCaughtUp: options.untilCaughtUp ?? false, bufferMax: options.bufferMax ?? 10_000 };
  }

  static async open(nc: NatsConnection, config: CollectionConfig, options: ChangesOptions = {}): Promise<ChangeFeed> {
    const feed = new ChangeFeed(config, jetstream(nc), await jetstreamManager(nc), options);
    await feed.#start(options.from ?? "now");
    return feed;
  }

  /** The position after the last change handed out (or where the feed started): buffered changes are not past it. */
  get position(): string {
    return this.#handedOut;
  }

  stop(): void {
    this.#stopped = true;
    for (const stop of this.#stops) stop();
    this.#wake();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Change> {
    try {
      for (;;) {
        const change = this.#queue.shift();
        if (change) {
          const wake = this.#wakePumps;
          this.#wakePumps = [];
          for (const w of wake) w();
          this.#handedOut = change.position;
          yield change;
          continue;
        }
        if (this.#error !== undefined) throw this.#error;
        if (this.#stopped || this.#running === 0) return;
        await new Promise<void>((resolve) => (this.#wakeReader = resolve));
      }
    } finally {
      this.stop();
    }
  }

  async #start(from: ChangeStart): Promise<void> {
    const { shards } = this.#config;
    const given = typeof from === "string" && from !== "start" && from !== "now" ? decodePosition(from, this.#config) : undefined;
    const pumps: { shard: number; stream: string; fromSeq: number; caughtUpAt: number }[] = [];
    for (let shard = 0; shard < shards; shard++) {
      const stream = names.logStream(this.#config.name, shard);
      const { state } = await this.#jsm.streams.info(stream).catch((err: unknown) => {
        // Dropped between reading its config and opening its logs.
        if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) throw new JadeError(ErrorCode.NotFound, `collection ${this.#config.name} was dropped`);
        throw err;
      });
      const caughtUpAt = state.last_seq;
      let start: ShardPosition;
      if (from === "start") start = { seq: Math.max(1, state.first_seq), index: 0 };
      else if (from === "now") start = { seq: state.last_seq + 1, index: 0 };
      else if (from instanceof Date) start = { seq: await firstSeqAtOrAfter(this.#jsm, stream, state, from.getTime()), index: 0 };
      else start = given!.get(shard)!;
      if (logPurgedPast(state, start.seq)) throw purged(this.#config.name, shard, start.seq, state.first_seq);
      this.#positions.set(shard, start);
      this.#readings.set(shard, { txns: new TxnSequencer(), base: start.seq, delivered: 0, skip: start.index });
      if (!this.#options.untilCaughtUp || start.seq <= caughtUpAt) pumps.push({ shard, stream, fromSeq: start.seq, caughtUpAt });
    }
    // Every shard's start is fixed before any pump moves one: the feed's first position.
    this.#handedOut = encodePosition(this.#config.uid, this.#positions);
    this.#running = pumps.length;
    for (const p of pumps) void this.#pump(p.shard, p.stream, p.fromSeq, p.caughtUpAt).catch((err: unknown) => this.#fail(err));
  }

  async #pump(shard: number, stream: string, fromSeq: number, caughtUpAt: number): Promise<void> {
    const consumer = await this.#js.consumers.get(stream, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: fromSeq });
    const messages = await consumer.consume({ max_messages: 64 });
    this.#stops.push(() => void messages.stop());
    if (this.#stopped) await messages.stop();
    try {
      let expected = fromSeq;
      for await (const m of messages) {
        // Sequences are contiguous: a jump means entries were purged under this reader.
        if (m.seq > expected) throw purged(this.#config.name, shard, expected, m.seq);
        expected = m.seq + 1;
        await this.#deliver(shard, m);
        if (this.#stopped) break;
        if (this.#options.untilCaughtUp && m.seq >= caughtUpAt) break;
      }
    } finally {
      await messages.stop();
      this.#running--;
      this.#wake();
    }
  }

  async #deliver(shard: number, m: JsMsg): Promise<void> {
    const reading = this.#readings.get(shard)!;
    if (reading.txns.idle) {
      reading.base = m.seq;
      reading.delivered = 0;
    }
    const time = new Date(Number(m.info.timestampNanos) / 1e6).toISOString();
    const changes = changesOf(effectsOf(reading.txns, decodeEntryOrSkip(m.data), m.seq, m.data), shard, time);
    // Nothing open after this entry: the next reading starts after it, as without transactions.
    const closed = reading.txns.idle;
    for (let i = 0; i < changes.length; i++) {
      reading.delivered++;
      if (reading.skip > 0) {
        reading.skip--; // delivered before the resume
        continue;
      }
      while (this.#queue.length >= this.#options.bufferMax && !this.#stopped) await new Promise<void>((resolve) => this.#wakePumps.push(resolve));
      if (this.#stopped) return;
      this.#positions.set(shard, closed && i === changes.length - 1 ? { seq: m.seq + 1, index: 0 } : { seq: reading.base, index: reading.delivered });
      this.#queue.push({ ...changes[i]!, position: encodePosition(this.#config.uid, this.#positions) });
      this.#wake();
    }
    this.#positions.set(shard, closed ? { seq: m.seq + 1, index: 0 } : { seq: reading.base, index: reading.delivered });
  }

  #fail(err: unknown): void {
    this.#error ??= err;
    this.stop();
  }

  #wake(): void {
    const wake = this.#wakeReader;
    this.#wakeReader = undefined;
    wake?.();
  }
}

function purged(collection: string, shard: number, seq: number, firstSeq: number): JadeError {
  return new JadeError(
    ErrorCode.OutOfRange,
    `shard ${shard} of ${collection}: the changes from sequence ${seq} were purged (its log starts at ${firstSeq}); start from a newer position or "start"`,
    { details: { shard, seq, firstSeq } },
  );
}

/** A stray message no writer made (replicas skip it too) holds no change. */
function decodeEntryOrSkip(data: Uint8Array): LogEntry | undefined {
  try {
    return decodeEntry(data);
  } catch {
    return undefined;
  }
}

/** What reading one entry makes take effect on its shard (nothing for an entry no writer made). The feed holds no points: no versions. */
export function effectsOf(txns: TxnSequencer, entry: LogEntry | undefined, seq: number, data: Uint8Array): Effect[] {
  return entry === undefined ? [] : txns.read(seq, entry, data, undefined);
}

/** The changes of some effects, in order (without `position`). */
export function changesOf(effects: readonly Effect[], shard: number, time: string): Omit<Change, "position">[] {
  return effects.flatMap((effect): Omit<Change, "position">[] => {
    const { seq } = effect;
    if (effect.kind === EntryKind.Delete) return effect.entry.ids.map((id, i) => ({ op: "delete", id, shard, seq, index: effect.indexBase + i, time }));
    const { dimension, vectors, payloads, ids } = effect.entry;
    return ids.map((id, index) => ({
      op: "upsert",
      id,
      vector: Array.from(vectors.subarray(index * dimension, (index + 1) * dimension)),
      payload: payloads?.[index] ?? null,
      shard,
      seq,
      index,
      time,
    }));
  });
}
