/**
 * A read sees all of a transaction or none of it (decision 013, "Reads"). Commit markers
 * reach a transaction's shards at slightly different times, so the shards' answers to one
 * read may disagree: one applied it, another still holds it staged or has not read its
 * prepare yet. Each shard's answer names the transactions it holds staged and those it
 * committed lately (vector-index/shard-index.ts `txnView`); from those, and the records of
 * the few that need one, `plan` says which shards to ask again and how, until every touched
 * shard of the read reflects each committed transaction. A transaction whose record is not
 * committed was applied nowhere (commit markers follow the record), so it is left out.
 *
 * Pure: the router (router.ts) fetches the records `recordsNeeded` names and asks again.
 */
import type { TxnRecord } from "../../runtime/txn-schemas.ts";
import { TxnState } from "../../runtime/txn-schemas.ts";
import type { TxnReadView } from "../vector-index/api.ts";

/** One shard's latest answer to the read: what it saw, and how it was asked. */
export interface ShardAnswer {
  shard: number;
  txns?: TxnReadView;
  minSeq: number;
  assumed: readonly string[];
}

/** Asking a shard again: at least this sequence, with these transactions read as committed. */
export interface Reask {
  minSeq: number;
  assume: string[];
}

/** The records known so far (undefined: looked up, none: a record never comes back once gone, nor appears after its prepares). */
export type KnownRecords = ReadonlyMap<string, TxnRecord | undefined>;

/** Where each transaction stands in the answers: who applied it (with the shards its marker named), who holds it staged. */
interface Sightings {
  committedBy: Map<string, { shards?: number[] }>;
  stagedOn: Map<string, Set<number>>;
  staleOn: Set<string>;
}

function sightings(answers: readonly ShardAnswer[]): Sightings {
  const seen: Sightings = { committedBy: new Map(), stagedOn: new Map(), staleOn: new Set() };
  for (const answer of answers) {
    for (const c of answer.txns?.committed ?? []) {
      const known = seen.committedBy.get(c.txn);
      if (!known?.shards) seen.committedBy.set(c.txn, c.shards ? { shards: c.shards } : {});
    }
    for (const s of answer.txns?.staged ?? []) {
      let on = seen.stagedOn.get(s.txn);
      if (!on) seen.stagedOn.set(s.txn, (on = new Set()));
      on.add(answer.shard);
      if (s.stale) seen.staleOn.add(s.txn);
    }
  }
  return seen;
}

const reported = (answer: ShardAnswer, txn: string) => answer.assumed.includes(txn) || (answer.txns?.committed.some((c) => c.txn === txn) ?? false);
const stagedIn = (answer: ShardAnswer, txn: string) => answer.txns?.staged.some((s) => s.txn === txn) ?? false;

/**
 * The transactions whose records the plan needs and `known` lacks: one applied somewhere whose
 * marker did not name its shards, or that a shard of the read neither reports nor holds
 * staged (its prepare's sequence there says how far to wait); one staged long enough that its
 * commit may be out of the other shards' read window. None in the common case: every touched
 * shard reports the commit.
 */
export function recordsNeeded(answers: readonly ShardAnswer[], known: KnownRecords): string[] {
  const seen = sightings(answers);
  const needed = new Set<string>();
  for (const [txn, { shards }] of seen.committedBy) {
    if (!shards) needed.add(txn);
    else if (answers.some((a) => shards.includes(a.shard) && !reported(a, txn) && !stagedIn(a, txn))) needed.add(txn);
  }
  for (const txn of seen.staleOn) if (!seen.committedBy.has(txn)) needed.add(txn);
  return [...needed].filter((txn) => !known.has(txn));
}

/**
 * The shards to ask again, each with the transactions to read as committed and the sequence
 * to wait for (its prepare's, where the shard had not read it). Empty when the answers agree.
 * A transaction applied somewhere whose record is gone (expired after a day, or a restored
 * collection's, whose records stayed with the source) and whose marker does not name its
 * shards is made whole only where a shard holds it staged: nothing says where else it is.
 */
export function plan(answers: readonly ShardAnswer[], known: KnownRecords): Map<number, Reask> {
  const seen = sightings(answers);
  const committed = new Map<string, number[]>();
  const everyShard = answers.map((a) => a.shard);
  for (const [txn, { shards }] of seen.committedBy) committed.set(txn, known.get(txn)?.shards ?? shards ?? everyShard);
  for (const [txn, record] of known) if (record?.state === TxnState.Committed) committed.set(txn, record.shards);
  const reasks = new Map<number, Reask>();
  for (const [txn, shards] of committed) {
    const record = known.get(txn);
    for (const answer of answers) {
      if (!shards.includes(answer.shard) || reported(answer, txn)) continue;
      const staged = stagedIn(answer, txn);
      const prepareSeq = record?.prepareSeqs[String(answer.shard)];
      // Past its prepare and not holding it: applied here. No prepare known: nothing to wait for.
      if (!staged && (prepareSeq === undefined || answer.minSeq >= prepareSeq)) continue;
      const reask = reasks.get(answer.shard) ?? { minSeq: answer.minSeq, assume: [...answer.assumed] };
      if (!staged) reask.minSeq = Math.max(reask.minSeq, prepareSeq!);
      if (!reask.assume.includes(txn)) reask.assume.push(txn);
      reasks.set(answer.shard, reask);
    }
  }
  return reasks;
}

/** Every transaction the answers name. */
export function mentioned(answers: readonly ShardAnswer[]): Set<string> {
  const txns = new Set<string>();
  for (const a of answers) for (const t of [...(a.txns?.committed ?? []), ...(a.txns?.staged ?? [])]) txns.add(t.txn);
  return txns;
}

/** The shards whose answers name any of `txns`, or that a commit marker of one names: those a doubt about them touches. */
export function shardsSeeing(answers: readonly ShardAnswer[], txns: readonly string[]): number[] {
  const doubted = new Set(txns);
  const shards = new Set<number>();
  for (const a of answers) {
    for (const c of a.txns?.committed ?? []) if (doubted.has(c.txn)) [a.shard, ...(c.shards ?? answers.map((b) => b.shard))].forEach((s) => shards.add(s));
    for (const s of a.txns?.staged ?? []) if (doubted.has(s.txn)) shards.add(a.shard);
  }
  return [...shards];
}
