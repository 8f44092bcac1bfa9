import { describe, expect, it } from "vitest";
import { createActor, fromCallback, fromPromise, SimulatedClock } from "xstate";
import {
  coordinatorInputProblems,
  coordinatorMachine,
  CoordinatorState,
  coordinatorStateOf,
  isLeader,
  isRunning,
  LeaseError,
  leaseErrorCode,
  leaseValidityMs,
  type AcquireInput,
  type AcquireOutput,
  type CoordinatorActorRef,
  type CoordinatorInput,
  type NotifyStateParams,
  type ReconcileInput,
  type ReconcileSentEvent,
  type ReleaseInput,
  type RenewInput,
  type RenewOutput,
  type ReportErrorParams,
} from "../src/machines/coordinator.ts";
import { seededRandom } from "../src/runtime/random.ts";
import { advance as advanceClock, flush } from "./support/clock.ts";

// ───────────────────────────── harness ─────────────────────────────

/** every delay in these tests is a multiple of STEP: stepping by it fires each timer at its exact time */
const STEP = 50;
const advance = (clock: SimulatedClock, ms: number, onStep?: () => void) => advanceClock(clock, ms, STEP, onStep);

const BASE: CoordinatorInput = {
  nodeId: "n1",
  leaseTtlMs: 10_000,
  renewIntervalMs: 2_000,
  acquireIntervalMs: 1_000,
  requestTimeoutMs: 1_000,
};

type Planned<T> = T | Error | "hang";

interface ReconcileRun {
  input: ReconcileInput;
  send: (e: ReconcileSentEvent) => void;
  cleanedUp: boolean;
}

/** One machine with scripted effects: each effect call takes the next planned result, or a default. */
function harness(input: Partial<CoordinatorInput> = {}) {
  const clock = new SimulatedClock();
  const acquires: { input: AcquireInput; signal: AbortSignal }[] = [];
  const renews: { input: RenewInput; signal: AbortSignal; at: number }[] = [];
  const releases: ReleaseInput[] = [];
  const reconciles: ReconcileRun[] = [];
  const states: NotifyStateParams[] = [];
  const errors: ReportErrorParams[] = [];
  const acquirePlan: Planned<AcquireOutput>[] = [];
  const renewPlan: Planned<RenewOutput>[] = [];
  const releasePlan: Planned<void>[] = [];
  /** when the plan is empty: acquire finds the lease held by n2; renew succeeds with revision + 1 */
  let defaultAcquire: Planned<AcquireOutput> = { heldBy: "n2" };
  let reconcileThrows: Error | undefined;

  const settle = <T>(p: Planned<T> | undefined, fallback: () => Planned<T>): Promise<T> => {
    const r = p === undefined ? fallback() : p;
    if (r === "hang") return new Promise<T>(() => {});
    if (r instanceof Error) return Promise.reject(r);
    return Promise.resolve(r);
  };

  const machine = coordinatorMachine.provide({
    actors: {
      acquire: fromPromise<AcquireOutput, AcquireInput>(({ input, signal }) => {
        acquires.push({ input, signal });
        return settle(acquirePlan.shift(), () => defaultAcquire);
      }),
      renew: fromPromise<RenewOutput, RenewInput>(({ input, signal }) => {
        renews.push({ input, signal, at: clock.now() });
        return settle(renewPlan.shift(), () => ({ revision: input.revision + 1 }));
      }),
      release: fromPromise<void, ReleaseInput>(({ input }) => {
        releases.push(input);
        return settle(releasePlan.shift(), () => undefined);
      }),
      reconcile: fromCallback<{ type: string }, ReconcileInput>(({ input, sendBack }) => {
        if (reconcileThrows) throw reconcileThrows;
        const run: ReconcileRun = { input, send: (e) => sendBack(e), cleanedUp: false };
        reconciles.push(run);
        return () => {
          run.cleanedUp = true;
        };
      }),
    },
    actions: {
      notifyState: (_, p) => void states.push({ ...p }),
      reportError: (_, p) => void errors.push({ ...p }),
    },
  });
  const actor = createActor(machine, { clock, input: { ...BASE, ...input } });

  const h = {
    clock,
    actor,
    acquires,
    renews,
    releases,
    reconciles,
    states,
    errors,
    acquirePlan,
    renewPlan,
    releasePlan,
    setDefaultAcquire(p: Planned<AcquireOutput>) {
      defaultAcquire = p;
    },
    setReconcileThrows(e: Error | undefined) {
      reconcileThrows = e;
    },
    state: () => coordinatorStateOf(actor.getSnapshot()),
    ctx: () => actor.getSnapshot().context,
    reconcile(): ReconcileRun {
      const r = reconciles.at(-1);
      if (!r) throw new Error("reconcile never started");
      return r;
    },
    advance: (ms: number, onStep?: () => void) => advance(clock, ms, onStep),
    /** start and win the lease at `revision` */
    async startLeader(revision = 7) {
      acquirePlan.push({ revision });
      actor.start();
      await flush();
      expect(h.state()).toBe(CoordinatorState.Leader);
    },
  };
  return h;
}

