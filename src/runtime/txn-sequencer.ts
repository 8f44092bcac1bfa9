/**
 * What one shard does with its log, transactions included (decision 013): the order in which
 * entries take effect, and each transaction's vote. Pure and deterministic: every replica of a
 * shard, a backup's replay and the change feed run the same entries through it and get the
 * same effects in the same order, so they agree without talking.
 *
 * - A plain upsert or delete takes effect at once, unless it touches an id a staged
 *   transaction will write, or one an earlier held entry touches: then it is **held**, and
 *   takes effect right after the transaction's marker, in log order. A plain write never
 *   interleaves with a transaction, and needs no lock check on its way in.
 * - A `txn.prepare` is never held: its vote is computed where it stands. It is **refused**
 *   (votes no, stages nothing) when an id it writes or reads is staged by another transaction
 *   or touched by a held entry (its value is not decided yet): reordering it before the held
 *   entries it shares no id with changes nothing. Otherwise it is staged, and votes no if a
 *   condition fails. Whether it is staged depends on the log's structure alone, never on the
 *   points' versions, so a reader that holds no points (the change feed) stages exactly what the
 *   replicas stage and orders every change as they do; a staged transaction that voted no holds
 *   its ids until its abort marker, which follows at once.
 * - `txn.commit` applies the staged ops (their versions from the prepare's sequence), then
 *   releases what was held behind them; `txn.abort` drops them and releases the same. A marker
 *   for a transaction not staged here (a no vote, a repeated marker) changes nothing, except an
 *   abort of one never seen: its prepare, should it come after, is then ignored.
 */
import { limits } from "./limits.ts";
import { decodeEntry, EntryKind, touchedIds, type DeleteEntry, type LogEntry, type PlainEntry, type TxnPrepareEntry, type UpsertEntry } from "./log-entry.ts";

/**
 * A change to the shard's points, in the order to make it. `seq` is the entry that holds it (a
 * transaction's prepare for its ops), the version base of an upsert's points; `bytes` the size
 * of that entry (the index's memory estimate); `indexBase` the place of a delete's first id in
 * that entry (after a prepare's upserted ids).
 */
export type Effect =
  | { kind: typeof EntryKind.Upsert; seq: number; entry: UpsertEntry; bytes: number }
  | { kind: typeof EntryKind.Delete; seq: number; entry: DeleteEntry; indexBase: number };

export interface TxnVote {
  yes: boolean;
  reason?: string;
}

/** What became of a transaction on this shard. */
export type TxnOutcome = "staged" | "committed" | "aborted" | "refused";

/** A commit as its marker told it: the record's commit time, and the transaction's shards when the marker names them. */
export interface CommitInfo {
  atMs: number;
  shards?: number[];
}

interface Remembered {
  outcome: TxnOutcome;
  vote: TxnVote;
  seq: number;
  commit?: CommitInfo;
}

/** The sequencer's state, for a snapshot: entries as the log's own bytes, so a restore decodes them as a replay would. */
export interface SequencerState {
  staged: { seq: number; data: Uint8Array }[];
  held: { seq: number; data: Uint8Array }[];
  outcomes: [txn: string, outcome: TxnOutcome, vote: TxnVote, seq: number, commit?: CommitInfo][];
}

/** Outcomes remembered after a transaction is decided, for late vote requests and readers: the newest this many. */
export const txnOutcomesKept = 1_024;

interface Staged {
  seq: number;
  entry: TxnPrepareEntry;
  data: Uint8Array;
}
interface Held {
  seq: number;
  entry: PlainEntry;
  data: Uint8Array;
}

/** The current versions of the shard's points (undefined: no such point), after every effect returned so far. */
export type VersionLookup = (id: string) => number | undefined;

export class TxnSequencer {
  readonly #staged = new Map<string, Staged>();
  /** id → the staged transaction that writes it. */
  readonly #owner = new Map<string, string>();
  #held: Held[] = [];
  /** id → how many held entries touch it. */
  #heldIds = new Map<string, number>();
  /** txn → its outcome here, its vote and the sequence of the entry that decided it; oldest first. */
  readonly #outcomes = new Map<string, Remembered>();
  /**
   * The last commits read, oldest first, at most as many as a read reply names: what reads ask
   * for on every call, kept apart so they do not walk (or copy) the outcomes.
   */
  #commits: { txn: string; atMs: number; shards?: number[] }[] = [];

  /** Nothing to save: no transaction staged or remembered, no entry waiting. */
  get empty(): boolean {
    return this.idle && this.#outcomes.size === 0;
  }

  /** No entry waits and no transaction is staged. */
  get idle(): boolean {
    return this.#staged.size === 0 && this.#held.length === 0;
  }

  get stagedCount(): number {
    return this.#staged.size;
  }

  /** The sequence below which every entry has taken effect: what reads and write acknowledgements may count on. */
  visibleSeq(consumedSeq: number): number {
    return this.#held.length > 0 ? this.#held[0]!.seq - 1 : consumedSeq;
  }

