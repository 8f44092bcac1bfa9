import { describe, expect, it } from "vitest";
import { createActor, fromCallback, fromPromise, SimulatedClock } from "xstate";
import {
  canCancel,
  canPause,
  isActive,
  isFinal,
  migrationInputProblems,
  migrationMachine,
  migrationRetryDelay,
  MigrationState,
  migrationStateOf,
  persistTo,
  resumeOptions,
  type CutoverOutput,
  type MigrationInput,
  type PersistedMigration,
  type PrepareOutput,
  type ReportErrorParams,
  type RollbackOutput,
  type StepInput,
  type WatchTargetInput,
  type WatchTargetSentEvent,
} from "../src/machines/migration.ts";
import {
  applyCutover,
  applyPrepare,
  applyRollback,
  estimateEta,
  makeTransfer,
  Transfer,
  transferId,
  transferPhase,
  TransferError,
} from "../src/runtime/transfer.ts";
import type { Placement } from "../src/runtime/placement.ts";
import { advance as advanceClock, flush } from "./support/clock.ts";

// ───────────────────────────── harness ─────────────────────────────

/** every delay in these tests is a multiple of STEP */
const STEP = 50;
const advance = (clock: SimulatedClock, ms: number) => advanceClock(clock, ms, STEP);

const MOVE = makeTransfer({
  collection: "docs",
  uid: "u-1",
  shard: 1,
  from: "n2",
  to: "n3",
  reason: "move",
  createdAt: "2026-01-01T00:00:00.000Z",
});
const ADD = makeTransfer({ ...MOVE, from: null, reason: "repair" });

const ORIGINAL: Placement = {
  collection: "docs",
  epoch: 1,
  shards: [
    { shard: 0, replicas: ["n1", "n2"] },
    { shard: 1, replicas: ["n2", "n1"] },
  ],
};

const BASE: Omit<MigrationInput, "transfer"> = {
  catchUpLagMax: 10,
  stepTimeoutMs: 1000,
  drainMs: 500,
  attemptsMax: 3,
  retryDelayMs: 100,
  retryDelayMaxMs: 150,
};

/** The cluster's KV state, shared by the coordinators of a test: placement entry + jade_migrations. */
class Cluster {
  placement: Placement;
  placementWrites = 0;
  readonly migrations = new Map<string, PersistedMigration>();
  /** nodes told to close their replica (release) */
  readonly released: string[] = [];
  constructor(initial: Placement = ORIGINAL) {
    this.placement = initial;
  }
  /** a CAS write applying a pure transform (re-read + re-apply = the effect's CAS loop) */
  cas(transform: (p: Placement) => Placement): Placement {
    const next = transform(this.placement);
    if (next !== this.placement) {
      this.placement = next;
      this.placementWrites += 1;
    }
    return next;
  }
  shard(n: number) {
    return this.placement.shards.find((s) => s.shard === n)!;
  }
}

/** how one call of an effect behaves: ok; hang (never answers, nothing done); lost (done, reply lost); or rejects */
type Plan = "ok" | "hang" | "lost" | Error;
type Step = "prepare" | "cutover" | "release" | "rollback";

interface StepCall {
  input: StepInput;
  signal: AbortSignal;
  atMs: number;
}

function harness(opts: { input?: Partial<MigrationInput>; cluster?: Cluster; snapshot?: PersistedMigration } = {}) {
  const clock = new SimulatedClock();
  const cluster = opts.cluster ?? new Cluster();
  const calls: Record<Step, StepCall[]> = { prepare: [], cutover: [], release: [], rollback: [] };
  const plans: Record<Step, Plan[]> = { prepare: [], cutover: [], release: [], rollback: [] };
  const watches: { input: WatchTargetInput; send: (e: WatchTargetSentEvent) => void; cleanedUp: boolean }[] = [];
  const persisted: MigrationState[] = [];
  const errors: ReportErrorParams[] = [];

  function effect<O>(step: Step, run: (t: Transfer) => O) {
    return fromPromise<O, StepInput>(({ input, signal }) => {
      calls[step].push({ input, signal, atMs: clock.now() });
      const plan = plans[step].shift() ?? "ok";
      if (plan instanceof Error) return Promise.reject(plan);
      if (plan === "hang") return new Promise<O>(() => {});
      let out: O;
      try {
        out = run(input.transfer);
      } catch (e) {
        return Promise.reject(e);
      }
      return plan === "lost" ? new Promise<O>(() => {}) : Promise.resolve(out);
    });
  }

  const machine = migrationMachine.provide({
    actors: {
      prepare: effect<PrepareOutput>("prepare", (t) => {
        const p = cluster.cas((p) => applyPrepare(p, t));
        return { epoch: p.epoch, alreadyCutOver: transferPhase(p, t) === "cutOver" };
      }),
      cutover: effect<CutoverOutput>("cutover", (t) => ({ epoch: cluster.cas((p) => applyCutover(p, t)).epoch })),
      release: effect<void>("release", (t) => void cluster.released.push(t.from!)),
      rollback: effect<RollbackOutput>("rollback", (t) => {
        if (transferPhase(cluster.placement, t) === "cutOver") return { epoch: cluster.placement.epoch, alreadyCutOver: true };
        return { epoch: cluster.cas((p) => applyRollback(p, t)).epoch, alreadyCutOver: false };
      }),
      watchTarget: fromCallback<{ type: string }, WatchTargetInput>(({ input, sendBack }) => {
        const w = { input, send: (e: WatchTargetSentEvent) => sendBack(e), cleanedUp: false };
        watches.push(w);
        return () => {
          w.cleanedUp = true;
        };
      }),
    },
    actions: {
      // exactly what the coordinator does, with a JSON round trip standing for the KV store
      persist: persistTo((id, payload, state) => {
        cluster.migrations.set(id, JSON.parse(JSON.stringify(payload)) as PersistedMigration);
        persisted.push(state);
      }),
      reportError: (_, p) => void errors.push({ ...p }),
    },
  });
  const actor = opts.snapshot
    ? createActor(machine, { ...resumeOptions(opts.snapshot), clock })
    : createActor(machine, { clock, input: { ...BASE, transfer: MOVE, ...opts.input } });

  const h = {
    clock,
    cluster,
    actor,
    calls,
    plans,
    watches,
    persisted,
    errors,
    state: () => migrationStateOf(actor.getSnapshot()),
    ctx: () => actor.getSnapshot().context,
    /** the migration's record in jade_migrations, as a new coordinator would read it */
    record: () => cluster.migrations.get(actor.getSnapshot().context.transfer.id)!,
    watch() {
      const w = watches.at(-1);
      if (!w) throw new Error("watchTarget never started");
      return w;
    },
    progress(appliedSeq: number, lastSeq: number, bytes = appliedSeq * 100, copyGoalBytes = 0) {
      h.watch().send({ type: "TARGET_PROGRESS", appliedSeq, lastSeq, bytes, copyGoalBytes, atMs: clock.now() });
    },
    advance: (ms: number) => advance(clock, ms),
    async start() {
      actor.start();
      actor.send({ type: "START", atMs: clock.now() });
      await flush();
    },
    /** start and get to catchingUp with the learner in place */
    async startCatchingUp() {
      await h.start();
      expect(h.state()).toBe(MigrationState.CatchingUp);
    },
    /** report the target caught up and let the cutover run */
    async catchUp() {
      h.progress(1000, 1000);
      await flush();
    },
  };
  return h;
}

