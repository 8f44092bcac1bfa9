import { describe, expect, it } from "vitest";
import { createActor, fromCallback, fromPromise, SimulatedClock, waitFor } from "xstate";
import {
  isApplying,
  isReadable,
  replicaMachine,
  ReplicaState,
  replicaStateOf,
  retryDelayFor,
  type FollowInput,
  type FollowSentEvent,
  type ReplicaInput,
  type ReplicaSnapshot,
  type RestoreInput,
  type RestoreOutput,
  type SnapshotInput,
  type SnapshotOutput,
} from "../src/machines/replica.ts";
import { deferred, type Deferred } from "../src/runtime/async.ts";

// ───────────────────────────── harness ─────────────────────────────


interface FollowRun {
  input: FollowInput;
  send: (e: FollowSentEvent) => void;
  cleanedUp: boolean;
}
interface PromiseCall<I, O> {
  input: I;
  signal: AbortSignal;
  d: Deferred<O>;
}

const BASE: ReplicaInput = {
  collection: "docs",
  shard: 3,
  lagThresholdEntries: 10,
  snapshotEveryEntries: 0,
  snapshotIntervalMs: 0,
  retryDelayMs: 100,
  retryDelayMaxMs: 350,
};

/** flush pending promise callbacks (no time passes: used only for "nothing happened" checks) */
const flush = () => new Promise<void>((r) => setImmediate(r));

function harness(input: Partial<ReplicaInput> = {}) {
  const clock = new SimulatedClock();
  const restores: PromiseCall<RestoreInput, RestoreOutput>[] = [];
  const snapshots: PromiseCall<SnapshotInput, SnapshotOutput>[] = [];
  const follows: FollowRun[] = [];
  const states: ReplicaState[] = [];
  const progress: { appliedSeq: number; lastSeq: number }[] = [];
  const failures: { error: string; retries: number }[] = [];
  const snapshotErrors: string[] = [];
  /** when set, restore resolves at once with the next queued result (Error = reject) */
  const restorePlan: (number | RestoreOutput | Error)[] = [];
  let followThrows: Error | undefined;

  const machine = replicaMachine.provide({
    actors: {
      restore: fromPromise<RestoreOutput, RestoreInput>(({ input, signal }) => {
        const d = deferred<RestoreOutput>();
        restores.push({ input, signal, d });
        const next = restorePlan.shift();
        if (next instanceof Error) d.reject(next);
        else if (typeof next === "number") d.resolve({ snapshotSeq: next });
        else if (next !== undefined) d.resolve(next);
        return d.promise;
      }),
      follow: fromCallback<{ type: string }, FollowInput>(({ input, sendBack }) => {
        if (followThrows) throw followThrows;
        const run: FollowRun = { input, send: (e) => sendBack(e), cleanedUp: false };
        follows.push(run);
        return () => {
          run.cleanedUp = true;
        };
      }),
      snapshot: fromPromise<SnapshotOutput, SnapshotInput>(({ input, signal }) => {
        const d = deferred<SnapshotOutput>();
        snapshots.push({ input, signal, d });
        return d.promise;
      }),
    },
    actions: {
      notifyState: (_, p) => void states.push(p.state),
      notifyProgress: (_, p) => void progress.push({ ...p }),
      reportFailure: (_, p) => void failures.push({ ...p }),
      reportSnapshotError: (_, p) => void snapshotErrors.push(p.error),
    },
  });
  const actor = createActor(machine, { clock, input: { ...BASE, ...input } });

  const h = {
    clock,
    actor,
    restores,
    snapshots,
    follows,
    states,
    progress,
    failures,
    snapshotErrors,
    restorePlan,
    setFollowThrows(e: Error | undefined) {
      followThrows = e;
    },
    state: () => replicaStateOf(actor.getSnapshot()),
    ctx: () => actor.getSnapshot().context,
    follow(): FollowRun {
      const f = follows.at(-1);
      if (!f) throw new Error("follow never started");
      return f;
    },
    progressTo(appliedSeq: number, lastSeq = appliedSeq) {
      h.follow().send({ type: "PROGRESS", appliedSeq, lastSeq });
    },
    until(pred: (s: ReplicaSnapshot) => boolean) {
      return waitFor(actor, pred, { timeout: 1000 });
    },
    untilState(state: ReplicaState) {
      return waitFor(actor, (s) => replicaStateOf(s) === state, { timeout: 1000 });
    },
    saving: () => actor.getSnapshot().matches({ active: { snapshots: "saving" } }),
    /** start, restore from `seq`, wait for active */
    async startAt(seq: number) {
      restorePlan.push(seq);
      actor.start();
      await h.untilState(ReplicaState.Replaying);
    },
    async startServing(seq: number) {
      await h.startAt(seq);
      h.progressTo(seq);
      expect(h.state()).toBe(ReplicaState.Serving);
    },
  };
  return h;
}

