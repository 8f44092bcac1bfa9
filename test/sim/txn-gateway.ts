/**
 * `transactionMachine` bound to the simulated world as the gateway binds it
 * (src/actors/txn/service.ts, effect for effect): locks in `jade_locks` through the real `LockTable`, the
 * record in `jade_txns` through the real `TxnRecords` over a simulated KV, prepares and markers
 * appended to the shard logs with the real entry encoding (deduplicated by message id), each
 * shard's vote asked of a live replica in turn. The client is answered on entering `releasing`.
 *
 * Bound once per process (see machines.ts); each actor finds its transaction by its actor
 * system. A node incarnation's `TxnHost` holds what its gateway and (while it leads) its
 * recovery share: the KV clients, and the running transactions, which its crash stops wherever
 * they are (their requests already sent may still land).
 */
import { createActor, fromPromise, type Actor, type ActorSystem } from "xstate";
import type { TxnVoteReply } from "../../src/actors/replica/protocol.ts";
import { LockTable, lockKeys } from "../../src/actors/txn/locks.ts";
import { prepareEntry, type ShardPart } from "../../src/actors/txn/plan.ts";
import { TxnRecords } from "../../src/actors/txn/records.ts";
import {
  InDoubt,
  Outcome,
  transactionMachine,
  transactionOutput,
  TransactionState,
  transactionStateOf,
  type DecideInput,
  type DecideOutput,
  type LocksInput,
  type MarkersInput,
  type MarkersOutput,
  type PrepareOutput,
  type ReleaseInput,
  type StepInput,
  type VotesInput,
  type VotesOutput,
} from "../../src/machines/transaction.ts";
import { errorMessage, ErrorCode, JadeError } from "../../src/runtime/errors.ts";
import { encodeEntry, EntryKind } from "../../src/runtime/log-entry.ts";
import { TxnState } from "../../src/runtime/txn-schemas.ts";
import { COLLECTION, TXN, UID } from "./config.ts";
import { kvClient } from "./kv.ts";
import type { SimNode } from "./node.ts";
import type { SimTxns } from "./txn.ts";
import type { Endpoint } from "./world.ts";

/** A transaction as its client asked for it. */
export interface TxnRequest {
  id: string;
  /** shard → its part of the transaction */
  parts: Map<number, ShardPart>;
  lockIds: string[];
  timeoutMs: number;
}

/** One transaction on its gateway, and what its client was told. */
export interface TxnRun extends TxnRequest {
  shards: number[];
  /** the gateway's incarnation */
  gateway: string;
  createdAtMs: number;
  deadlineAtMs: number;
  /** the lock acquisition once started: the release waits for it to settle */
  acquiring: Promise<unknown> | undefined;
  /** its release went through (else every try failed, and only the locks' expiry ends them) */
  released: boolean;
  decidedAtMs: number;
  /** answered to the client (undefined: its gateway died before answering) */
  told: Outcome | typeof InDoubt | undefined;
  /** when it stopped taking locks (left `acquiringLocks`), and when its machine ended */
  lockingEndedAt: number | undefined;
  endedAt: number | undefined;
  actor: Actor<typeof simTransactionMachine>;
}

type AnyActorSystem = ActorSystem<any>; // (xstate does not export its alias)
const bindings = new WeakMap<AnyActorSystem, { host: TxnHost; run: TxnRun }>();
const bound = (system: AnyActorSystem) => {
  const b = bindings.get(system);
  if (!b) throw new Error("simulator: a transaction ran an effect before its binding was registered");
  return b;
};

export class TxnHost {
  readonly records: TxnRecords;
  readonly locks: LockTable;
  private readonly running = new Set<TxnRun["actor"]>();

  constructor(
    readonly txns: SimTxns,
    readonly node: SimNode,
    readonly ep: Endpoint,
  ) {
    const w = txns.w;
    this.records = new TxnRecords(kvClient(w, ep, w.txnRecords, txns.wrote));
    this.locks = new LockTable(kvClient(w, ep, w.locks, txns.wrote), () => w.now(), (ms) => w.sleep(ms));
  }