const cutOverShard1 = { shard: 1, replicas: ["n3", "n1"] };

// ───────────────────────────── transfer values ─────────────────────────────

describe("transfer: value, id, placement transforms", () => {
  it("validates with zod and derives a deterministic KV-safe id", () => {
    expect(Transfer.parse(MOVE)).toEqual(MOVE);
    expect(MOVE.id).toMatch(/^docs\.1\.[0-9a-f]{16}$/);
    expect(transferId(MOVE)).toBe(MOVE.id);
    expect(transferId({ ...MOVE })).toBe(transferId({ collection: "docs", uid: "u-1", shard: 1, from: "n2", to: "n3" }));
    // reason and time are not part of the identity; endpoints, shard and incarnation are
    expect(makeTransfer({ ...MOVE, reason: "drain", createdAt: "x" }).id).toBe(MOVE.id);
    for (const other of [{ to: "n4" }, { from: null }, { shard: 0 }, { uid: "u-2" }]) {
      expect(transferId({ ...MOVE, ...other })).not.toBe(MOVE.id);
    }
    expect(Transfer.safeParse({ ...MOVE, to: "n2" }).success).toBe(false);
    expect(Transfer.safeParse({ ...MOVE, shard: -1 }).success).toBe(false);
    expect(Transfer.safeParse({ ...MOVE, collection: "a b" }).success).toBe(false);
    expect(Transfer.safeParse({ ...MOVE, id: "a b" }).success).toBe(false);
    expect(Transfer.safeParse({ ...MOVE, extra: 1 }).success).toBe(false);
  });

  it("prepare → cutover → (rollback is then a no-op); each step idempotent, epoch +1 per change", () => {
    expect(transferPhase(ORIGINAL, MOVE)).toBe("pending");
    const prepared = applyPrepare(ORIGINAL, MOVE);
    expect(prepared.epoch).toBe(2);
    expect(prepared.shards[1]).toEqual({ shard: 1, replicas: ["n2", "n1"], learners: ["n3"] });
    expect(prepared.shards[0]).toBe(ORIGINAL.shards[0]);
    expect(transferPhase(prepared, MOVE)).toBe("learner");
    expect(applyPrepare(prepared, MOVE)).toBe(prepared);
    const cut = applyCutover(prepared, MOVE);
    expect(cut.epoch).toBe(3);
    expect(cut.shards[1]).toEqual(cutOverShard1); // in the source's position, learners gone
    expect(transferPhase(cut, MOVE)).toBe("cutOver");
    expect(applyCutover(cut, MOVE)).toBe(cut);
    expect(applyPrepare(cut, MOVE)).toBe(cut);
    expect(applyRollback(cut, MOVE)).toBe(cut);
    expect(applyRollback(prepared, MOVE)).toEqual({ ...ORIGINAL, epoch: 3 });
    expect(applyRollback(ORIGINAL, MOVE)).toBe(ORIGINAL);
  });

  it("adding a replica appends it; invalid transfers throw TransferError (obsolete)", () => {
    const cut = applyCutover(applyPrepare(ORIGINAL, ADD), ADD);
    expect(cut.shards[1]).toEqual({ shard: 1, replicas: ["n2", "n1", "n3"] });
    expect(() => applyCutover(ORIGINAL, MOVE)).toThrow(TransferError);
    expect(() => applyCutover(ORIGINAL, MOVE)).toThrow(/not a learner/);
    expect(() => applyPrepare(ORIGINAL, { ...MOVE, to: "n1" })).toThrow(/already holds a replica/);
    expect(() => applyPrepare(ORIGINAL, { ...MOVE, shard: 7 })).toThrow(/no shard 7/);
    expect(() => applyPrepare({ ...ORIGINAL, collection: "x" }, MOVE)).toThrow(TransferError);
  });

  it("estimateEta: lag closing rate (applied rate minus log growth) to the threshold", () => {
    expect(estimateEta([])).toBeNull();
    expect(estimateEta([{ atMs: 0, appliedSeq: 0, targetSeq: 1000 }])).toBeNull();
    expect(estimateEta([{ atMs: 0, appliedSeq: 995, targetSeq: 1000 }], 10)).toBe(0);
    // lag 1000 → 800 in 1 s: 0.2/ms; 790 to go above a threshold of 10
    const s = [
      { atMs: 0, appliedSeq: 0, targetSeq: 1000 },
      { atMs: 1000, appliedSeq: 300, targetSeq: 1100 },
    ];
    expect(estimateEta(s, 10)).toBe(3950);
    expect(estimateEta(s)).toBe(4000);
    // the applied rate alone (300/s) would say 2.7 s: the log grows 100/s meanwhile
    expect(estimateEta([{ atMs: 0, appliedSeq: 0, targetSeq: 1000 }, { atMs: 1000, appliedSeq: 100, targetSeq: 1200 }])).toBeNull();
    expect(estimateEta([{ atMs: 5, appliedSeq: 0, targetSeq: 100 }, { atMs: 5, appliedSeq: 50, targetSeq: 100 }])).toBeNull();
    expect(estimateEta([{ atMs: Number.NaN, appliedSeq: 0, targetSeq: 9 }, ...s], 10)).toBe(3950);
  });

  it("estimateEta: while the target copies, the byte rate of this copy to its goal", () => {
    const copy = (atMs: number, bytes: number, copyGoalBytes = 10_000) => ({ atMs, appliedSeq: 0, targetSeq: 1000, bytes, copyGoalBytes });
    expect(estimateEta([copy(0, 1000)])).toBeNull();
    // 2000 bytes in 1 s: 7000 to go
    expect(estimateEta([copy(0, 1000), copy(1000, 3000)])).toBe(3500);
    // a second copy (another source after a failure) starts a new rate: samples of the first do not count
    expect(estimateEta([copy(0, 1000), copy(1000, 3000), copy(2000, 4000, 20_000)])).toBeNull();
    expect(estimateEta([copy(0, 1000), copy(1000, 3000), copy(2000, 4000, 20_000), copy(3000, 8000, 20_000)])).toBe(3000);
    // a stalled copy has no ETA; a copy that is in falls back to the lag
    expect(estimateEta([copy(0, 1000), copy(1000, 1000)])).toBeNull();
    expect(estimateEta([copy(0, 1000), { ...copy(1000, 10_000), appliedSeq: 500, targetSeq: 1000 }])).toBe(1000);
  });
});

