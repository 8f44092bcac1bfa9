/** transactionMachine, pure: its effects stand on an in-memory world (locks, records, shard logs), time on a SimulatedClock. */
import { describe, expect, it } from "vitest";
import { createActor, fromPromise, SimulatedClock } from "xstate";
import {
  InDoubt,
  isUndecided,
  Outcome,
  transactionInputProblems,
  transactionMachine,
  transactionRetryDelay,
  TransactionState,
  transactionStateOf,
  type DecideInput,
  type MarkersInput,
  type ReportErrorParams,
  type TransactionInput,
  type TransactionStep,
  type Vote,
} from "../src/machines/transaction.ts";
import { advance as advanceClock } from "./support/clock.ts";

const STEP = 10;
const advance = (clock: SimulatedClock, ms: number) => advanceClock(clock, ms, STEP);

const INPUT: TransactionInput = {
  txn: { id: "t1", collection: "docs", uid: "u1", shards: [0, 2, 3] },
  timeoutMs: 1_000,
  attemptsMax: 3,
  retryDelayMs: 20,
  retryDelayMaxMs: 40,
};

/** How one call of an effect behaves: as it should; never answers; or rejects. */
type Plan = "ok" | "hang" | Error;

/** The shared state the effects act on: what KV and the shard logs would hold. */
class World {
  locks = new Set<string>();
  record: { state: "preparing" | Outcome; done: boolean } | undefined;
  logs = new Map<number, string[]>();
  votes = new Map<number, Vote>();
  /** Runs before each `decide` CAS: another decider's write. */
  beforeDecide = () => {};
  append(shard: number, entry: string): number {
    const log = this.logs.get(shard) ?? [];
    // Deduplicated by message id, as JetStream does: a retry appends nothing twice.
    if (!log.includes(entry)) log.push(entry);
    this.logs.set(shard, log);
    return log.indexOf(entry) + 1;
  }
  entries(): string[] {
    return [...this.logs].sort(([a], [b]) => a - b).flatMap(([shard, log]) => log.map((e) => `${shard}:${e}`));
  }
}

function harness(input: Partial<TransactionInput> = {}) {
  const clock = new SimulatedClock();
  const world = new World();
  const plans: Partial<Record<TransactionStep, Plan[]>> = {};
  const calls: Record<TransactionStep, number> = { acquireLocks: 0, writeRecord: 0, prepare: 0, collectVotes: 0, decide: 0, appendMarkers: 0, release: 0 };
  const errors: ReportErrorParams[] = [];

  function effect<I, O>(step: TransactionStep, run: (input: I) => O) {
    return fromPromise<O, I>(({ input }) => {
      calls[step]++;
      const plan = plans[step]?.shift() ?? "ok";
      if (plan instanceof Error) return Promise.reject(plan);
      if (plan === "hang") return new Promise<O>(() => {});
      try {
        return Promise.resolve(run(input));
      } catch (err) {
        return Promise.reject(err as Error);
      }
    });
  }

  const machine = transactionMachine.provide({
    actors: {
      acquireLocks: effect("acquireLocks", (): void => void world.locks.add("t1")),
      writeRecord: effect("writeRecord", (): void => void (world.record ??= { state: "preparing", done: false })),
      prepare: effect("prepare", () => ({ prepareSeqs: Object.fromEntries(INPUT.txn.shards.map((s) => [s, world.append(s, "prepare")])) })),
      collectVotes: effect("collectVotes", () => ({ votes: INPUT.txn.shards.map((shard) => world.votes.get(shard) ?? { shard, yes: true }) })),
      decide: effect("decide", ({ outcome }: DecideInput) => {
        world.beforeDecide();
        if (world.record?.state === "preparing" || world.record === undefined) world.record = { state: outcome, done: false };
        return { outcome: world.record.state as Outcome };
      }),
      appendMarkers: effect("appendMarkers", ({ outcome }: MarkersInput) => ({ markerSeqs: Object.fromEntries(INPUT.txn.shards.map((s) => [s, world.append(s, outcome)])) })),
      release: effect("release", (): void => {
        world.locks.clear();
        if (world.record) world.record.done = true;
      }),
    },
    actions: { reportError: (_, p) => void errors.push({ ...p }) },
  });
  const actor = createActor(machine, { clock, input: { ...INPUT, ...input } });
  return {
    clock,
    world,
    plans,
    calls,
    errors,
    actor,
    state: () => transactionStateOf(actor.getSnapshot()),
    output: () => actor.getSnapshot().output,
    async run(ms = 5_000) {
      actor.start();
      await advance(clock, ms);
    },
  };
}