  /** Starts a transaction on this gateway; `onState` hears each state it enters. */
  begin(request: TxnRequest, onState: (state: TransactionState) => void): TxnRun {
    const w = this.txns.w;
    const now = w.now();
    const shards = [...request.parts.keys()].sort((a, b) => a - b);
    const actor = createActor(simTransactionMachine, { clock: w.clock, input: { txn: { id: request.id, collection: COLLECTION, uid: UID, shards }, timeoutMs: request.timeoutMs } });
    const run: TxnRun = { ...request, shards, gateway: this.ep.name, createdAtMs: now, deadlineAtMs: now + request.timeoutMs, acquiring: undefined, released: false, decidedAtMs: 0, told: undefined, lockingEndedAt: undefined, endedAt: undefined, actor };
    bindings.set(actor.system, { host: this, run });
    w.log(`txn ${run.id} on ${run.gateway}: shards ${shards.join(",")} points ${request.lockIds.join(",")} timeout ${request.timeoutMs}`);
    let last: TransactionState | undefined;
    actor.subscribe({
      next: (snap) => {
        const state = transactionStateOf(snap);
        if (state !== last) {
          if (last === TransactionState.AcquiringLocks) run.lockingEndedAt = w.now();
          onState((last = state));
        }
        if (run.told === undefined && (snap.status === "done" || snap.matches("releasing"))) {
          const out = transactionOutput(snap.context);
          run.told = out.outcome;
          w.log(`txn ${run.id} told ${out.outcome}${out.reason ? ` (${out.reason})` : ""}`);
        }
        if (snap.status === "done") {
          run.endedAt = w.now();
          this.running.delete(actor);
        }
      },
      error: (e) => w.violate("actor-error", `transaction ${run.id} crashed: ${String(e)}`),
    });
    this.running.add(actor);
    actor.start();
    return run;
  }

  crash(): void {
    for (const a of this.running) a.stop();
    this.running.clear();
  }

  /** An append of the transaction's, its message id the gateway's (recovery's is the same: they deduplicate). */
  append(run: TxnRun, shard: number, data: Uint8Array, kind: "p" | "c" | "a"): Promise<number> {
    return this.txns.publish(this.ep, shard, data, `${UID}:${run.id}:${kind}:${shard}`, Math.max(1_000, run.deadlineAtMs - this.txns.w.now()));
  }

  /** `txn.vote` asked of each live replica of the shard in this node's placement, in turn, until one answers. */
  async askReplicas(shard: number, txn: string, timeoutMs: () => number): Promise<TxnVoteReply> {
    const placed = this.node.view?.shards.find((s) => s.shard === shard)?.replicas ?? [];
    let last: unknown = new Error("no replica of the shard is live");
    for (const nodeId of placed.filter((n) => this.txns.isLive(n))) {
      try {
        return await this.txns.send(this.ep, () => this.txns.replicaVote(nodeId, shard, txn), Math.max(1, timeoutMs()), false);
      } catch (err) {
        last = err;
      }
    }
    throw last;
  }
}

/** The decision's markers as the gateway appends them: a commit on every shard it prepared, an abort on every shard. */
async function appendMarkers(host: TxnHost, run: TxnRun, outcome: Outcome): Promise<MarkersOutput> {
  const prepareSeqs = run.actor.getSnapshot().context.prepareSeqs;
  const commit = outcome === Outcome.Committed;
  const marker = (shard: number) =>
    commit
      ? encodeEntry({ kind: EntryKind.TxnCommit, txn: run.id, prepareSeq: prepareSeqs[shard]!, committedAtMs: run.decidedAtMs, shards: run.shards })
      : encodeEntry({ kind: EntryKind.TxnAbort, txn: run.id, prepareSeq: prepareSeqs[shard] ?? 1 });
  // An abort goes to every shard: a prepare whose append failed may have landed all the same, and the abort makes it void.
  const ending = commit ? run.shards.filter((s) => prepareSeqs[s] !== undefined) : run.shards;
  const seqs = await Promise.all(ending.map(async (s) => [s, await host.append(run, s, marker(s), commit ? "c" : "a")] as const));
  return { markerSeqs: Object.fromEntries(seqs) };
}