// ───────────────────────────── the machine ─────────────────────────────

describe("migrationMachine: happy path", () => {
  it("planned → preparing → catchingUp (progress, ETA) → cutover → draining → completed; persisted at each step", async () => {
    const h = harness();
    h.actor.start();
    await flush();
    expect(h.state()).toBe(MigrationState.Planned);
    expect(h.record().value).toBe("planned");
    expect(h.calls.prepare).toHaveLength(0);

    h.actor.send({ type: "START", atMs: h.clock.now() });
    expect(h.state()).toBe(MigrationState.Preparing);
    expect(h.calls.prepare.map((c) => c.input)).toEqual([{ transfer: MOVE, attempt: 1 }]);
    expect(h.watch().input).toEqual({ transfer: MOVE });
    await flush();
    expect(h.state()).toBe(MigrationState.CatchingUp);
    expect(h.cluster.shard(1)).toEqual({ shard: 1, replicas: ["n2", "n1"], learners: ["n3"] });
    expect(h.ctx().placementEpoch).toBe(2);
    expect(h.record().value).toEqual({ running: { catchingUp: "untimed" } });

    h.progress(0, 1000);
    expect(h.ctx().progress).toEqual({ appliedSeq: 0, targetSeq: 1000, bytesCopied: 0, copyGoalBytes: 0, startedAtMs: 0, etaMs: null });
    await h.advance(1000);
    h.progress(300, 1100);
    expect(h.ctx().progress).toMatchObject({ appliedSeq: 300, targetSeq: 1100, bytesCopied: 30_000, etaMs: 3950 });
    await h.advance(1000);
    h.progress(700, 1200); // lag 500: (1000-500)/2000 ms → 490 / 0.25
    expect(h.ctx().progress.etaMs).toBe(1960);
    expect(h.state()).toBe(MigrationState.CatchingUp);
    expect(h.calls.cutover).toHaveLength(0);
    // the source still serves: the placement is unchanged but for the learner
    expect(h.cluster.shard(1).replicas).toEqual(["n2", "n1"]);

    await h.advance(1000);
    h.progress(1189, 1200); // lag 11 > 10
    expect(h.state()).toBe(MigrationState.CatchingUp);
    h.progress(1190, 1200); // lag 10
    expect(h.state()).toBe(MigrationState.Cutover);
    expect(h.ctx().progress.etaMs).toBe(0);
    await flush();
    expect(h.state()).toBe(MigrationState.Draining);
    expect(h.cluster.shard(1)).toEqual(cutOverShard1);
    expect(h.cluster.placement.epoch).toBe(3);
    expect(h.ctx().placementEpoch).toBe(3);

    await h.advance(450);
    expect(h.calls.release).toHaveLength(0); // the source finishes its in-flight reads
    await h.advance(50);
    expect(h.calls.release.map((c) => c.input)).toEqual([{ transfer: MOVE, attempt: 1 }]);
    await flush();
    expect(h.state()).toBe(MigrationState.Completed);
    expect(h.cluster.released).toEqual(["n2"]);
    expect(h.actor.getSnapshot().status).toBe("done");
    expect(h.watch().cleanedUp).toBe(true);
    expect(h.persisted).toEqual(["planned", "preparing", "catchingUp", "cutover", "draining", "completed"]);
    expect(h.record().value).toBe("completed");
    expect(h.cluster.placementWrites).toBe(2);
    expect(h.calls.rollback).toHaveLength(0);
  });

  it("adding a replica (from = null): appended at the cutover, no drain and no release", async () => {
    const h = harness({ input: { transfer: ADD } });
    await h.startCatchingUp();
    await h.catchUp();
    expect(h.state()).toBe(MigrationState.Completed);
    expect(h.cluster.shard(1)).toEqual({ shard: 1, replicas: ["n2", "n1", "n3"] });
    expect(h.calls.release).toHaveLength(0);
    expect(h.persisted).toEqual(["planned", "preparing", "catchingUp", "cutover", "draining", "completed"]);
  });

  it("ignores invalid progress reports; a target restart or an older stamp resets the rate window", async () => {
    const h = harness();
    await h.startCatchingUp();
    await h.advance(1000);
    h.progress(100, 1000);
    h.watch().send({ type: "TARGET_PROGRESS", appliedSeq: Number.NaN, lastSeq: 1000, bytes: 0, copyGoalBytes: 0, atMs: 1000 });
    h.watch().send({ type: "TARGET_PROGRESS", appliedSeq: -1, lastSeq: 1000, bytes: 0, copyGoalBytes: 0, atMs: 1000 });
    expect(h.ctx().progress.appliedSeq).toBe(100);
    expect(h.ctx().samples).toHaveLength(1);
    await h.advance(1000);
    h.progress(50, 1000); // restarted from an older snapshot
    expect(h.ctx().samples).toEqual([{ atMs: 2000, appliedSeq: 50, targetSeq: 1000, bytes: 5000, copyGoalBytes: 0 }]);
    expect(h.ctx().progress.etaMs).toBeNull();
    await h.advance(1000);
    h.progress(500, 1000);
    expect(h.ctx().progress.etaMs).toBe(1089); // lag 950 → 500 in 1 s; 490 to go at 0.45/ms
    // a stamp from a clock behind (another coordinator): still counts, new window
    h.watch().send({ type: "TARGET_PROGRESS", appliedSeq: 600, lastSeq: 1000, bytes: 0, copyGoalBytes: 0, atMs: 10 });
    expect(h.ctx().samples).toEqual([{ atMs: 10, appliedSeq: 600, targetSeq: 1000, bytes: 0, copyGoalBytes: 0 }]);
    expect(h.ctx().progress.appliedSeq).toBe(600);
    h.watch().send({ type: "TARGET_PROGRESS", appliedSeq: 995, lastSeq: 1000, bytes: 0, copyGoalBytes: 0, atMs: 20 });
    expect(h.state()).toBe(MigrationState.Cutover);
  });

  it("a target still copying shows the copy's goal and its ETA; once the copy is in, the lag's", async () => {
    const h = harness();
    await h.startCatchingUp();
    h.progress(0, 1000, 1_000, 10_000);
    await h.advance(1000);
    h.progress(0, 1000, 3_000, 10_000);
    expect(h.ctx().progress).toMatchObject({ appliedSeq: 0, bytesCopied: 3_000, copyGoalBytes: 10_000, etaMs: 3500 });
    expect(h.state()).toBe(MigrationState.CatchingUp);
    await h.advance(1000);
    h.progress(800, 1000, 10_500, 10_000); // loaded, replaying: the lag closed 1000 → 200 in 2 s
    expect(h.ctx().progress).toMatchObject({ appliedSeq: 800, bytesCopied: 10_500, etaMs: 475 });
  });
});

