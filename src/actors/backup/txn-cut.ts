/**
 * Transactions at a restore's cut (decision 013). A restore replays a shard's log up to a cut;
 * a transaction prepared before it may be decided after it. Its fate in the restored collection
 * is one rule for every shard: committed exactly when its commit time (the record's, carried
 * in every commit marker, so equal on every shard whatever the servers' clocks) is at or before
 * the restore's instant. So a commit marker inside the cut but committed after the instant is
 * restored as an abort, and a transaction still staged at the cut gets the marker its fate
 * calls for, appended after the cut.
 */
import type { LogMessage } from "../../nats/log-range.ts";
import { encodeEntry, EntryKind, readMarker } from "../../runtime/log-entry.ts";

export interface StagedAtCut {
  txn: string;
  prepareSeq: number;
}

/** txn → its commit time, for those committed at or before the instant; the rest are not. */
export type CutOutcomes = Map<string, number>;

/** The entry as the restore writes it: a commit marker committed after `asOfMs` becomes an abort. */
export function asOfInstant(data: Uint8Array, asOfMs: number | undefined): Uint8Array {
  const marker = asOfMs === undefined ? undefined : readMarker(data);
  if (marker?.kind !== EntryKind.TxnCommit || marker.committedAtMs <= asOfMs!) return data;
  return encodeEntry({ kind: EntryKind.TxnAbort, txn: marker.txn, prepareSeq: marker.prepareSeq });
}

/** What entries after the cut say of the staged transactions: their commit markers at or before the instant. */
export async function outcomesAfter(entries: AsyncIterable<LogMessage>, staged: readonly StagedAtCut[], asOfMs: number): Promise<CutOutcomes> {
  const open = new Set(staged.map((s) => s.txn));
  const committed: CutOutcomes = new Map();
  if (open.size === 0) return committed;
  for await (const { data } of entries) {
    const entry = readMarker(data);
    if (!entry || !open.has(entry.txn)) continue;
    open.delete(entry.txn);
    if (entry.kind === EntryKind.TxnCommit && entry.committedAtMs <= asOfMs) committed.set(entry.txn, entry.committedAtMs);
    if (open.size === 0) break;
  }
  return committed;
}

/** The markers that close the staged transactions after the cut, oldest prepare first. */
export function closingMarkers(staged: readonly StagedAtCut[], committed: CutOutcomes): Uint8Array[] {
  return [...staged]
    .sort((a, b) => a.prepareSeq - b.prepareSeq)
    .map(({ txn, prepareSeq }) => {
      const committedAtMs = committed.get(txn);
      return encodeEntry(committedAtMs === undefined ? { kind: EntryKind.TxnAbort, txn, prepareSeq } : { kind: EntryKind.TxnCommit, txn, prepareSeq, committedAtMs });
    });
}