// ───────────────────────────── tests ─────────────────────────────

describe("replicaMachine: restore → active", () => {
  it("restores the newest snapshot and follows from the next sequence", async () => {
    const h = harness();
    h.restorePlan.push(42);
    h.actor.start();
    expect(h.state()).toBe(ReplicaState.Restoring);
    expect(h.restores).toHaveLength(1);
    expect(h.restores[0]!.input).toEqual({ collection: "docs", shard: 3 });
    await h.untilState(ReplicaState.Replaying);
    expect(h.ctx()).toMatchObject({ appliedSeq: 42, snapshotSeq: 42, lastSeq: 42, retries: 0 });
    expect(h.follows).toHaveLength(1);
    expect(h.follow().input).toEqual({ collection: "docs", shard: 3, fromSeq: 43 });
    expect(h.states).toEqual([ReplicaState.Restoring, ReplicaState.Replaying]);
    expect(isApplying(h.state())).toBe(true);
    expect(isReadable(h.state())).toBe(false);
  });

  it("restores an empty index (no snapshot) and follows from 1", async () => {
    const h = harness();
    await h.startAt(0);
    expect(h.follow().input.fromSeq).toBe(1);
    expect(h.ctx().appliedSeq).toBe(0);
  });

  it("does not serve before the follower has reported the stream's last sequence", async () => {
    const h = harness();
    await h.startAt(5);
    await flush();
    expect(h.state()).toBe(ReplicaState.Replaying);
  });
});

describe("replicaMachine: readiness", () => {
  it("replaying → serving once lag <= threshold", async () => {
    const h = harness({ lagThresholdEntries: 10 });
    await h.startAt(0);
    h.progressTo(50, 200);
    expect(h.state()).toBe(ReplicaState.Replaying);
    expect(h.ctx()).toMatchObject({ appliedSeq: 50, lastSeq: 200 });
    h.progressTo(189, 200); // lag 11
    expect(h.state()).toBe(ReplicaState.Replaying);
    h.progressTo(190, 200); // lag 10
    expect(h.state()).toBe(ReplicaState.Serving);
    expect(isReadable(h.state())).toBe(true);
    expect(h.progress).toEqual([
      { appliedSeq: 50, lastSeq: 200 },
      { appliedSeq: 189, lastSeq: 200 },
      { appliedSeq: 190, lastSeq: 200 },
    ]);
    expect(h.states.at(-1)).toBe(ReplicaState.Serving);
  });

  it("serving ⇄ lagging on the threshold, context updated in every substate", async () => {
    const h = harness({ lagThresholdEntries: 10 });
    await h.startServing(100);
    h.progressTo(100, 111); // idle report: lag 11
    expect(h.state()).toBe(ReplicaState.Lagging);
    expect(isReadable(h.state())).toBe(true);
    expect(h.ctx()).toMatchObject({ appliedSeq: 100, lastSeq: 111 });
    h.progressTo(105, 130); // still lagging, context still updated
    expect(h.state()).toBe(ReplicaState.Lagging);
    expect(h.ctx()).toMatchObject({ appliedSeq: 105, lastSeq: 130 });
    h.progressTo(120, 130); // lag 10
    expect(h.state()).toBe(ReplicaState.Serving);
    h.progressTo(125, 135); // lag 10, stays
    expect(h.state()).toBe(ReplicaState.Serving);
    expect(h.states).toEqual([
      ReplicaState.Restoring,
      ReplicaState.Replaying,
      ReplicaState.Serving,
      ReplicaState.Lagging,
      ReplicaState.Serving,
    ]);
  });

  it("ignores stale PROGRESS (appliedSeq never decreases, lastSeq never decreases)", async () => {
    const h = harness({ lagThresholdEntries: 10 });
    await h.startServing(100);
    const before = h.progress.length;
    h.progressTo(90, 500);
    expect(h.ctx()).toMatchObject({ appliedSeq: 100, lastSeq: 100 });
    expect(h.state()).toBe(ReplicaState.Serving);
    expect(h.progress.length).toBe(before);
    h.progressTo(101, 50); // lastSeq below appliedSeq: clamped
    expect(h.ctx()).toMatchObject({ appliedSeq: 101, lastSeq: 101 });
  });
});