describe("migrationMachine: pause / resume", () => {
  it("no cutover while paused even when caught up; progress still recorded; RESUME → cutover on the next report", async () => {
    const h = harness();
    await h.startCatchingUp();
    h.progress(100, 1000);
    h.actor.send({ type: "PAUSE" });
    expect(h.state()).toBe(MigrationState.Paused);
    expect(h.ctx().pausedFrom).toBe("catchingUp");
    await flush(); // the persist write happens once the transition committed
    expect(h.record().value).toEqual({ running: "paused" });
    await h.advance(1000);
    h.progress(1000, 1000);
    await h.advance(5000);
    expect(h.state()).toBe(MigrationState.Paused);
    expect(h.calls.cutover).toHaveLength(0);
    expect(h.ctx().progress.appliedSeq).toBe(1000);
    expect(h.watch().cleanedUp).toBe(false); // the target keeps following
    h.actor.send({ type: "PAUSE" }); // ignored
    h.actor.send({ type: "RESUME" });
    expect(h.state()).toBe(MigrationState.CatchingUp);
    expect(h.calls.cutover).toHaveLength(0);
    await h.catchUp();
    expect(h.calls.cutover).toHaveLength(1);
    await h.advance(500);
    expect(h.state()).toBe(MigrationState.Completed);
    expect(h.persisted).toEqual(["planned", "preparing", "catchingUp", "paused", "catchingUp", "cutover", "draining", "completed"]);
  });

  it("pausing during prepare abandons the step; RESUME re-runs it (idempotent: one learner, one write)", async () => {
    const h = harness();
    h.plans.prepare.push("lost"); // applied, reply never comes
    await h.start();
    expect(h.state()).toBe(MigrationState.Preparing);
    h.actor.send({ type: "PAUSE" });
    expect(h.state()).toBe(MigrationState.Paused);
    expect(h.calls.prepare[0]!.signal.aborted).toBe(true);
    await h.advance(5000); // no step timer runs while paused
    expect(h.calls.prepare).toHaveLength(1);
    h.actor.send({ type: "RESUME" });
    expect(h.state()).toBe(MigrationState.Preparing);
    await flush();
    expect(h.state()).toBe(MigrationState.CatchingUp);
    expect(h.calls.prepare).toHaveLength(2);
    expect(h.cluster.shard(1).learners).toEqual(["n3"]);
    expect(h.cluster.placementWrites).toBe(1);
  });

  it("PAUSE is ignored where canPause is false (planned, cutover, draining)", async () => {
    const h = harness();
    h.actor.start();
    h.actor.send({ type: "PAUSE" });
    expect(h.state()).toBe(MigrationState.Planned);
    h.actor.send({ type: "START", atMs: 0 });
    await flush();
    h.plans.cutover.push("hang");
    await h.catchUp();
    expect(h.state()).toBe(MigrationState.Cutover);
    h.actor.send({ type: "PAUSE" });
    expect(h.state()).toBe(MigrationState.Cutover);
  });
});