// ───────────────────────────── tests ─────────────────────────────

describe("coordinatorMachine: election", () => {
  it("acquires a free lease → leader with epoch = revision, reconcile runs with the epoch", async () => {
    const h = harness();
    h.acquirePlan.push({ revision: 42 });
    h.actor.start();
    expect(h.acquires).toHaveLength(1);
    expect(h.acquires[0]!.input).toEqual({ nodeId: "n1" });
    await flush();
    expect(h.state()).toBe(CoordinatorState.Leader);
    expect(isLeader(h.state())).toBe(true);
    expect(h.ctx()).toMatchObject({ epoch: 42, revision: 42, leader: "n1", terms: 1, renewFailures: 0 });
    expect(h.reconciles).toHaveLength(1);
    expect(h.reconcile().input).toEqual({ nodeId: "n1", epoch: 42 });
    expect(h.states).toEqual([
      { state: CoordinatorState.Follower, epoch: null, leader: null },
      { state: CoordinatorState.Leader, epoch: 42, leader: "n1" },
    ]);
  });

  it("a follower keeps retrying acquire every acquireIntervalMs and records the holder", async () => {
    const h = harness();
    h.acquirePlan.push({ heldBy: "n2" }, new Error("no responders"), { heldBy: "n3" });
    h.actor.start();
    await flush();
    expect(h.state()).toBe(CoordinatorState.Follower);
    expect(h.ctx().leader).toBe("n2");
    await h.advance(999);
    expect(h.acquires).toHaveLength(1);
    await h.advance(1);
    expect(h.acquires).toHaveLength(2); // t=1000: fails (NATS unavailable): stays follower
    expect(h.state()).toBe(CoordinatorState.Follower);
    expect(h.ctx().leader).toBe("n2");
    expect(h.errors).toEqual([{ during: "acquire", error: "no responders" }]);
    await h.advance(1000);
    expect(h.acquires).toHaveLength(3);
    expect(h.ctx().leader).toBe("n3");
    await h.advance(10_000);
    expect(h.acquires).toHaveLength(13);
    expect(h.reconciles).toHaveLength(0);
    expect(h.state()).toBe(CoordinatorState.Follower);
    h.acquirePlan.push({ revision: 99 });
    await h.advance(1000);
    expect(h.state()).toBe(CoordinatorState.Leader);
    expect(h.ctx()).toMatchObject({ epoch: 99, leader: "n1" });
  });

  it("an acquire that does not answer is abandoned after requestTimeoutMs and retried", async () => {
    const h = harness();
    h.acquirePlan.push("hang");
    h.actor.start();
    await h.advance(1000);
    expect(h.acquires[0]!.signal.aborted).toBe(true);
    expect(h.state()).toBe(CoordinatorState.Follower);
    expect(h.errors).toEqual([{ during: "acquire", error: "timed out" }]);
    h.acquirePlan.push({ revision: 3 });
    await h.advance(1000);
    expect(h.acquires).toHaveLength(2);
    expect(h.state()).toBe(CoordinatorState.Leader);
  });

  it("LEASE_OBSERVED tells a follower who leads; a vacated lease is tried at once", async () => {
    const h = harness();
    h.actor.start();
    await flush();
    h.actor.send({ type: "LEASE_OBSERVED", holder: "n5", revision: 10 });
    expect(h.ctx()).toMatchObject({ leader: "n5", observedRevision: 10 });
    h.actor.send({ type: "LEASE_OBSERVED", holder: "n4", revision: 9 }); // stale
    expect(h.ctx().leader).toBe("n5");
    expect(h.acquires).toHaveLength(1);
    h.acquirePlan.push({ revision: 12 });
    h.actor.send({ type: "LEASE_OBSERVED", holder: null, revision: 11 }); // n5 released it
    expect(h.acquires).toHaveLength(2); // no wait for the acquire interval
    await flush();
    expect(h.state()).toBe(CoordinatorState.Leader);
    expect(h.ctx()).toMatchObject({ epoch: 12, observedRevision: 12 });
  });
});