/** Shard → sequence, keyed by name as the record keeps them. */
const byName = (seqs: Record<number, number>): Record<string, number> => Object.fromEntries(Object.entries(seqs));

export const simTransactionMachine = transactionMachine.provide({
  actors: {
    acquireLocks: fromPromise<void, LocksInput>(async ({ system }) => {
      const { host, run } = bound(system);
      // Locks outlive the deadline until recovery has had its turn, and then some.
      run.acquiring = host.locks.acquire(UID, run.lockIds, run.id, run.deadlineAtMs + 2 * TXN.recoveryGraceMs, run.deadlineAtMs);
      await run.acquiring;
    }),
    writeRecord: fromPromise<void, StepInput>(({ system }) => {
      const { host, run } = bound(system);
      const { id, shards, createdAtMs, deadlineAtMs } = run;
      return host.records.create({ id, collection: COLLECTION, uid: UID, node: host.node.id, state: TxnState.Preparing, done: false, shards, prepareSeqs: {}, createdAtMs, deadlineAtMs });
    }),
    prepare: fromPromise<PrepareOutput, StepInput>(async ({ system }) => {
      const { host, run } = bound(system);
      const seqs = await Promise.all(run.shards.map(async (s) => [s, await host.append(run, s, encodeEntry(prepareEntry(run.id, run.parts.get(s)!, run.deadlineAtMs)), "p")] as const));
      return { prepareSeqs: Object.fromEntries(seqs) };
    }),
    collectVotes: fromPromise<VotesOutput, VotesInput>(async ({ input, system }) => {
      const { host, run } = bound(system);
      const w = host.txns.w;
      // Noted for recovery while the shards vote, as the gateway does.
      const noted = host.records.notePrepared(run.id, byName(input.prepareSeqs));
      const vote = async (shard: number) => {
        try {
          const reply = await host.askReplicas(shard, run.id, () => run.deadlineAtMs - w.now());
          return reply.yes ? { shard, yes: true } : { shard, yes: false, reason: reply.reason ?? "voted no" };
        } catch (err) {
          return { shard, yes: false, reason: errorMessage(err) };
        }
      };
      const [votes] = await Promise.all([Promise.all(run.shards.map(vote)), noted]);
      return { votes };
    }),
    decide: fromPromise<DecideOutput, DecideInput>(async ({ input, system }) => {
      const { host, run } = bound(system);
      if (input.outcome === Outcome.Committed && host.txns.sim.options.broken?.txnMarkersBeforeDecision) await appendMarkers(host, run, Outcome.Committed);
      run.decidedAtMs = host.txns.w.now();
      // No record: its create never landed, so nothing reached a log; aborted, as the gateway does.
      const state = await host.records.decide(run.id, input.outcome, { prepareSeqs: byName(input.prepareSeqs) }, run.decidedAtMs).catch((err: unknown) => {
        if (err instanceof JadeError && err.code === ErrorCode.NotFound) return TxnState.Aborted;
        throw err;
      });
      return { outcome: state === TxnState.Committed ? Outcome.Committed : Outcome.Aborted };
    }),
    appendMarkers: fromPromise<MarkersOutput, MarkersInput>(({ input, system }) => {
      const { host, run } = bound(system);
      return appendMarkers(host, run, input.outcome);
    }),
    release: fromPromise<void, ReleaseInput>(async ({ system }) => {
      const { host, run } = bound(system);
      await run.acquiring?.catch(() => undefined);
      await host.locks.release(lockKeys(UID, run.lockIds), run.id);
      run.released = true;
      await host.records.markDone(run.id);
    }),
  },
  actions: {
    reportError: ({ system }, p) => {
      const { host, run } = bound(system);
      host.txns.w.log(`txn ${run.id} ${p.step} try ${p.attempt}: ${p.error}`);
    },
  },
});