describe("migrationMachine: cancel", () => {
  const cases: { name: string; at: MigrationState; setup: (h: ReturnType<typeof harness>) => Promise<void> }[] = [
    { name: "planned", at: MigrationState.Planned, setup: async (h) => void h.actor.start() },
    {
      name: "preparing (prepare applied, reply lost)",
      at: MigrationState.Preparing,
      setup: async (h) => {
        h.plans.prepare.push("lost");
        await h.start();
      },
    },
    { name: "catchingUp", at: MigrationState.CatchingUp, setup: (h) => h.startCatchingUp() },
    {
      name: "paused",
      at: MigrationState.Paused,
      setup: async (h) => {
        await h.startCatchingUp();
        h.actor.send({ type: "PAUSE" });
      },
    },
  ];
  for (const c of cases) {
    it(`CANCEL in ${c.name} → rollingBack → rolledBack; rollback called once; placement as before`, async () => {
      const h = harness();
      await c.setup(h);
      expect(h.state()).toBe(c.at);
      expect(canCancel(h.state())).toBe(true);
      h.actor.send({ type: "CANCEL", reason: "operator" });
      expect(h.state()).toBe(MigrationState.RollingBack);
      await h.advance(5000);
      expect(h.state()).toBe(MigrationState.RolledBack);
      expect(h.calls.rollback.map((r) => r.input)).toEqual([{ transfer: MOVE, attempt: 1 }]);
      expect(h.cluster.placement.shards).toEqual(ORIGINAL.shards);
      expect(h.ctx().reason).toBe("cancelled: operator");
      expect(h.calls.cutover).toHaveLength(0);
      expect(h.record().value).toBe("rolledBack");
      expect(h.persisted.slice(-2)).toEqual(["rollingBack", "rolledBack"]);
      if (h.watches.length > 0) expect(h.watch().cleanedUp).toBe(true);
    });
  }

  it("CANCEL after the cutover started is ignored (the cutover is not interrupted)", async () => {
    const h = harness();
    await h.startCatchingUp();
    h.plans.cutover.push("hang");
    await h.catchUp();
    h.actor.send({ type: "CANCEL" });
    expect(h.state()).toBe(MigrationState.Cutover);
    await h.advance(1000 + 100); // step timeout, back-off, retry succeeds
    expect(h.state()).toBe(MigrationState.Draining);
    h.actor.send({ type: "CANCEL" });
    await h.advance(500);
    expect(h.state()).toBe(MigrationState.Completed);
    expect(h.calls.rollback).toHaveLength(0);
  });
});

