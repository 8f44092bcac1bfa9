/**
 * The shard logs of the seeded simulation and what reading one makes of it.
 *
 * A log holds real entries (runtime/log-entry.ts: appended as the bytes a publisher sends,
 * decoded once as a replica decodes them), and reading it runs the shard's real TxnSequencer: a
 * prepare stages or is refused, a plain write waits behind a staged transaction, a commit
 * applies its ops as one. The log reads itself as it grows, so its prefix digests are what a
 * replica must hold at each sequence and a prepare's vote is the one every replica computes.
 */
import { versionOf } from "../../src/actors/vector-index/points.ts";
import { decodeEntry, encodeEntry, EntryKind, type LogEntry as Entry } from "../../src/runtime/log-entry.ts";
import { fnv1a32 } from "../../src/runtime/random.ts";
import { decodeStaged, TxnSequencer, type Effect, type SequencerState } from "../../src/runtime/txn-sequencer.ts";

const itemHash = (id: string, version: number) => fnv1a32(`${id}\u0000${version}`);

export interface LogEntry {
  seq: number;
  entry: Entry;
  data: Uint8Array;
}

/** A ShardState saved (a replica's snapshot): its points, and the sequencer's state as the log's own bytes. */
export interface SavedShard {
  seq: number;
  points: Map<string, number>;
  digest: number;
  txns: SequencerState;
}

/**
 * What reading a log prefix makes: the points that took effect (id → version, with an
 * order-independent digest kept incrementally) and the sequencer that decides when entries take
 * effect. A replica's fake index is one; so is the log's reading of itself.
 */
export class ShardState {
  /** the last entry read (held entries count as read) */
  seq = 0;
  digest = 0;
  readonly points = new Map<string, number>();
  readonly txns = new TxnSequencer();

  /** Back to a saved state (a restore), or to the empty shard. */
  load(saved: SavedShard | undefined): void {
    this.seq = saved?.seq ?? 0;
    this.digest = saved?.digest ?? 0;
    this.points.clear();
    for (const [id, v] of saved?.points ?? []) this.points.set(id, v);
    this.txns.restore(saved?.txns ?? { staged: [], held: [], outcomes: [] }, decodeStaged);
  }

  save(): SavedShard {
    return { seq: this.seq, points: new Map(this.points), digest: this.digest, txns: this.txns.state() };
  }

  read(e: LogEntry): void {
    for (const effect of this.txns.read(e.seq, e.entry, e.data, this.versionOf)) this.apply(effect);
    this.seq = e.seq;
  }

  readonly versionOf = (id: string): number | undefined => this.points.get(id);

  private apply(effect: Effect): void {
    if (effect.kind === EntryKind.Delete) {
      for (const id of effect.entry.ids) this.set(id, undefined);
      return;
    }
    for (const id of effect.entry.deleteIds ?? []) this.set(id, undefined);
    // an id twice in one entry: its last position wins, as in the real index
    effect.entry.ids.forEach((id, p) => this.set(id, versionOf(effect.seq, p)));
  }

  private set(id: string, version: number | undefined): void {
    const old = this.points.get(id);
    if (old !== undefined) this.digest = (this.digest - itemHash(id, old)) >>> 0;
    if (version === undefined) {
      this.points.delete(id);
      return;
    }
    this.points.set(id, version);
    this.digest = (this.digest + itemHash(id, version)) >>> 0;
  }
}

/** One shard's log (JetStream stream): durable, totally ordered, deduplicated by message id; each append is an acknowledged write. */
export class ShardLog {
  readonly entries: LogEntry[] = [];
  /** prefixDigest[s] = digest of the points after reading entries 1..s */
  readonly prefixDigest: number[] = [0];
  /** the log read by itself, entry by entry as appended */
  readonly state = new ShardState();
  /** message id → the sequence it was first appended at (JetStream's duplicate window, unbounded here) */
  private readonly msgIds = new Map<string, number>();
  /** followers waiting for the next append (a push consumer) */
  private waiters: (() => void)[] = [];

  /** A plain write of one point (the workload's acknowledged writes). */
  appendPlain(op: "upsert" | "delete", id: string): LogEntry {
    const entry: Entry = op === "upsert" ? { kind: EntryKind.Upsert, ids: [id], dimension: 1, vectors: Float32Array.of(0) } : { kind: EntryKind.Delete, ids: [id] };
    return this.entries[this.append(encodeEntry(entry)).seq - 1]!;
  }

  /** Appends a message; one whose id was seen before appends nothing and answers the first one's sequence. */
  append(data: Uint8Array, msgId?: string): { seq: number; duplicate: boolean } {
    const known = msgId === undefined ? undefined : this.msgIds.get(msgId);
    if (known !== undefined) return { seq: known, duplicate: true };
    const e: LogEntry = { seq: this.entries.length + 1, entry: decodeEntry(data), data };
    this.entries.push(e);
    if (msgId !== undefined) this.msgIds.set(msgId, e.seq);
    this.state.read(e);
    this.prefixDigest.push(this.state.digest);
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
    return { seq: e.seq, duplicate: false };
  }

  waitForAppend(fn: () => void): void {
    this.waiters.push(fn);
  }
  get lastSeq(): number {
    return this.entries.length;
  }
  get digest(): number {
    return this.state.digest;
  }
}