describe("replicaMachine: snapshots", () => {
  it("snapshots every N entries (checked on PROGRESS)", async () => {
    const h = harness({ snapshotEveryEntries: 100 });
    await h.startServing(0);
    h.progressTo(99);
    expect(h.snapshots).toHaveLength(0);
    h.progressTo(100);
    expect(h.saving()).toBe(true);
    expect(h.snapshots).toHaveLength(1);
    expect(h.snapshots[0]!.input).toEqual({ collection: "docs", shard: 3 });
    h.snapshots[0]!.d.resolve({ seq: 100 });
    await h.until((s) => s.context.snapshotSeq === 100);
    expect(h.saving()).toBe(false);
    h.progressTo(199);
    expect(h.snapshots).toHaveLength(1);
    h.progressTo(200);
    expect(h.snapshots).toHaveLength(2);
    expect(h.state()).toBe(ReplicaState.Serving);
  });

  it("never runs two snapshots at once; keeps the max saved seq", async () => {
    const h = harness({ snapshotEveryEntries: 100, snapshotIntervalMs: 1000 });
    await h.startServing(0);
    h.progressTo(100);
    expect(h.snapshots).toHaveLength(1);
    h.progressTo(300);
    h.progressTo(500);
    h.clock.increment(5000);
    expect(h.snapshots).toHaveLength(1);
    expect(h.ctx().appliedSeq).toBe(500);
    h.snapshots[0]!.d.resolve({ seq: 100 }); // the index was at 100 when the save began
    await h.until((s) => s.context.snapshotSeq === 100 && !s.matches({ active: { snapshots: "saving" } }));
    await flush();
    expect(h.snapshots).toHaveLength(1); // no immediate re-trigger without an event
    h.progressTo(501); // 401 since the last snapshot: due
    expect(h.snapshots).toHaveLength(2);
    h.snapshots[1]!.d.resolve({ seq: 50 }); // an older seq never moves snapshotSeq back
    await h.until((s) => !s.matches({ active: { snapshots: "saving" } }));
    expect(h.ctx().snapshotSeq).toBe(100);
  });

  it("snapshots on the interval when something was applied since the last one", async () => {
    const h = harness({ snapshotIntervalMs: 1000 });
    await h.startServing(10);
    h.clock.increment(1000); // nothing applied since the restored snapshot
    expect(h.snapshots).toHaveLength(0);
    h.progressTo(15);
    h.clock.increment(999); // timer re-armed at t=1000 → fires at t=2000
    expect(h.snapshots).toHaveLength(0);
    h.clock.increment(1);
    expect(h.snapshots).toHaveLength(1);
    h.snapshots[0]!.d.resolve({ seq: 15 });
    await h.until((s) => s.context.snapshotSeq === 15);
    h.clock.increment(1000); // nothing new
    expect(h.snapshots).toHaveLength(0 + 1);
    h.progressTo(20);
    h.clock.increment(1000);
    expect(h.snapshots).toHaveLength(2);
  });

  it("takes a new snapshot interval live: a waiting timer restarts with it, 0 stops it, and one set while saving counts from the next wait", async () => {
    const h = harness({ snapshotIntervalMs: 30_000 });
    await h.startServing(10);
    h.progressTo(15);
    h.clock.increment(10_000);
    h.actor.send({ type: "SNAPSHOT_INTERVAL", intervalMs: 500 });
    expect(h.ctx().snapshotIntervalMs).toBe(500);
    h.clock.increment(499);
    expect(h.snapshots).toHaveLength(0);
    h.clock.increment(1);
    expect(h.snapshots).toHaveLength(1);
    // Changed while saving: nothing restarts now; the next wait is the new one.
    h.actor.send({ type: "SNAPSHOT_INTERVAL", intervalMs: 2_000 });
    expect(h.saving()).toBe(true);
    h.snapshots[0]!.d.resolve({ seq: 15, durationMs: 0 });
    await h.until((s) => s.context.snapshotSeq === 15 && s.matches({ active: { snapshots: "idle" } }));
    h.progressTo(20);
    h.clock.increment(1_999);
    expect(h.snapshots).toHaveLength(1);
    h.clock.increment(1);
    expect(h.snapshots).toHaveLength(2);
    h.snapshots[1]!.d.resolve({ seq: 20, durationMs: 0 });
    await h.until((s) => s.context.snapshotSeq === 20 && s.matches({ active: { snapshots: "idle" } }));
    h.actor.send({ type: "SNAPSHOT_INTERVAL", intervalMs: 0 });
    h.progressTo(25);
    h.clock.increment(86_400_000);
    expect(h.snapshots).toHaveLength(2);
    // Before the replica is active the value is kept for when it is.
    const early = harness({ snapshotIntervalMs: 30_000 });
    early.actor.start();
    early.actor.send({ type: "SNAPSHOT_INTERVAL", intervalMs: 700 });
    expect(early.ctx().snapshotIntervalMs).toBe(700);
    early.actor.stop();
  });

  it("saves again, with nothing new applied, once the graph absorbed the many points the last save left out", async () => {
    const h = harness({ snapshotIntervalMs: 1000 });
    await h.startServing(10);
    h.progressTo(15);
    h.clock.increment(1000);
    h.snapshots[0]!.d.resolve({ seq: 15, unabsorbed: 5_000, points: 20_000 });
    await h.until((s) => s.context.snapshotSeq === 15);
    h.clock.increment(1000); // still absorbing
    expect(h.snapshots).toHaveLength(1);
    h.actor.send({ type: "ABSORBED" });
    h.clock.increment(1000);
    expect(h.snapshots).toHaveLength(2);
    h.snapshots[1]!.d.resolve({ seq: 15, unabsorbed: 0, points: 20_000 });
    await h.until((s) => s.context.snapshotUnabsorbed === 0 && s.matches({ active: { snapshots: "idle" } }));
    h.actor.send({ type: "ABSORBED" });
    h.clock.increment(5000);
    expect(h.snapshots).toHaveLength(2);
  });

  it("a few points left out are not worth a save: fewer than resaveUnabsorbedMin, or under resaveUnabsorbedShare of the snapshot", async () => {
    for (const [unabsorbed, points] of [
      [1_000, 2_000],
      [2_000, 100_000],
    ] as const) {
      const h = harness({ snapshotIntervalMs: 1000 });
      await h.startServing(10);
      h.progressTo(15);
      h.clock.increment(1000);
      h.snapshots[0]!.d.resolve({ seq: 15, unabsorbed, points });
      await h.until((s) => s.context.snapshotSeq === 15);
      h.actor.send({ type: "ABSORBED" });
      h.clock.increment(5000);
      expect(h.snapshots, `${unabsorbed} of ${points}`).toHaveLength(1);
    }
  });

  it("counts an ABSORBED that came while saving (the save may have captured the graph before it), and after a restore", async () => {
    const h = harness({ snapshotIntervalMs: 1000 });
    await h.startServing(10);
    h.progressTo(15);
    h.clock.increment(1000);
    h.actor.send({ type: "ABSORBED" });
    h.snapshots[0]!.d.resolve({ seq: 15, unabsorbed: 5_000, points: 20_000 });
    await h.until((s) => s.context.snapshotSeq === 15);
    h.clock.increment(1000);
    expect(h.snapshots).toHaveLength(2);

    const restored = harness({ snapshotIntervalMs: 1000 });
    restored.restorePlan.push({ snapshotSeq: 7, unabsorbed: 3_000, points: 9_000 });
    restored.actor.start();
    await restored.untilState(ReplicaState.Replaying);
    restored.progressTo(7);
    restored.clock.increment(1000);
    expect(restored.snapshots).toHaveLength(0);
    restored.actor.send({ type: "ABSORBED" });
    restored.clock.increment(1000);
    expect(restored.snapshots).toHaveLength(1);
  });

  it("interval-only snapshots don't trigger on entry count when snapshotEveryEntries is 0", async () => {
    const h = harness({ snapshotEveryEntries: 0, snapshotIntervalMs: 0 });
    await h.startServing(0);
    h.progressTo(1_000_000);
    h.clock.increment(10_000_000);
    expect(h.snapshots).toHaveLength(0);
  });

  it("a failed snapshot keeps serving and is retried on the next trigger", async () => {
    const h = harness({ snapshotEveryEntries: 100, snapshotIntervalMs: 1000 });
    await h.startServing(0);
    h.clock.increment(400);
    h.progressTo(100); // t=400
    expect(h.snapshots).toHaveLength(1);
    h.snapshots[0]!.d.reject(new Error("object store unavailable"));
    await h.until((s) => !s.matches({ active: { snapshots: "saving" } }));
    expect(h.snapshotErrors).toEqual(["object store unavailable"]);
    expect(h.state()).toBe(ReplicaState.Serving);
    expect(h.ctx().snapshotSeq).toBe(0);
    expect(h.failures).toHaveLength(0);
    await flush();
    expect(h.snapshots).toHaveLength(1); // no hot retry loop
    // the interval restarted when the failed save returned to idle (t=400): fires at t=1400
    h.clock.increment(999);
    expect(h.snapshots).toHaveLength(1);
    h.clock.increment(1);
    expect(h.snapshots).toHaveLength(2);
    h.snapshots[1]!.d.reject(new Error("again"));
    await h.until((s) => !s.matches({ active: { snapshots: "saving" } }));
    h.progressTo(101); // entry trigger retries too
    expect(h.snapshots).toHaveLength(3);
    h.snapshots[2]!.d.resolve({ seq: 101 });
    await h.until((s) => s.context.snapshotSeq === 101);
    expect(h.state()).toBe(ReplicaState.Serving);
  });
});