describe("transactionMachine", () => {
  it("commits when every shard votes yes: prepares, the record, commit markers, then the locks released", async () => {
    const h = harness();
    await h.run();
    expect(h.output()).toEqual({ outcome: Outcome.Committed, reason: null, prepareSeqs: { 0: 1, 2: 1, 3: 1 }, markerSeqs: { 0: 2, 2: 2, 3: 2 }, handedOver: false });
    expect(h.world.entries()).toEqual(["0:prepare", "0:committed", "2:prepare", "2:committed", "3:prepare", "3:committed"]);
    expect(h.world.record).toEqual({ state: "committed", done: true });
    expect(h.world.locks.size).toBe(0);
    expect(h.state()).toBe(TransactionState.Done);
  });

  it("aborts on one shard's no, with its reason, and appends abort markers everywhere it prepared", async () => {
    const h = harness();
    h.world.votes.set(2, { shard: 2, yes: false, reason: "point a has version 7, not 5" });
    await h.run();
    expect(h.output()).toMatchObject({ outcome: Outcome.Aborted, reason: "shard 2: point a has version 7, not 5", handedOver: false });
    expect(h.world.entries()).toEqual(["0:prepare", "0:aborted", "2:prepare", "2:aborted", "3:prepare", "3:aborted"]);
    expect(h.world.record).toEqual({ state: "aborted", done: true });
    expect(h.world.locks.size).toBe(0);
  });

  it("a shard with no vote is a no", async () => {
    const h = harness();
    h.world.votes.set(3, { shard: 99, yes: true });
    await h.run();
    expect(h.output()).toMatchObject({ outcome: Outcome.Aborted, reason: "shard 3: no vote" });
  });

  it("locks it cannot have abort it before anything is written", async () => {
    const h = harness();
    h.plans.acquireLocks = [new Error("conflict: point a is locked by t0")];
    await h.run();
    expect(h.output()).toMatchObject({ outcome: Outcome.Aborted, reason: "conflict: point a is locked by t0" });
    expect(h.world.record).toBeUndefined();
    expect(h.world.entries()).toEqual([]);
    // Let go all the same: a lock write whose reply was lost may have taken one.
    expect(h.calls.release).toBe(1);
  });

  it("the deadline aborts a transaction waiting for its locks, and one waiting for votes (with markers, as it prepared)", async () => {
    const waiting = harness();
    waiting.plans.acquireLocks = ["hang"];
    waiting.actor.start();
    await advance(waiting.clock, 990);
    expect(isUndecided(waiting.state())).toBe(true);
    expect(waiting.state()).toBe(TransactionState.AcquiringLocks);
    await advance(waiting.clock, 100);
    expect(waiting.output()).toMatchObject({ outcome: Outcome.Aborted, reason: "timed out before the decision" });
    expect(waiting.world.entries()).toEqual([]);

    const voting = harness();
    voting.plans.collectVotes = ["hang"];
    voting.actor.start();
    await advance(voting.clock, 500);
    expect(voting.state()).toBe(TransactionState.Voting);
    await advance(voting.clock, 1_000);
    expect(voting.output()).toMatchObject({ outcome: Outcome.Aborted, reason: "timed out before the decision" });
    expect(voting.world.entries()).toEqual(["0:prepare", "0:aborted", "2:prepare", "2:aborted", "3:prepare", "3:aborted"]);
    expect(voting.world.record).toEqual({ state: "aborted", done: true });
  });

  it("no deadline after the decision: a slow commit still commits", async () => {
    const h = harness();
    h.plans.appendMarkers = [new Error("no responders"), new Error("timeout")];
    h.actor.start();
    await advance(h.clock, 5_000);
    expect(h.output()).toMatchObject({ outcome: Outcome.Committed, handedOver: false });
    expect(h.errors.map((e) => [e.step, e.attempt])).toEqual([
      ["appendMarkers", 1],
      ["appendMarkers", 2],
    ]);
  });

  it("a failed prepare or record write aborts; a record that may have landed is aborted in it", async () => {
    const prepare = harness();
    prepare.plans.prepare = [new Error("stream unavailable")];
    await prepare.run();
    expect(prepare.output()).toMatchObject({ outcome: Outcome.Aborted, reason: "preparing: stream unavailable" });
    expect(prepare.world.record).toEqual({ state: "aborted", done: true });

    const record = harness();
    record.plans.writeRecord = [new Error("timeout")];
    await record.run();
    expect(record.output()).toMatchObject({ outcome: Outcome.Aborted, reason: "writing the record: timeout" });
    expect(record.calls.decide).toBe(1);
  });

  it("recovery aborting first wins: the gateway's commit finds the record aborted, and says so", async () => {
    const h = harness();
    // Recovery aborted the record between the votes and the decision.
    h.world.beforeDecide = () => void (h.world.record = { state: Outcome.Aborted, done: false });
    await h.run();
    expect(h.output()).toMatchObject({ outcome: Outcome.Aborted, reason: "aborted by recovery before the commit" });
    expect(h.world.entries().filter((e) => e.endsWith("committed"))).toEqual([]);

    // The record is the truth the other way too: an abort that finds it committed commits.
    const obeys = harness();
    obeys.world.votes.set(0, { shard: 0, yes: false, reason: "no" });
    obeys.world.beforeDecide = () => void (obeys.world.record = { state: Outcome.Committed, done: false });
    await obeys.run();
    expect(obeys.output()).toMatchObject({ outcome: Outcome.Committed, reason: null });
    expect(obeys.world.entries().filter((e) => e.endsWith("committed"))).toHaveLength(3);
  });

  it("a decision it cannot read ends in doubt, handed over to recovery", async () => {
    const h = harness();
    h.plans.decide = [new Error("timeout"), new Error("timeout"), new Error("timeout")];
    await h.run();
    expect(h.output()).toMatchObject({ outcome: InDoubt, handedOver: true });
    expect(h.calls.decide).toBe(3);
    // Nothing after the record: recovery finds it preparing past its deadline and aborts it.
    expect(h.world.record).toEqual({ state: "preparing", done: false });
    expect(h.calls.appendMarkers).toBe(0);
  });

  it("markers that keep failing are handed over, the locks kept until recovery", async () => {
    const h = harness();
    h.plans.appendMarkers = [new Error("a"), new Error("b"), new Error("c")];
    await h.run();
    expect(h.output()).toMatchObject({ outcome: Outcome.Committed, handedOver: true });
    expect(h.calls.release).toBe(0);
    expect(h.world.locks.size).toBe(1);
  });

  it("backs off exponentially, capped", () => {
    expect([1, 2, 3, 4].map((n) => transactionRetryDelay({ retryDelayMs: 20, retryDelayMaxMs: 70 }, n))).toEqual([20, 40, 70, 70]);
  });

  it("refuses an input it cannot run", () => {
    expect(transactionInputProblems({ ...INPUT, txn: { ...INPUT.txn, shards: [2, 1] } })).toEqual(["txn.shards must be ascending shard numbers"]);
    expect(transactionInputProblems({ ...INPUT, txn: { ...INPUT.txn, id: "", shards: [] }, timeoutMs: 0 })).toHaveLength(3);
    const actor = createActor(transactionMachine, { input: { ...INPUT, timeoutMs: -1 } });
    let error: unknown;
    actor.subscribe({ error: (err) => void (error = err) });
    actor.start();
    expect(actor.getSnapshot().status).toBe("error");
    expect(String(error)).toMatch(/invalid input: timeoutMs must be a number >= 1/);
  });
});
