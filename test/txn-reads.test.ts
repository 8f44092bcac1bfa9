/** The router's plan for making a read see all of a transaction or none (actors/read/txn-reads.ts): pure, every path. */
import { describe, expect, it } from "vitest";
import { plan, recordsNeeded, shardsSeeing, type KnownRecords, type ShardAnswer } from "../src/actors/read/txn-reads.ts";
import { TxnState, type TxnRecord } from "../src/runtime/txn-schemas.ts";

const answer = (shard: number, minSeq: number, txns?: ShardAnswer["txns"], assumed: string[] = []): ShardAnswer => ({ shard, minSeq, assumed, ...(txns ? { txns } : {}) });
const committed = (txn: string, shards?: number[]) => ({ staged: [], committed: [shards ? { txn, shards } : { txn }] });
const staged = (txn: string, stale = false) => ({ staged: [stale ? { txn, stale: true as const } : { txn }], committed: [] });
const record = (id: string, state: TxnRecord["state"], prepareSeqs: Record<string, number>, shards = Object.keys(prepareSeqs).map(Number)): TxnRecord => ({
  id,
  collection: "c",
  uid: "u",
  node: "n1",
  state,
  done: false,
  shards,
  prepareSeqs,
  createdAtMs: 0,
  deadlineAtMs: 1,
});
const none: KnownRecords = new Map();

describe("reads of transactions: the router's plan", () => {
  it("asks nothing and reads no record when no shard saw a transaction, or every touched shard applied it", () => {
    const plain = [answer(0, 0), answer(1, 0)];
    expect(recordsNeeded(plain, none)).toEqual([]);
    expect(plan(plain, none).size).toBe(0);
    const agreed = [answer(0, 0, committed("t", [0, 1])), answer(1, 0, committed("t", [0, 1])), answer(2, 0)];
    expect(recordsNeeded(agreed, none)).toEqual([]);
    expect(plan(agreed, none).size).toBe(0);
  });

  it("asks a shard that holds a transaction staged, which another applied, to read it as committed: no record needed", () => {
    const answers = [answer(0, 7, committed("t", [0, 1])), answer(1, 9, staged("t"))];
    expect(recordsNeeded(answers, none)).toEqual([]);
    expect(plan(answers, none)).toEqual(new Map([[1, { minSeq: 9, assume: ["t"] }]]));
    // Asked so, its answer reflects it.
    expect(plan([answers[0]!, answer(1, 9, staged("t"), ["t"])], none).size).toBe(0);
  });

  it("leaves out a shard the transaction does not touch", () => {
    const answers = [answer(0, 0, committed("t", [0, 2])), answer(1, 0)];
    expect(recordsNeeded(answers, none)).toEqual([]);
    expect(plan(answers, none).size).toBe(0);
  });

  it("makes a shard that has not read the prepare wait for it, from the record: only then is the record read", () => {
    const answers = [answer(0, 0, committed("t", [0, 1])), answer(1, 10)];
    expect(recordsNeeded(answers, none)).toEqual(["t"]);
    const known = new Map([["t", record("t", TxnState.Committed, { "0": 3, "1": 50 })]]);
    expect(recordsNeeded(answers, known)).toEqual([]);
    expect(plan(answers, known)).toEqual(new Map([[1, { minSeq: 50, assume: ["t"] }]]));
    // Asked at or past its prepare, and not holding it: it applied it.
    expect(plan([answers[0]!, answer(1, 60)], known).size).toBe(0);
  });

  it("reads the record of a transaction staged long enough that its commit may be out of the other shards' window", () => {
    const answers = [answer(0, 0), answer(1, 4, staged("t", true))];
    expect(recordsNeeded(answers, none)).toEqual(["t"]);
    expect(recordsNeeded([answer(0, 0), answer(1, 4, staged("t"))], none)).toEqual([]);
    const committedRecord = new Map([["t", record("t", TxnState.Committed, { "0": 2, "1": 3 })]]);
    expect(plan(answers, committedRecord)).toEqual(
      new Map([
        [0, { minSeq: 2, assume: ["t"] }],
        [1, { minSeq: 4, assume: ["t"] }],
      ]),
    );
    for (const state of [TxnState.Preparing, TxnState.Aborted]) {
      expect(plan(answers, new Map([["t", record("t", state, { "0": 2, "1": 3 })]])).size).toBe(0);
    }
  });

  it("reads the record when a marker does not name the shards; without one, makes it whole where it is staged", () => {
    const answers = [answer(0, 0, committed("t")), answer(1, 0), answer(2, 0, staged("t"))];
    expect(recordsNeeded(answers, none)).toEqual(["t"]);
    expect(shardsSeeing(answers, ["t"]).sort()).toEqual([0, 1, 2]);
    const known = new Map([["t", record("t", TxnState.Committed, { "0": 1, "1": 5 })]]);
    expect(plan(answers, known)).toEqual(new Map([[1, { minSeq: 5, assume: ["t"] }]]));
    // Gone (a restored collection's): only the shard holding it staged can be made to agree.
    expect(plan(answers, new Map([["t", undefined]]))).toEqual(new Map([[2, { minSeq: 0, assume: ["t"] }]]));
  });

  it("gathers every transaction a shard must assume into one request, keeping those assumed before", () => {
    const answers = [answer(0, 0, { staged: [], committed: [{ txn: "a", shards: [0, 1] }, { txn: "b", shards: [0, 1] }] }), answer(1, 3, { staged: [{ txn: "a" }, { txn: "b" }], committed: [] }, ["z"])];
    expect(plan(answers, none)).toEqual(new Map([[1, { minSeq: 3, assume: ["z", "a", "b"] }]]));
  });
});