describe("coordinatorMachine: leadership", () => {
  it("holds while renewals succeed; each renew CASes on the latest revision; epoch fixed", async () => {
    const h = harness();
    await h.startLeader(7);
    await h.advance(1999);
    expect(h.renews).toHaveLength(0);
    await h.advance(1);
    expect(h.renews).toHaveLength(1);
    await h.advance(98_000); // t = 100 s
    expect(h.renews).toHaveLength(50);
    h.renews.forEach((r, i) => {
      expect(r.input).toEqual({ nodeId: "n1", revision: 7 + i });
      expect(r.at).toBe(2000 * (i + 1));
    });
    expect(h.state()).toBe(CoordinatorState.Leader);
    expect(h.ctx()).toMatchObject({ epoch: 7, revision: 57, renewFailures: 0 });
    expect(h.reconciles).toHaveLength(1);
    expect(h.reconcile().cleanedUp).toBe(false);
  });

  it("deposed on a CAS failure: steps down at once, reconcile cleaned up, then tries to acquire again", async () => {
    const h = harness();
    await h.startLeader(7);
    h.renewPlan.push({ revision: 8 }, new LeaseError("deposed", "wrong last sequence: 9"));
    await h.advance(2000);
    expect(h.ctx().revision).toBe(8);
    const acquiresBefore = h.acquires.length;
    await h.advance(2000);
    expect(h.renews[1]!.input.revision).toBe(8);
    expect(h.state()).toBe(CoordinatorState.Follower);
    expect(isLeader(h.state())).toBe(false);
    expect(h.reconcile().cleanedUp).toBe(true);
    expect(h.ctx()).toMatchObject({ epoch: null, revision: null });
    expect(h.ctx().lastError).toMatch(/deposed/);
    expect(h.ctx().leader).toBe("n2"); // learnt from the immediate re-acquire
    expect(h.acquires.length).toBe(acquiresBefore + 1); // follower tries again right away
    expect(h.releases).toEqual([]); // not ours any more: never released
  });

  it("tolerates transient renew failures until the TTL margin is exhausted, then steps down", async () => {
    // TTL 10 s, renew every 2 s: validity after the last success = 8 s
    const h = harness();
    await h.startLeader(7);
    expect(leaseValidityMs(h.ctx())).toBe(8000);
    h.renewPlan.push(new Error("timeout"), new Error("no responders"), new LeaseError("unavailable"));
    await h.advance(2000); // t=2000 fails
    expect(h.state()).toBe(CoordinatorState.Suspect);
    expect(isLeader(h.state())).toBe(true);
    await h.advance(2000); // t=4000 fails
    await h.advance(2000); // t=6000 fails
    expect(h.renews.map((r) => [r.at, r.input.revision])).toEqual([
      [2000, 7],
      [4000, 7],
      [6000, 7],
    ]);
    expect(h.ctx().renewFailures).toBe(3);
    expect(h.reconcile().cleanedUp).toBe(false);
    await h.advance(1950); // t=7950: still (suspect) leader
    expect(h.state()).toBe(CoordinatorState.Suspect);
    await h.advance(50); // t=8000 = last success (t=0) + TTL - renewInterval
    expect(h.state()).toBe(CoordinatorState.Follower);
    expect(h.reconcile().cleanedUp).toBe(true);
    expect(h.ctx().lastError).toMatch(/validity expired/);
    expect(h.states.map((s) => s.state)).toEqual([
      CoordinatorState.Follower,
      CoordinatorState.Leader,
      CoordinatorState.Suspect,
      CoordinatorState.Follower,
    ]);
  });

  it("a renew that succeeds after failures restores health and restarts the validity window", async () => {
    const h = harness();
    await h.startLeader(7);
    h.renewPlan.push(new Error("x"), new Error("x"), { revision: 8 }, new Error("x"), new Error("x"));
    await h.advance(6000); // fail at 2000, 4000; success at 6000
    expect(h.state()).toBe(CoordinatorState.Leader);
    expect(h.ctx()).toMatchObject({ revision: 8, renewFailures: 0 });
    await h.advance(7950); // fail at 8000, 10000; 12000 ok; t=13950
    expect(h.state()).toBe(CoordinatorState.Leader);
    expect(h.renews.map((r) => r.at)).toEqual([2000, 4000, 6000, 8000, 10000, 12000]);
    expect(h.ctx().revision).toBe(9);
    expect(h.reconciles).toHaveLength(1); // never stepped down
  });

  it("a renew that hangs is abandoned after requestTimeoutMs and counts as a failure", async () => {
    const h = harness();
    await h.startLeader(7);
    h.renewPlan.push("hang", "hang", "hang", "hang");
    await h.advance(2000);
    expect(h.state()).toBe(CoordinatorState.Leader);
    await h.advance(1000); // t=3000: timed out
    expect(h.renews[0]!.signal.aborted).toBe(true);
    expect(h.state()).toBe(CoordinatorState.Suspect);
    await h.advance(4950); // retries at 5000 (times out at 6000); t=7950
    expect(h.renews).toHaveLength(2);
    expect(isLeader(h.state())).toBe(true);
    await h.advance(50); // t=8000
    expect(h.state()).toBe(CoordinatorState.Follower);
    expect(h.reconcile().cleanedUp).toBe(true);
  });

  it("LEASE_OBSERVED: a newer lease of another node deposes at once; stale ones are ignored; our own is adopted", async () => {
    const h = harness();
    await h.startLeader(7);
    h.actor.send({ type: "LEASE_OBSERVED", holder: "n2", revision: 5 }); // older than ours
    expect(h.state()).toBe(CoordinatorState.Leader);
    h.actor.send({ type: "LEASE_OBSERVED", holder: "n1", revision: 9 }); // a renew whose reply was lost
    expect(h.ctx().revision).toBe(9);
    expect(h.ctx().epoch).toBe(7);
    await h.advance(2000);
    expect(h.renews[0]!.input.revision).toBe(9);
    h.actor.send({ type: "LEASE_OBSERVED", holder: "n2", revision: 11 });
    expect(h.state()).toBe(CoordinatorState.Follower);
    expect(h.reconcile().cleanedUp).toBe(true);
    expect(h.ctx().leader).toBe("n2");
  });

  it("a deleted lease seen while leading deposes too", async () => {
    const h = harness();
    await h.startLeader(7);
    h.setDefaultAcquire("hang");
    h.actor.send({ type: "LEASE_OBSERVED", holder: null, revision: 8 });
    expect(h.state()).toBe(CoordinatorState.Follower);
    expect(h.reconcile().cleanedUp).toBe(true);
  });

  it("FENCED → resigns: reconcile stopped, lease released (CAS on our revision), follower", async () => {
    const h = harness();
    await h.startLeader(7);
    await h.advance(2000); // revision 8
    h.releasePlan.push("hang");
    h.reconcile().send({ type: "FENCED", reason: "placement CAS failed" });
    expect(h.state()).toBe(CoordinatorState.Resigning);
    expect(isLeader(h.state())).toBe(false);
    expect(h.reconcile().cleanedUp).toBe(true);
    expect(h.releases).toEqual([{ revision: 8 }]);
    expect(h.ctx().lastError).toBe("fenced: placement CAS failed");
    await h.advance(1000); // the release never answers: give up after requestTimeoutMs
    expect(h.state()).toBe(CoordinatorState.Follower);
    expect(h.ctx()).toMatchObject({ epoch: null, revision: null });
  });

  it("FENCED with a prompt release goes straight back to follower", async () => {
    const h = harness();
    await h.startLeader(7);
    h.reconcile().send({ type: "FENCED" });
    await flush();
    expect(h.state()).toBe(CoordinatorState.Follower);
    expect(h.releases).toEqual([{ revision: 7 }]);
    expect(h.reconciles).toHaveLength(1);
  });

  it("a crashing reconcile resigns instead of leading without a control loop", async () => {
    const h = harness();
    h.setReconcileThrows(new Error("boom"));
    h.acquirePlan.push({ revision: 3 });
    h.actor.start();
    await flush();
    await flush();
    expect(h.state()).toBe(CoordinatorState.Follower);
    expect(h.releases).toEqual([{ revision: 3 }]);
    expect(h.errors).toContainEqual({ during: "reconcile", error: "boom" });
  });

  it("events sent by reconcile after step-down are dropped", async () => {
    const h = harness();
    await h.startLeader(7);
    const run = h.reconcile();
    h.renewPlan.push(new LeaseError("deposed"));
    await h.advance(2000);
    expect(h.state()).toBe(CoordinatorState.Follower);
    run.send({ type: "FENCED" });
    expect(h.state()).toBe(CoordinatorState.Follower);
    expect(h.releases).toEqual([]);
  });
});