describe("migrationMachine: target failure", () => {
  it("TARGET_DOWN in preparing / catchingUp / paused → automatic rollback with the reason recorded", async () => {
    for (const where of ["preparing", "catchingUp", "paused"] as const) {
      const h = harness();
      if (where === "preparing") h.plans.prepare.push("hang");
      await h.start();
      if (where === "paused") h.actor.send({ type: "PAUSE" });
      expect(h.state(), where).toBe(where);
      h.watch().send({ type: "TARGET_DOWN" });
      await flush();
      expect(h.state(), where).toBe(MigrationState.RolledBack);
      expect(h.ctx().reason).toBe("target n3 down");
      expect(h.ctx().targetDown).toBe(true);
      expect(h.calls.rollback).toHaveLength(1);
      expect(h.cluster.placement.shards).toEqual(ORIGINAL.shards);
    }
  });

  it("TARGET_DOWN while the cutover is in flight and did not land → rolled back", async () => {
    const h = harness();
    await h.startCatchingUp();
    h.plans.cutover.push("hang");
    await h.catchUp();
    h.watch().send({ type: "TARGET_DOWN" });
    await flush();
    expect(h.state()).toBe(MigrationState.RolledBack);
    expect(h.calls.cutover[0]!.signal.aborted).toBe(true);
    expect(h.cluster.placement.shards).toEqual(ORIGINAL.shards);
  });

  it("TARGET_DOWN while the cutover is in flight and DID land → the rollback sees it and the migration completes", async () => {
    const h = harness();
    await h.startCatchingUp();
    h.plans.cutover.push("lost");
    await h.catchUp();
    expect(h.cluster.shard(1)).toEqual(cutOverShard1);
    h.watch().send({ type: "TARGET_DOWN" });
    await flush();
    expect(h.calls.rollback).toHaveLength(1);
    expect(h.state()).toBe(MigrationState.Draining);
    expect(h.ctx().reason).toBeUndefined();
    expect(h.ctx().lastError).toMatch(/found the cutover done/);
    await h.advance(500);
    expect(h.state()).toBe(MigrationState.Completed);
    expect(h.cluster.shard(1)).toEqual(cutOverShard1);
    expect(h.persisted).not.toContain("rolledBack");
  });

  it("after the cutover a dead target is not rolled back: drain, release, completed", async () => {
    const h = harness();
    await h.startCatchingUp();
    await h.catchUp();
    expect(h.state()).toBe(MigrationState.Draining);
    h.watch().send({ type: "TARGET_DOWN" });
    expect(h.state()).toBe(MigrationState.Draining);
    await h.advance(500);
    expect(h.state()).toBe(MigrationState.Completed);
    expect(h.ctx().targetDown).toBe(true);
    expect(h.calls.rollback).toHaveLength(0);
    expect(h.cluster.shard(1)).toEqual(cutOverShard1);
  });

  it("SOURCE_DOWN: before the cutover only recorded; while draining the drain and release are skipped", async () => {
    const h = harness();
    await h.startCatchingUp();
    h.watch().send({ type: "SOURCE_DOWN" });
    expect(h.state()).toBe(MigrationState.CatchingUp);
    expect(h.ctx().sourceDown).toBe(true);
    await h.catchUp();
    expect(h.state()).toBe(MigrationState.Completed); // known dead before draining: nothing to drain

    const h2 = harness();
    await h2.startCatchingUp();
    await h2.catchUp();
    await h2.advance(200);
    h2.watch().send({ type: "SOURCE_DOWN" });
    expect(h2.state()).toBe(MigrationState.Completed);
    await h2.advance(1000);
    expect(h2.calls.release).toHaveLength(0);
  });

  it("a target whose appliedSeq stops advancing for stallTimeoutMs is rolled back", async () => {
    const h = harness({ input: { stallTimeoutMs: 2000 } });
    await h.startCatchingUp();
    await h.advance(1500);
    h.progress(100, 1000); // advances: timer restarts
    await h.advance(1500);
    h.progress(100, 1000); // same seq: no restart
    expect(h.state()).toBe(MigrationState.CatchingUp);
    await h.advance(450);
    expect(h.state()).toBe(MigrationState.CatchingUp);
    await h.advance(50);
    expect(h.state()).toBe(MigrationState.RolledBack);
    expect(h.ctx().reason).toBe("target n3 stalled at 100 for 2000 ms");
  });
});

describe("migrationMachine: step failures", () => {
  it("a step that hangs times out, is retried with capped back-off, then the migration rolls back", async () => {
    const h = harness();
    h.plans.prepare.push("hang", "hang", "hang");
    await h.start();
    await h.advance(10_000);
    // tries at 0; timeout 1000 + back-off 100 → 1100; timeout 2100 + 150 (cap of 200) → 2250; timeout 3250
    expect(h.calls.prepare.map((c) => c.atMs)).toEqual([0, 1100, 2250]);
    expect(h.calls.prepare.map((c) => c.input.attempt)).toEqual([1, 2, 3]);
    expect(h.calls.rollback.map((c) => c.atMs)).toEqual([3250]);
    expect(h.state()).toBe(MigrationState.RolledBack);
    expect(h.ctx().reason).toBe("prepare failed 3 times: timed out");
    expect(h.errors).toEqual([
      { step: "prepare", error: "timed out", attempt: 1 },
      { step: "prepare", error: "timed out", attempt: 2 },
    ]);
    expect(h.calls.prepare.every((c) => c.signal.aborted)).toBe(true);
    expect(h.cluster.placement.shards).toEqual(ORIGINAL.shards);
    expect(migrationRetryDelay({ retryDelayMs: 100, retryDelayMaxMs: 1e9 }, 4)).toBe(800);
  });

  it("a transient error is retried and the attempt count resets on success", async () => {
    const h = harness();
    h.plans.prepare.push(new Error("no responders"));
    await h.start();
    expect(h.state()).toBe(MigrationState.Preparing);
    expect(h.ctx().attempts).toBe(1);
    expect(h.record().context).toMatchObject({ attempts: 1 }); // the back-off is persisted
    await h.advance(100);
    expect(h.state()).toBe(MigrationState.CatchingUp);
    expect(h.ctx().attempts).toBe(0);
    expect(h.errors).toEqual([{ step: "prepare", error: "no responders", attempt: 1 }]);
  });

  it("an obsolete transfer (TransferError) is not retried", async () => {
    const t = makeTransfer({ ...MOVE, to: "n1" }); // n1 already holds shard 1
    const h = harness({ input: { transfer: t } });
    await h.start();
    await flush();
    expect(h.calls.prepare).toHaveLength(1);
    expect(h.state()).toBe(MigrationState.RolledBack);
    expect(h.ctx().reason).toMatch(/^prepare: cannot prepare .* already holds a replica/);
  });

  it("cutover failures exhausted before commit → rolled back", async () => {
    const h = harness();
    await h.startCatchingUp();
    h.plans.cutover.push(new Error("a"), new Error("b"), new Error("c"));
    await h.catchUp();
    await h.advance(1000);
    expect(h.calls.cutover).toHaveLength(3);
    expect(h.state()).toBe(MigrationState.RolledBack);
    expect(h.ctx().reason).toBe("cutover failed 3 times: c");
    expect(h.cluster.placement.shards).toEqual(ORIGINAL.shards);
  });

  it("release failures exhausted after the cutover → failed (operator), placement stays cut over", async () => {
    const h = harness();
    await h.startCatchingUp();
    h.plans.release.push(new Error("x"), "hang", new Error("z"));
    await h.catchUp();
    await h.advance(500 + 100 + 1000 + 150);
    expect(h.calls.release).toHaveLength(3);
    expect(h.state()).toBe(MigrationState.Failed);
    expect(isFinal(h.state())).toBe(true);
    expect(h.ctx().reason).toBe("release failed 3 times: z");
    expect(h.calls.rollback).toHaveLength(0);
    expect(h.cluster.shard(1)).toEqual(cutOverShard1);
  });

  it("rollback failures exhausted → failed with both reasons", async () => {
    const h = harness();
    await h.startCatchingUp();
    h.plans.rollback.push(new Error("r1"), new Error("r2"), new Error("r3"));
    h.actor.send({ type: "CANCEL" });
    await h.advance(1000);
    expect(h.calls.rollback).toHaveLength(3);
    expect(h.state()).toBe(MigrationState.Failed);
    expect(h.ctx().reason).toBe("rollback (cancelled) failed 3 times: r3");
  });

  it("unbound effects fail loudly: retried, rolled back, and the unbound rollback ends in failed", async () => {
    const clock = new SimulatedClock();
    const actor = createActor(migrationMachine, { clock, input: { ...BASE, transfer: MOVE } });
    actor.start();
    actor.send({ type: "START", atMs: 0 });
    await advance(clock, 5000);
    const snap = actor.getSnapshot();
    expect(migrationStateOf(snap)).toBe(MigrationState.Failed);
    expect(snap.context.reason).toMatch(/'rollback' was not provided/);
  });
});