  /** The vote and outcome of a transaction seen here, or undefined (not seen, or forgotten). */
  outcome(txn: string): { outcome: TxnOutcome; vote: TxnVote; seq: number } | undefined {
    return this.#outcomes.get(txn);
  }

  /** Of the last commits read, those whose commit time is at or after `sinceMs`, newest first, at most `max` (up to limits.txnReadReportMax). */
  recentCommits(sinceMs: number, max: number): { txn: string; shards?: number[] }[] {
    const out: { txn: string; shards?: number[] }[] = [];
    for (let i = this.#commits.length - 1; i >= 0 && out.length < max; i--) {
      const { txn, atMs, shards } = this.#commits[i]!;
      if (atMs >= sinceMs) out.push(shards ? { txn, shards } : { txn });
    }
    return out;
  }

  /** Staged transactions: their ids and prepares, for readers that must see all of a transaction or none. */
  staged(): { txn: string; prepareSeq: number; entry: TxnPrepareEntry }[] {
    return [...this.#staged].map(([txn, s]) => ({ txn, prepareSeq: s.seq, entry: s.entry }));
  }

  /** Any entry, in log order: what takes effect now (see `plain`, `prepare`, `marker`). */
  read(seq: number, entry: LogEntry, data: Uint8Array, versions: VersionLookup | undefined): Effect[] {
    switch (entry.kind) {
      case EntryKind.Upsert:
      case EntryKind.Delete:
        return this.plain(seq, entry, data);
      case EntryKind.TxnPrepare:
        this.prepare(seq, entry, data, versions);
        return [];
      case EntryKind.TxnCommit:
        return this.marker(seq, entry.txn, { atMs: entry.committedAtMs, ...(entry.shards ? { shards: entry.shards } : {}) });
      case EntryKind.TxnAbort:
        return this.marker(seq, entry.txn, undefined);
    }
  }

  /** A plain entry: its effects now, or none while it is held. */
  plain(seq: number, entry: PlainEntry, data: Uint8Array): Effect[] {
    // The ingest path's case: no transaction anywhere near, nothing to look up.
    if (this.#owner.size === 0 && this.#heldIds.size === 0) return [effectOf(seq, entry, data)];
    if (touchedIds(entry).some((id) => this.#owner.has(id) || this.#heldIds.has(id))) {
      this.#hold({ seq, entry, data });
      return [];
    }
    return [effectOf(seq, entry, data)];
  }

  /**
   * A prepare: stages it unless it is refused (see the header), and votes. `versions` must
   * reflect every effect returned before; a reader that holds no points (the change feed) passes
   * undefined: the conditions only decide the vote, which such a reader does not need.
   */
  prepare(seq: number, entry: TxnPrepareEntry, data: Uint8Array, versions: VersionLookup | undefined): TxnVote {
    const known = this.#outcomes.get(entry.txn);
    if (known) return known.vote;
    const conflict = this.#conflict(entry);
    if (conflict) {
      this.#remember(entry.txn, "refused", conflict, seq);
      return conflict;
    }
    this.#staged.set(entry.txn, { seq, entry, data });
    for (const id of touchedIds(entry)) this.#owner.set(id, entry.txn);
    const vote = versions ? conditionsVote(entry, versions) : { yes: true };
    this.#remember(entry.txn, "staged", vote, seq);
    return vote;
  }

  /** A commit marker (`commit` set) or an abort marker: the staged ops (on commit), then every held entry it frees, in log order. */
  marker(seq: number, txn: string, commit: CommitInfo | undefined): Effect[] {
    const staged = this.#staged.get(txn);
    if (!staged) {
      // An abort ahead of the prepare (recovery ends a transaction whose gateway died while the
      // prepare was on its way): remembered, so the prepare, should it come, stages nothing.
      if (!commit && !this.#outcomes.has(txn)) this.#remember(txn, "aborted", { yes: false, reason: "aborted before its prepare was read" }, seq);
      return [];
    }
    this.#staged.delete(txn);
    for (const id of touchedIds(staged.entry)) this.#owner.delete(id);
    this.#remember(txn, commit ? "committed" : "aborted", this.#outcomes.get(txn)?.vote ?? { yes: true }, seq, commit);
    const effects: Effect[] = [];
    if (commit) {
      const { upsert, deleteIds } = staged.entry;
      if (upsert) effects.push({ kind: EntryKind.Upsert, seq: staged.seq, entry: { kind: EntryKind.Upsert, ...upsert }, bytes: staged.data.byteLength });
      if (deleteIds.length > 0) effects.push({ kind: EntryKind.Delete, seq: staged.seq, entry: { kind: EntryKind.Delete, ids: deleteIds }, indexBase: upsert?.ids.length ?? 0 });
    }
    return [...effects, ...this.#release()];
  }

  /** The state to save with a snapshot. */
  state(): SequencerState {
    return {
      staged: [...this.#staged.values()].map(({ seq, data }) => ({ seq, data })),
      held: this.#held.map(({ seq, data }) => ({ seq, data })),
      outcomes: [...this.#outcomes].map(([txn, o]) => (o.commit ? [txn, o.outcome, o.vote, o.seq, o.commit] : [txn, o.outcome, o.vote, o.seq])),
    };
  }

  /** Back to a saved state; `decode` turns the saved bytes into entries as the log's reader does. */
  restore(state: SequencerState, decode: (data: Uint8Array) => PlainEntry | TxnPrepareEntry): void {
    this.#staged.clear();
    this.#owner.clear();
    this.#outcomes.clear();
    this.#held = [];
    this.#heldIds = new Map();
    for (const { seq, data } of state.staged) {
      const entry = decode(data);
      if (entry.kind !== EntryKind.TxnPrepare) throw new Error(`a staged entry at ${seq} is not a prepare`);
      this.#staged.set(entry.txn, { seq, entry, data });
      for (const id of touchedIds(entry)) this.#owner.set(id, entry.txn);
    }
    for (const { seq, data } of state.held) {
      const entry = decode(data);
      if (entry.kind === EntryKind.TxnPrepare) throw new Error(`a held entry at ${seq} is a prepare`);
      this.#hold({ seq, entry, data });
    }
    this.#commits = [];
    for (const [txn, outcome, vote, seq, commit] of state.outcomes) this.#remember(txn, outcome, vote, seq, commit);
  }

  /** Why the prepare cannot be staged here: an id it writes or reads is another's, or waits; or too many are staged. */
  #conflict(entry: TxnPrepareEntry): TxnVote | undefined {
    if (this.#staged.size >= limits.txnsStagedMax) return { yes: false, reason: `${limits.txnsStagedMax} transactions are staged on this shard already` };
    for (const id of [...touchedIds(entry), ...entry.conditions.map((c) => c.id)]) {
      const owner = this.#owner.get(id);
      if (owner !== undefined) return { yes: false, reason: `point ${JSON.stringify(id)} is held by transaction ${owner}` };
      if (this.#heldIds.has(id)) return { yes: false, reason: `point ${JSON.stringify(id)} has a write waiting for another transaction` };
    }
    return undefined;
  }

  #hold(held: Held): void {
    this.#held.push(held);
    for (const id of touchedIds(held.entry)) this.#heldIds.set(id, (this.#heldIds.get(id) ?? 0) + 1);
  }

  /** Held entries that no longer wait, in log order; the rest stay held (behind a staged id, or an earlier held entry on one of theirs). */
  #release(): Effect[] {
    const waiting = this.#held;
    this.#held = [];
    this.#heldIds = new Map();
    const effects: Effect[] = [];
    for (const held of waiting) {
      if (touchedIds(held.entry).some((id) => this.#owner.has(id) || this.#heldIds.has(id))) this.#hold(held);
      else effects.push(effectOf(held.seq, held.entry, held.data));
    }
    return effects;
  }

  #remember(txn: string, outcome: TxnOutcome, vote: TxnVote, seq: number, commit?: CommitInfo): void {
    this.#outcomes.delete(txn);
    this.#outcomes.set(txn, commit ? { outcome, vote, seq, commit } : { outcome, vote, seq });
    if (commit) {
      this.#commits.push({ txn, atMs: commit.atMs, ...(commit.shards ? { shards: commit.shards } : {}) });
      if (this.#commits.length > limits.txnReadReportMax) this.#commits.shift();
    }
    if (this.#outcomes.size > txnOutcomesKept) {
      // The oldest decided one goes; a staged transaction is never forgotten.
      for (const [old, o] of this.#outcomes) {
        if (o.outcome !== "staged") {
          this.#outcomes.delete(old);
          break;
        }
      }
    }
  }
}

function effectOf(seq: number, entry: PlainEntry, data: Uint8Array): Effect {
  return entry.kind === EntryKind.Upsert ? { kind: EntryKind.Upsert, seq, entry, bytes: data.byteLength } : { kind: EntryKind.Delete, seq, entry, indexBase: 0 };
}

/** Decodes a saved staged or held entry (`restore`'s decoder for the log's own bytes). */
export function decodeStaged(data: Uint8Array): PlainEntry | TxnPrepareEntry {
  const entry = decodeEntry(data);
  if (entry.kind === EntryKind.TxnCommit || entry.kind === EntryKind.TxnAbort) throw new Error("a saved transaction state holds a marker");
  return entry;
}

/** A staged prepare's vote: every condition against the versions the shard holds. */
function conditionsVote(entry: TxnPrepareEntry, versions: VersionLookup): TxnVote {
  for (const condition of entry.conditions) {
    const version = versions(condition.id);
    if (condition.exists !== undefined && (version !== undefined) !== condition.exists) {
      return { yes: false, reason: `point ${JSON.stringify(condition.id)} ${condition.exists ? "does not exist" : "exists"}` };
    }
    if (condition.version !== undefined && version !== condition.version) {
      return { yes: false, reason: `point ${JSON.stringify(condition.id)} ${version === undefined ? "does not exist" : `has version ${version}`}, not ${condition.version}` };
    }
  }
  return { yes: true };
}