describe("coordinatorMachine: shutdown", () => {
  it("STOP from leader: reconcile stopped, lease released with the latest revision, stopped", async () => {
    const h = harness();
    await h.startLeader(7);
    await h.advance(2000);
    h.actor.send({ type: "STOP" });
    expect(h.reconcile().cleanedUp).toBe(true);
    expect(h.state()).toBe(CoordinatorState.Stopping);
    expect(isRunning(h.state())).toBe(false);
    h.actor.send({ type: "STOP" }); // idempotent
    expect(h.releases).toEqual([{ revision: 8 }]);
    await flush();
    expect(h.state()).toBe(CoordinatorState.Stopped);
    expect(h.actor.getSnapshot().status).toBe("done");
  });

  it("STOP from follower: no release", async () => {
    const h = harness();
    h.actor.start();
    await flush();
    h.actor.send({ type: "STOP" });
    expect(h.state()).toBe(CoordinatorState.Stopped);
    expect(h.releases).toEqual([]);
    expect(h.states.at(-1)).toEqual({ state: CoordinatorState.Stopped, epoch: null, leader: null });
  });

  it("STOP while a renew is failing still releases; a failing release still stops", async () => {
    const h = harness();
    await h.startLeader(7);
    h.renewPlan.push(new Error("x"));
    h.releasePlan.push(new Error("no responders"));
    await h.advance(2000);
    expect(h.state()).toBe(CoordinatorState.Suspect);
    h.actor.send({ type: "STOP" });
    await flush();
    expect(h.releases).toEqual([{ revision: 7 }]);
    expect(h.state()).toBe(CoordinatorState.Stopped);
    expect(h.errors.at(-1)).toEqual({ during: "release", error: "no responders" });
  });
});