describe("replicaMachine: failure and retry", () => {
  it("restore failure → failed → exponential backoff (capped) → restoring again", async () => {
    const h = harness({ retryDelayMs: 100, retryDelayMaxMs: 350 });
    h.restorePlan.push(new Error("disk gone"));
    h.actor.start();
    await h.untilState(ReplicaState.Failed);
    expect(h.ctx().error).toBe("restore failed: disk gone");
    expect(h.failures).toEqual([{ error: "restore failed: disk gone", retries: 0 }]);
    expect(isApplying(h.state())).toBe(false);

    // delays: 100, 200, 350 (cap of 400), 350
    const expected = [100, 200, 350, 350];
    for (const [i, delay] of expected.entries()) {
      expect(h.ctx().retries).toBe(i);
      h.restorePlan.push(new Error(`fail ${i + 1}`));
      h.clock.increment(delay - 1);
      expect(h.state()).toBe(ReplicaState.Failed);
      expect(h.restores).toHaveLength(i + 1);
      h.clock.increment(1);
      expect(h.restores).toHaveLength(i + 2);
      await h.untilState(ReplicaState.Failed);
    }
    expect(h.ctx().retries).toBe(4);
    expect(h.failures.map((f) => f.retries)).toEqual([0, 1, 2, 3, 4]);

    // eventually restore works: follows from the restored seq, and serving resets retries
    h.restorePlan.push(7);
    h.clock.increment(350);
    await h.untilState(ReplicaState.Replaying);
    expect(h.follow().input.fromSeq).toBe(8);
    expect(h.ctx().retries).toBe(5);
    h.progressTo(7);
    expect(h.state()).toBe(ReplicaState.Serving);
    expect(h.ctx().retries).toBe(0);
    expect(h.ctx().error).toBeUndefined();
  });

  it("FOLLOW_FAILED → failed (follow cleaned up) → restore → follow restarts from the restored seq", async () => {
    const h = harness({ retryDelayMs: 100 });
    await h.startServing(20);
    h.progressTo(60, 60);
    const first = h.follow();
    first.send({ type: "FOLLOW_FAILED", error: "consumer deleted" });
    expect(h.state()).toBe(ReplicaState.Failed);
    expect(first.cleanedUp).toBe(true);
    expect(h.ctx().error).toBe("follow failed: consumer deleted");
    expect(h.failures).toEqual([{ error: "follow failed: consumer deleted", retries: 0 }]);

    h.restorePlan.push(30); // the newest snapshot covers 30
    h.clock.increment(100);
    expect(h.state()).toBe(ReplicaState.Restoring);
    await h.untilState(ReplicaState.Replaying);
    expect(h.follows).toHaveLength(2);
    expect(h.follow().input.fromSeq).toBe(31);
    expect(h.ctx()).toMatchObject({ appliedSeq: 30, snapshotSeq: 30, lastSeq: 60, retries: 1 });

    // a late event from the cancelled follower is dropped
    first.send({ type: "PROGRESS", appliedSeq: 1000, lastSeq: 1000 });
    expect(h.ctx().appliedSeq).toBe(30);
    h.progressTo(55, 60);
    expect(h.state()).toBe(ReplicaState.Serving);
  });

  it("a follow actor that throws → failed", async () => {
    const h = harness();
    h.setFollowThrows(new Error("worker crashed"));
    h.restorePlan.push(0);
    h.actor.start();
    await h.untilState(ReplicaState.Failed);
    expect(h.ctx().error).toBe("follow crashed: worker crashed");
  });

  it("unprovided effects fail loudly (placeholders throw)", async () => {
    const actor = createActor(replicaMachine, { clock: new SimulatedClock(), input: BASE });
    actor.start();
    await waitFor(actor, (s) => replicaStateOf(s) === ReplicaState.Failed, { timeout: 1000 });
    expect(actor.getSnapshot().context.error).toMatch(/'restore' was not provided/);
    actor.stop();
  });
});