describe("migrationMachine: persisted in jade_migrations, resumed by a new coordinator", () => {
  /** the coordinator dies; a new one reads the record and resumes it with its own effects */
  function takeOver(old: ReturnType<typeof harness>, record = old.record()) {
    old.actor.stop();
    const h = harness({ cluster: old.cluster, snapshot: record });
    h.actor.start();
    return h;
  }

  it("planned: resumes waiting for START", async () => {
    const a = harness();
    a.actor.start();
    await flush();
    const b = takeOver(a);
    expect(b.state()).toBe(MigrationState.Planned);
    await flush();
    expect(b.calls.prepare).toHaveLength(0);
    b.actor.send({ type: "START", atMs: 0 });
    await flush();
    expect(b.state()).toBe(MigrationState.CatchingUp);
  });

  it("preparing with a prepare that landed but never answered: the re-run is a no-op", async () => {
    const a = harness();
    a.plans.prepare.push("lost");
    await a.start();
    expect(a.record().value).toEqual({ running: { preparing: "trying" } });
    expect(a.cluster.placementWrites).toBe(1);
    const b = takeOver(a);
    expect(b.calls.prepare).toHaveLength(1); // xstate re-ran the in-flight step
    expect(b.calls.prepare[0]!.input).toEqual({ transfer: MOVE, attempt: 1 });
    await flush();
    expect(b.state()).toBe(MigrationState.CatchingUp);
    expect(b.cluster.placementWrites).toBe(1);
    expect(b.cluster.placement.epoch).toBe(2);
    expect(b.watches).toHaveLength(1); // the watch restarted too
    await b.catchUp();
    await b.advance(500);
    expect(b.state()).toBe(MigrationState.Completed);
    expect(b.cluster.shard(1)).toEqual(cutOverShard1);
    expect(b.cluster.placementWrites).toBe(2);
  });

  it("catchingUp: the start time and the progress samples of the last state change survive; the ETA continues", async () => {
    const a = harness();
    await a.startCatchingUp();
    a.progress(0, 1000);
    await a.advance(1000);
    a.progress(300, 1100);
    // progress reports alone are not persisted (one write per state change): pause/resume writes
    await flush();
    expect(a.record().context.progress.appliedSeq).toBe(0);
    a.actor.send({ type: "PAUSE" });
    a.actor.send({ type: "RESUME" });
    await flush();
    const b = takeOver(a);
    expect(b.state()).toBe(MigrationState.CatchingUp);
    expect(b.ctx().progress).toMatchObject({ appliedSeq: 300, startedAtMs: 0 });
    expect(b.calls.prepare).toHaveLength(0);
    // the new coordinator's clock is its own; the samples carry wall-clock stamps
    b.watch().send({ type: "TARGET_PROGRESS", appliedSeq: 700, lastSeq: 1200, bytes: 1, copyGoalBytes: 0, atMs: 2000 });
    expect(b.ctx().progress.etaMs).toBe(1960);
    await b.catchUp();
    await b.advance(500);
    expect(b.state()).toBe(MigrationState.Completed);
  });

  it("paused stays paused; RESUME continues", async () => {
    const a = harness();
    await a.startCatchingUp();
    a.actor.send({ type: "PAUSE" });
    await flush();
    const b = takeOver(a);
    expect(b.state()).toBe(MigrationState.Paused);
    await b.catchUp();
    expect(b.state()).toBe(MigrationState.Paused);
    b.actor.send({ type: "RESUME" });
    await b.catchUp();
    await b.advance(500);
    expect(b.state()).toBe(MigrationState.Completed);
  });

  it("cutover that landed but never answered: the re-run succeeds without a second write", async () => {
    const a = harness();
    await a.startCatchingUp();
    a.plans.cutover.push("lost");
    await a.catchUp();
    expect(a.record().value).toEqual({ running: { cutover: "trying" } });
    const b = takeOver(a);
    expect(b.calls.cutover).toHaveLength(1);
    await flush();
    expect(b.state()).toBe(MigrationState.Draining);
    expect(b.cluster.placement.epoch).toBe(3);
    expect(b.cluster.placementWrites).toBe(2);
    await b.advance(500);
    expect(b.state()).toBe(MigrationState.Completed);
  });

  it("draining: the drain timer is re-armed (from its full length) and the source released once", async () => {
    const a = harness();
    await a.startCatchingUp();
    await a.catchUp();
    await a.advance(300);
    const b = takeOver(a);
    expect(b.state()).toBe(MigrationState.Draining);
    await b.advance(450);
    expect(b.calls.release).toHaveLength(0);
    await b.advance(50);
    expect(b.state()).toBe(MigrationState.Completed);
    expect(a.calls.release.length + b.calls.release.length).toBe(1);
    expect(b.cluster.released).toEqual(["n2"]);
  });

  it("a retry back-off is re-armed and the attempt count kept", async () => {
    const a = harness();
    a.plans.prepare.push(new Error("e1"), new Error("e2"));
    await a.start();
    await a.advance(100);
    expect(a.ctx().attempts).toBe(2);
    const b = takeOver(a);
    b.plans.prepare.push(new Error("e3"));
    await b.advance(150);
    expect(b.calls.prepare).toHaveLength(1);
    await flush();
    expect(b.state()).toBe(MigrationState.RolledBack); // third failure in all: the budget was kept
    expect(b.ctx().reason).toBe("prepare failed 3 times: e3");
  });

  it("rollingBack with a rollback that landed but never answered: the re-run is a no-op", async () => {
    const a = harness();
    await a.startCatchingUp();
    a.plans.rollback.push("lost");
    a.actor.send({ type: "CANCEL" });
    await flush();
    expect(a.cluster.placement.shards).toEqual(ORIGINAL.shards);
    const writes = a.cluster.placementWrites;
    const b = takeOver(a);
    await flush();
    expect(b.state()).toBe(MigrationState.RolledBack);
    expect(b.calls.rollback).toHaveLength(1);
    expect(b.cluster.placementWrites).toBe(writes);
    expect(b.ctx().reason).toBe("cancelled");
  });

  it("a stale record (later writes lost): the cutover already happened, the re-run steps are no-ops", async () => {
    const a = harness();
    await a.startCatchingUp();
    const stale = a.record();
    await a.catchUp();
    await a.advance(500);
    expect(a.state()).toBe(MigrationState.Completed);
    const writes = a.cluster.placementWrites;

    // resumed from catchingUp: catches up, cutover finds it done, the release is repeated harmlessly
    const b = takeOver(a, stale);
    expect(b.state()).toBe(MigrationState.CatchingUp);
    await b.catchUp();
    await b.advance(500);
    expect(b.state()).toBe(MigrationState.Completed);
    expect(b.cluster.placementWrites).toBe(writes);
    expect(b.cluster.shard(1)).toEqual(cutOverShard1);

    // resumed from catchingUp, then the target dies: the rollback must not undo the cutover
    const c = takeOver(b, stale);
    c.watch().send({ type: "TARGET_DOWN" });
    await flush();
    expect(c.calls.rollback).toHaveLength(1);
    expect(c.state()).toBe(MigrationState.Draining);
    await c.advance(500);
    expect(c.state()).toBe(MigrationState.Completed);
    expect(c.cluster.shard(1)).toEqual(cutOverShard1);
    expect(c.cluster.placementWrites).toBe(writes);

    // resumed from preparing after completion: prepare reports the cutover done → draining
    const d = harness({ cluster: c.cluster });
    d.actor.start();
    d.actor.send({ type: "START", atMs: 0 });
    await flush();
    expect(d.state()).toBe(MigrationState.Draining);
    expect(d.cluster.placementWrites).toBe(writes);
  });
});