describe("coordinatorMachine: input and effects", () => {
  it("rejects inputs that cannot be safe", () => {
    expect(coordinatorInputProblems(BASE)).toEqual([]);
    expect(coordinatorInputProblems({ ...BASE, renewIntervalMs: 5000 })).toEqual([
      "renewIntervalMs must be < leaseTtlMs / 2",
    ]);
    expect(coordinatorInputProblems({ ...BASE, requestTimeoutMs: 2000 })).toEqual([
      "requestTimeoutMs must be < renewIntervalMs",
    ]);
    expect(coordinatorInputProblems({ ...BASE, nodeId: "", leaseTtlMs: Number.NaN })).toHaveLength(2);
    const actor = createActor(coordinatorMachine, { input: { ...BASE, renewIntervalMs: 6000 } });
    actor.subscribe({ error: () => {} });
    actor.start();
    expect(actor.getSnapshot().status).toBe("error");
    expect(coordinatorStateOf(actor.getSnapshot())).toBe(CoordinatorState.Stopped);
  });

  it("defaults requestTimeoutMs to renewIntervalMs / 2", () => {
    const actor = createActor(coordinatorMachine, { input: { ...BASE, requestTimeoutMs: undefined } });
    expect(actor.getSnapshot().context.requestTimeoutMs).toBe(1000);
  });

  it("classifies lease errors: only code 'deposed' is a deposition", () => {
    expect(leaseErrorCode(new LeaseError("deposed"))).toBe("deposed");
    expect(leaseErrorCode({ code: "deposed" })).toBe("deposed");
    expect(leaseErrorCode(new LeaseError("unavailable"))).toBe("unavailable");
    expect(leaseErrorCode(new Error("wrong last sequence"))).toBe("unavailable");
    expect(leaseErrorCode(undefined)).toBe("unavailable");
  });

  it("unbound effects fail loudly and the coordinator stays a follower", async () => {
    const clock = new SimulatedClock();
    const actor = createActor(coordinatorMachine, { clock, input: BASE });
    actor.start();
    await flush();
    expect(coordinatorStateOf(actor.getSnapshot())).toBe(CoordinatorState.Follower);
    expect(actor.getSnapshot().context.lastError).toMatch(/'acquire' was not provided/);
    actor.stop();
  });

  it("isLeader / isRunning are total over the state union", () => {
    const all = Object.values(CoordinatorState);
    expect(all.filter(isLeader)).toEqual([CoordinatorState.Leader, CoordinatorState.Suspect]);
    expect(all.filter((s) => !isRunning(s))).toEqual([CoordinatorState.Stopping, CoordinatorState.Stopped]);
    expect(() => isLeader("nope" as CoordinatorState)).toThrow(/unhandled/);
  });
});