describe("replicaMachine: STOP", () => {
  type Setup = (h: ReturnType<typeof harness>) => Promise<void>;
  const cases: [ReplicaState | "saving", Setup][] = [
    [
      ReplicaState.Restoring,
      async (h) => {
        h.actor.start();
      },
    ],
    [ReplicaState.Replaying, (h) => h.startAt(5)],
    [ReplicaState.Serving, (h) => h.startServing(5)],
    [
      ReplicaState.Lagging,
      async (h) => {
        await h.startServing(5);
        h.progressTo(5, 100);
      },
    ],
    [
      "saving",
      async (h) => {
        await h.startServing(0);
        h.progressTo(100);
        expect(h.saving()).toBe(true);
      },
    ],
    [
      ReplicaState.Failed,
      async (h) => {
        h.restorePlan.push(new Error("nope"));
        h.actor.start();
        await h.untilState(ReplicaState.Failed);
      },
    ],
  ];

  it.each(cases)("STOP from %s → stopped, effects cancelled", async (from, setup) => {
    const h = harness({ snapshotEveryEntries: 100 });
    await setup(h);
    expect(from === "saving" ? ReplicaState.Serving : from).toBe(h.state());
    h.actor.send({ type: "STOP" });
    const snap = h.actor.getSnapshot();
    expect(snap.status).toBe("done");
    expect(snap.matches("stopped")).toBe(true);
    expect(replicaStateOf(snap)).toBe(ReplicaState.Stopped);
    expect(h.states.at(-1)).toBe(ReplicaState.Stopped);
    for (const f of h.follows) expect(f.cleanedUp).toBe(true);
    for (const r of h.restores) if (from === ReplicaState.Restoring) expect(r.signal.aborted).toBe(true);
    for (const s of h.snapshots) expect(s.signal.aborted).toBe(true);
    // nothing restarts afterwards: no retry timer, no late completion
    const restores = h.restores.length;
    h.restores.forEach((r) => r.d.resolve({ snapshotSeq: 1 }));
    h.clock.increment(1_000_000);
    await flush();
    expect(h.restores).toHaveLength(restores);
    expect(replicaStateOf(h.actor.getSnapshot())).toBe(ReplicaState.Stopped);
  });

  it("actor.stop() (node shutdown) also runs the follow cleanup and maps to stopped", async () => {
    const h = harness();
    await h.startServing(1);
    h.actor.stop();
    expect(h.follow().cleanedUp).toBe(true);
    expect(replicaStateOf(h.actor.getSnapshot())).toBe(ReplicaState.Stopped);
  });
});