describe("migrationMachine: states and input", () => {
  it("predicates are total over the state union", () => {
    const all = Object.values(MigrationState);
    expect(all.filter(isActive)).toEqual(["preparing", "catchingUp", "paused", "cutover", "draining", "rollingBack"]);
    expect(all.filter(isFinal)).toEqual(["completed", "rolledBack", "failed"]);
    expect(all.filter(canPause)).toEqual(["preparing", "catchingUp"]);
    expect(all.filter(canCancel)).toEqual(["planned", "preparing", "catchingUp", "paused"]);
    for (const p of [isActive, isFinal, canPause, canCancel]) expect(() => p("nope" as MigrationState)).toThrow(/unhandled/);
  });

  it("rejects invalid inputs (the actor errors on start and maps to failed)", () => {
    expect(migrationInputProblems({ ...BASE, transfer: MOVE })).toEqual([]);
    expect(migrationInputProblems({ ...BASE, transfer: { ...MOVE, to: "n2" } })).toEqual([
      "transfer.to: from and to must differ",
    ]);
    expect(migrationInputProblems({ ...BASE, transfer: MOVE, stepTimeoutMs: 0, catchUpLagMax: -1 })).toHaveLength(2);
    const actor = createActor(migrationMachine, { input: { ...BASE, transfer: MOVE, drainMs: Number.NaN } });
    actor.subscribe({ error: () => {} });
    actor.start();
    expect(actor.getSnapshot().status).toBe("error");
    expect(migrationStateOf(actor.getSnapshot())).toBe(MigrationState.Failed);
  });
});