// ───────────────────────────── shared lease store ─────────────────────────────

/**
 * In-memory model of the `coordinator` key of a KV bucket with a bucket-level TTL (max age):
 * create fails if a live entry exists, update is a CAS on the revision, delete is a CAS too;
 * an entry older than the TTL is gone. Revisions grow across all writes (stream sequence).
 */
class FakeLeaseStore {
  private entry: { holder: string; revision: number; writtenAt: number } | undefined;
  private seq = 0;
  readonly watchers: ((holder: string | null, revision: number) => void)[] = [];
  constructor(
    private readonly clock: SimulatedClock,
    readonly ttlMs: number,
  ) {}
  private live() {
    if (this.entry && this.clock.now() - this.entry.writtenAt >= this.ttlMs) this.entry = undefined; // silent, like max age
    return this.entry;
  }
  holder(): string | null {
    return this.live()?.holder ?? null;
  }
  private write(holder: string) {
    this.seq += 1;
    this.entry = { holder, revision: this.seq, writtenAt: this.clock.now() };
    this.notify(holder, this.seq);
    return this.seq;
  }
  private notify(holder: string | null, revision: number) {
    for (const w of this.watchers) queueMicrotask(() => w(holder, revision));
  }
  create(holder: string): AcquireOutput {
    const e = this.live();
    if (e) return { heldBy: e.holder };
    return { revision: this.write(holder) };
  }
  update(holder: string, revision: number): RenewOutput {
    const e = this.live();
    if (!e || e.revision !== revision) throw new LeaseError("deposed", `wrong last sequence: ${e?.revision ?? 0}`);
    return { revision: this.write(holder) };
  }
  delete(revision: number): void {
    const e = this.live();
    if (!e || e.revision !== revision) throw new LeaseError("deposed", "wrong last sequence");
    this.entry = undefined;
    this.seq += 1;
    this.notify(null, this.seq);
  }
}

interface NodeFaults {
  /** probability that a call fails before reaching the store */
  failBefore: number;
  /** probability that a call is applied but its reply is lost (rejects) */
  lostReply: number;
  /** probability that the reply arrives after the request timeout */
  slowReply: number;
  /** all effects hang (a partitioned / frozen process) */
  frozen: boolean;
}

const CLUSTER: Omit<CoordinatorInput, "nodeId"> = {
  leaseTtlMs: 3000,
  renewIntervalMs: 600,
  acquireIntervalMs: 400,
  requestTimeoutMs: 300,
};