describe("replica state predicates", () => {
  it.each([
    [ReplicaState.Restoring, false, false],
    [ReplicaState.Replaying, false, true],
    [ReplicaState.Serving, true, true],
    [ReplicaState.Lagging, true, true],
    [ReplicaState.Failed, false, false],
    [ReplicaState.Stopped, false, false],
  ] as const)("%s: readable=%s applying=%s", (state, readable, applying) => {
    expect(isReadable(state)).toBe(readable);
    expect(isApplying(state)).toBe(applying);
  });

  it("covers every state", () => {
    expect(Object.values(ReplicaState).sort()).toEqual(
      ["failed", "lagging", "replaying", "restoring", "serving", "stopped"].sort(),
    );
  });

  it("retryDelayFor doubles and caps, without overflow", () => {
    const c = { retryDelayMs: 100, retryDelayMaxMs: 30_000 };
    expect([0, 1, 2, 3, 8, 9, 1000].map((retries) => retryDelayFor({ ...c, retries }))).toEqual([
      100, 200, 400, 800, 25_600, 30_000, 30_000,
    ]);
    expect(retryDelayFor({ retries: 10_000, retryDelayMs: 0, retryDelayMaxMs: 5 })).toBe(0);
  });
});

describe("replicaMachine: snapshot cost", () => {
  it("starts no save for snapshotCostFactor × the last save's duration, whatever triggers", async () => {
    const h = harness({ snapshotEveryEntries: 100, snapshotIntervalMs: 1000 });
    await h.startServing(0);
    h.progressTo(100);
    expect(h.snapshots).toHaveLength(1);
    h.snapshots[0]!.d.resolve({ seq: 100, durationMs: 300 }); // cooling for 20 × 300 = 6 s
    await h.until((s) => s.context.snapshotSeq === 100);
    h.progressTo(250); // due by entries, but cooling
    h.clock.increment(5_999);
    h.progressTo(260);
    expect(h.snapshots).toHaveLength(1);
    h.clock.increment(1); // cooled down: the next check saves
    h.progressTo(270);
    expect(h.snapshots).toHaveLength(2);
  });
});