function cluster(
  nodeIds: string[],
  opts: { seed: number; watch: boolean; faults?: Partial<NodeFaults>; latency?: boolean },
) {
  const maxLatencySteps = opts.latency === false ? 0 : 2;
  const clock = new SimulatedClock();
  const store = new FakeLeaseStore(clock, CLUSTER.leaseTtlMs);
  const rand = seededRandom(opts.seed);
  const reconciling = new Set<string>();
  const faults = new Map<string, NodeFaults>();

  /** run `op` against the store after a random latency, reply after another, with injected faults */
  function call<T>(nodeId: string, op: () => T): Promise<T> {
    const f = faults.get(nodeId)!;
    if (f.frozen) return new Promise<T>(() => {});
    const roll = rand();
    const d1 = STEP * Math.floor(rand() * (maxLatencySteps + 1)); // 0..100 ms to reach the store
    let d2 = STEP * Math.floor(rand() * (maxLatencySteps + 1)); // 0..100 ms back
    /** SimulatedClock runs even 0 ms timers only on its next tick: run those at once */
    const later = (fn: () => void, ms: number) => (ms === 0 ? fn() : void clock.setTimeout(fn, ms));
    if (roll < f.failBefore) {
      return new Promise<T>((_, reject) => later(() => reject(new Error("no responders")), d1));
    }
    const lost = roll < f.failBefore + f.lostReply;
    if (!lost && roll < f.failBefore + f.lostReply + f.slowReply) d2 += CLUSTER.requestTimeoutMs!;
    return new Promise<T>((resolve, reject) => {
      const apply = () => {
        let result: T;
        try {
          result = op();
        } catch (e) {
          later(() => reject(e), d2);
          return;
        }
        if (lost) later(() => reject(new Error("request timed out")), d2);
        else later(() => resolve(result), d2);
      };
      later(apply, d1);
    });
  }

  const actors = new Map<string, CoordinatorActorRef>();
  for (const nodeId of nodeIds) {
    faults.set(nodeId, { failBefore: 0, lostReply: 0, slowReply: 0, frozen: false, ...opts.faults });
    const machine = coordinatorMachine.provide({
      actors: {
        acquire: fromPromise<AcquireOutput, AcquireInput>(({ input }) => call(nodeId, () => store.create(input.nodeId))),
        renew: fromPromise<RenewOutput, RenewInput>(({ input }) =>
          call(nodeId, () => store.update(input.nodeId, input.revision)),
        ),
        release: fromPromise<void, ReleaseInput>(({ input }) => call(nodeId, () => store.delete(input.revision))),
        reconcile: fromCallback<{ type: string }, ReconcileInput>(({ input }) => {
          reconciling.add(input.nodeId);
          return () => void reconciling.delete(input.nodeId);
        }),
      },
    });
    const actor = createActor(machine, { clock, input: { ...CLUSTER, nodeId } });
    actors.set(nodeId, actor);
    if (opts.watch) {
      store.watchers.push((holder, revision) => {
        if (actor.getSnapshot().status === "active") actor.send({ type: "LEASE_OBSERVED", holder, revision });
      });
    }
  }

  const leaders = () =>
    [...actors].filter(([, a]) => isLeader(coordinatorStateOf(a.getSnapshot()))).map(([id]) => id);

  /** at most one leader; a leader's lease is alive and its own; only the leader reconciles */
  function checkSafety(ctx: string) {
    const ls = leaders();
    expect(ls.length, `${ctx}: leaders ${ls.join(",")}`).toBeLessThanOrEqual(1);
    expect(reconciling.size, `${ctx}: reconciling ${[...reconciling].join(",")}`).toBeLessThanOrEqual(1);
    for (const id of ls) expect(store.holder(), `${ctx}: ${id} leads without holding the lease`).toBe(id);
    for (const id of reconciling) expect(ls, `${ctx}: ${id} reconciles without leading`).toContain(id);
  }

  return {
    clock,
    store,
    actors,
    faults,
    leaders,
    checkSafety,
    start() {
      for (const a of actors.values()) a.start();
    },
    actor(id: string) {
      return actors.get(id)!;
    },
    advance: (ms: number, onStep?: () => void) => advance(clock, ms, onStep),
    /** advance until `pred` holds (checking safety after every step); returns the elapsed ms */
    async until(pred: () => boolean, maxMs: number): Promise<number> {
      let elapsed = 0;
      await flush();
      while (!pred()) {
        if (elapsed >= maxMs) throw new Error(`condition not reached within ${maxMs} ms`);
        clock.increment(STEP);
        await flush();
        elapsed += STEP;
        checkSafety(`t=${clock.now()}`);
      }
      return elapsed;
    },
  };
}

describe("coordinatorMachine: several nodes sharing one lease", () => {
  it("at every step at most one node leads, over a long run with seeded random faults", async () => {
    const runs = [
      { seed: 1, watch: true, faults: { failBefore: 0.15, lostReply: 0.05, slowReply: 0.05 } },
      { seed: 7, watch: false, faults: { failBefore: 0.15, lostReply: 0.05, slowReply: 0.05 } }, // polling only
      { seed: 2024, watch: true, faults: { failBefore: 0.35, lostReply: 0.1, slowReply: 0.1 } },
      { seed: 99, watch: false, faults: { failBefore: 0.35, lostReply: 0.1, slowReply: 0.1 } },
    ];
    for (const { seed, watch, faults } of runs) {
      const c = cluster(["n1", "n2", "n3"], { seed, watch, faults });
      c.start();
      let ledSteps = 0;
      let steps = 0;
      const leadersSeen = new Set<string>();
      await c.advance(120_000, () => {
        c.checkSafety(`seed ${seed} t=${c.clock.now()}`);
        const ls = c.leaders();
        steps += 1;
        if (ls.length > 0) ledSteps += 1;
        for (const l of ls) leadersSeen.add(l);
      });
      const terms = [...c.actors.values()].reduce((sum, a) => sum + a.getSnapshot().context.terms, 0);
      // the faults really caused failovers, and the cluster was still led much of the time (each
      // failover after a deposition waits for the old lease to expire)
      expect(terms, `seed ${seed}`).toBeGreaterThanOrEqual(3);
      expect(leadersSeen.size, `seed ${seed}`).toBeGreaterThan(1);
      expect(ledSteps / steps, `seed ${seed}`).toBeGreaterThan(0.4);
      for (const a of c.actors.values()) a.stop();
    }
  });

  it("after the leader stops (STOP → release), another node takes over (at once with the watch)", async () => {
    for (const watch of [true, false]) {
      const c = cluster(["n1", "n2"], { seed: 3, watch, latency: false });
      c.start();
      await c.until(() => c.leaders().length === 1, 1000);
      const [first] = c.leaders();
      const other = first === "n1" ? "n2" : "n1";
      await c.advance(5000, () => c.checkSafety(`t=${c.clock.now()}`));
      expect(c.leaders()).toEqual([first]);
      c.actor(first!).send({ type: "STOP" });
      const took = await c.until(() => c.leaders()[0] === other, CLUSTER.leaseTtlMs + CLUSTER.acquireIntervalMs);
      expect(c.actor(first!).getSnapshot().status).toBe("done");
      // released, so no wait for the TTL: with the watch at once, else within one acquire interval
      if (watch) expect(took).toBe(0);
      else expect(took).toBeLessThanOrEqual(CLUSTER.acquireIntervalMs);
      for (const a of c.actors.values()) a.stop();
    }
  });

  it("after the leader stops renewing (its requests hang), another takes over within leaseTtlMs + acquireIntervalMs", async () => {
    const c = cluster(["n1", "n2"], { seed: 5, watch: true });
    c.start();
    await c.until(() => c.leaders().length === 1, 1000);
    const [first] = c.leaders();
    const other = first === "n1" ? "n2" : "n1";
    await c.advance(4000, () => c.checkSafety(`t=${c.clock.now()}`));
    c.faults.get(first!)!.frozen = true;
    const frozenAt = c.clock.now();
    let steppedDownAt: number | undefined;
    let whyStepped: string | undefined;
    const took = await c.until(() => {
      const snap = c.actor(first!).getSnapshot();
      if (steppedDownAt === undefined && !isLeader(coordinatorStateOf(snap))) {
        steppedDownAt = c.clock.now();
        whyStepped = snap.context.lastError;
      }
      return c.leaders()[0] === other;
    }, CLUSTER.leaseTtlMs + CLUSTER.acquireIntervalMs);
    expect(took).toBeLessThanOrEqual(CLUSTER.leaseTtlMs + CLUSTER.acquireIntervalMs);
    // the frozen leader gave up before its lease could expire, i.e. before the other took over
    expect(steppedDownAt).toBeDefined();
    expect(steppedDownAt! - frozenAt).toBeLessThan(CLUSTER.leaseTtlMs - CLUSTER.renewIntervalMs + 1);
    expect(whyStepped).toMatch(/validity expired/);
    // thawed, it stays a follower of the new leader
    c.faults.get(first!)!.frozen = false;
    await c.advance(10_000, () => c.checkSafety(`t=${c.clock.now()}`));
    expect(c.leaders()).toEqual([other]);
    expect(c.actor(first!).getSnapshot().context.leader).toBe(other);
    for (const a of c.actors.values()) a.stop();
  });
});
