/**
 * Seeded simulation of a JadeVectorDB cluster (FoundationDB / TigerBeetle style).
 *
 * 3–5 nodes, each a process incarnation running a `coordinatorMachine` (bound to the simulated
 * lease KV), `replicaMachine`s for the shards the placement gives it (restore / follow /
 * snapshot bound to in-memory shard logs and a snapshot store), and — while it leads — a
 * reconcile loop (planPlacement over live nodes, CAS on the placement KV, FENCED on conflict)
 * plus `migrationMachine`s for rebalancing moves (applyPrepare / applyCutover / applyRollback
 * by CAS, persisted to a simulated `jade_migrations` and resumed by the next leader).
 *
 * One seed drives the configuration, the workload (appends to the shard logs: the
 * acknowledged writes) and every fault (request drop / delay / lost reply, partitions,
 * crashes + restarts, clock jumps). Invariants are checked after every timer event and, after
 * healing everything, at quiescence. See `runSimulation`.
 */
import { createActor, fromCallback, fromPromise, type AnyActorRef, type EventObject } from "xstate";
import {
  coordinatorMachine,
  coordinatorStateOf,
  isLeader,
  type AcquireInput,
  type AcquireOutput,
  type CoordinatorActorRef,
  type CoordinatorInput,
  type ReconcileInput,
  type ReleaseInput,
  type RenewInput,
  type RenewOutput,
} from "../../src/machines/coordinator.ts";
import {
  isFinal,
  migrationMachine,
  MigrationState,
  migrationStateOf,
  persistTo,
  resumeOptions,
  type CutoverOutput,
  type MigrationActorRef,
  type MigrationInput,
  type PersistedMigration,
  type PrepareOutput,
  type RollbackOutput,
  type StepInput,
  type WatchTargetInput,
} from "../../src/machines/migration.ts";
import {
  isApplying,
  isReadable,
  replicaMachine,
  replicaStateOf,
  ReplicaState,
  type FollowInput,
  type ReplicaActorRef,
  type ReplicaInput,
  type RestoreInput,
  type RestoreOutput,
  type SnapshotInput,
  type SnapshotOutput,
} from "../../src/machines/replica.ts";
import { planPlacement } from "../../src/runtime/placement.ts";
import {
  applyCutover,
  applyPrepare,
  applyRollback,
  makeTransfer,
  transferPhase,
  type PlacementWithLearners,
  type Transfer,
} from "../../src/runtime/transfer.ts";
import {
  CasConflict,
  DigestMap,
  fmtPlacement,
  InvariantViolation,
  World,
  type Endpoint,
  type LogEntry,
  type StoredPlacement,
} from "./world.ts";

// ───────────────────────────── configuration ─────────────────────────────

export const COLLECTION = "docs";

export const TIMING = {
  leaseTtlMs: 3000,
  renewIntervalMs: 600,
  acquireIntervalMs: 400,
  requestTimeoutMs: 300,
  heartbeatMs: 400,
  nodeDeadAfterMs: 1600,
  reconcileEveryMs: 500,
  placementPollMs: 400,
} as const;

export interface SimOptions {
  /** simulated ms of the fault phase (workload + faults) */
  faultPhaseMs?: number;
  /** max simulated ms after healing for the cluster to converge */
  convergeWithinMs?: number;
  /** deliberately broken components, to prove the checkers catch them */
  broken?: { leaseIgnoresRevisions?: boolean; replicaSkipsEntry?: boolean };
  traceSize?: number;
}

export interface SimResult {
  seed: number;
  ok: boolean;
  invariant?: string;
  message?: string;
  trace: string[];
  stats: { nodes: number; shards: number; rf: number; events: number; simMs: number; terms: number; migrations: number; appends: number };
}

// ───────────────────────────── replica with its fake index ─────────────────────────────

/** The index of one replica actor: what it applied, in order. Rebuilt by every restore. */
class FakeIndex {
  seq = 0;
  state = new DigestMap();
  /** appliedSeq of the machine context last seen since the last restore (monotonic) */
  lastSeenApplied = 0;
}

interface ReplicaHandle {
  shard: number;
  actor: ReplicaActorRef;
  index: FakeIndex;
  name: string;
}

// ───────────────────────────── node ─────────────────────────────

class SimNode implements Endpoint {
  incarnation = 0;
  up = false;
  partitionedUntil = 0;
  coordinator: CoordinatorActorRef | undefined;
  readonly replicas = new Map<number, ReplicaHandle>();
  private timers: number[] = [];
  view: StoredPlacement | undefined;

  constructor(
    readonly id: string,
    private readonly sim: Simulation,
  ) {}

  get name(): string {
    return `${this.id}~${this.incarnation}`;
  }
  alive(): boolean {
    return this.up;
  }
  partitioned(): boolean {
    return this.sim.world.now() < this.partitionedUntil;
  }
  /** an endpoint bound to this incarnation: requests of a dead incarnation never answer */
  endpoint(): Endpoint {
    const inc = this.incarnation;
    return {
      name: this.name,
      alive: () => this.up && this.incarnation === inc,
      partitioned: () => this.partitioned(),
    };
  }

  start(): void {
    const w = this.sim.world;
    this.incarnation += 1;
    this.up = true;
    this.view = undefined;
    w.log(`${this.name} starts`);
    const ep = this.endpoint();
    const lease = w.lease;
    const machine = coordinatorMachine.provide({
      actors: {
        acquire: fromPromise<AcquireOutput, AcquireInput>(({ input }) => w.call(ep, () => lease.create(input.nodeId))),
        renew: fromPromise<RenewOutput, RenewInput>(({ input }) => w.call(ep, () => lease.update(input.nodeId, input.revision))),
        release: fromPromise<void, ReleaseInput>(({ input }) => w.call(ep, () => lease.delete(input.revision))),
        reconcile: fromCallback<EventObject, ReconcileInput>(({ input, sendBack }) => {
          const term = new LeaderTerm(this.sim, this, ep, input.epoch, () => sendBack({ type: "FENCED" }));
          term.start();
          return () => term.stop();
        }),
      },
      actions: {
        notifyState: (_, p) => w.log(`${ep.name} coordinator ${p.state}${p.epoch !== null ? ` epoch=${p.epoch}` : ""}`),
        reportError: (_, p) => w.log(`${ep.name} coordinator error during ${p.during}: ${p.error}`),
      },
    });
    const input: CoordinatorInput = {
      nodeId: this.name,
      leaseTtlMs: TIMING.leaseTtlMs,
      renewIntervalMs: TIMING.renewIntervalMs,
      acquireIntervalMs: TIMING.acquireIntervalMs,
      requestTimeoutMs: TIMING.requestTimeoutMs,
    };
    const actor = createActor(machine, { clock: w.clock, input });
    actor.subscribe({ error: (e) => w.violate("actor-error", `${ep.name} coordinator crashed: ${String(e)}`) });
    this.coordinator = actor;
    // the lease watch: delivered with latency, lost while partitioned
    const watcher = (holder: string | null, revision: number) => {
      if (!ep.alive() || this.partitioned() || w.chance(0.1)) return;
      w.later(() => {
        if (ep.alive() && actor.getSnapshot().status === "active") actor.send({ type: "LEASE_OBSERVED", holder, revision });
      }, w.latency());
    };
    lease.watchers.push(watcher);
    this.timers = [];
    actor.start();
    this.loop(TIMING.heartbeatMs, () => {
      const now = () => w.now();
      void w.call(ep, () => w.heartbeats.set(this.id, now()), TIMING.requestTimeoutMs).catch(() => {});
    });
    this.loop(TIMING.placementPollMs, () => {
      void w
        .call(ep, () => w.placement.read(), TIMING.requestTimeoutMs)
        .then(({ value }) => {
          if (ep.alive()) this.applyView(value);
        })
        .catch(() => {});
    });
  }

  private loop(everyMs: number, fn: () => void): void {
    const inc = this.incarnation;
    const tick = () => {
      if (!this.up || this.incarnation !== inc) return;
      fn();
      this.timers.push(this.sim.world.later(tick, everyMs));
    };
    this.timers.push(this.sim.world.later(tick, this.sim.world.int(0, everyMs)));
  }

  /** run replicas for the shards this node holds (replica or learner) in the placement it saw */
  applyView(p: StoredPlacement | undefined): void {
    if (!p) return;
    if (this.view && p.epoch < this.view.epoch) return; // stale read
    this.view = p;
    const want = new Set<number>();
    for (const s of p.shards) if (s.replicas.includes(this.id) || (s.learners ?? []).includes(this.id)) want.add(s.shard);
    for (const [shard, r] of this.replicas) {
      if (!want.has(shard)) {
        this.sim.world.log(`${r.name} closed (left the placement)`);
        r.actor.send({ type: "STOP" });
        r.actor.stop();
        this.replicas.delete(shard);
      }
    }
    for (const shard of want) if (!this.replicas.has(shard)) this.startReplica(shard);
  }

  private startReplica(shard: number): void {
    const w = this.sim.world;
    const ep = this.endpoint();
    const index = new FakeIndex();
    const name = `${ep.name}/s${shard}`;
    const log = w.logs[shard]!;
    const broken = this.sim.options.broken;
    const machine = replicaMachine.provide({
      actors: {
        restore: fromPromise<RestoreOutput, RestoreInput>(async () => {
          await w.sleep(w.latency() + 10);
          if (!ep.alive()) return new Promise<never>(() => {});
          if (this.partitioned() || w.chance(0.03)) throw new Error("object store unavailable");
          const snap = w.snapshots[shard];
          index.seq = snap?.seq ?? 0;
          index.state = snap ? snap.state.clone() : new DigestMap();
          index.lastSeenApplied = 0;
          w.log(`${name} restored snapshot @${index.seq}`);
          return { snapshotSeq: index.seq };
        }),
        follow: fromCallback<EventObject, FollowInput>(({ input, sendBack }) => {
          let next = input.fromSeq;
          let stopped = false;
          if (next !== index.seq + 1) {
            w.violate("replica-prefix", `${name} follow from ${next} but its index is at ${index.seq}`);
          }
          const tick = () => {
            if (stopped || !ep.alive()) return;
            if (!this.partitioned()) {
              if (w.chance(0.005)) {
                sendBack({ type: "FOLLOW_FAILED", error: "consumer deleted" });
                return;
              }
              const n = w.int(1, 3);
              let applied = 0;
              while (applied < n && next <= log.lastSeq) {
                const e: LogEntry = log.entries[next - 1]!;
                if (e.seq !== index.seq + 1) w.violate("replica-prefix", `${name} applies ${e.seq} after ${index.seq}`);
                if (!(broken?.replicaSkipsEntry && e.seq === 3)) index.state.apply(e);
                index.seq = e.seq;
                next += 1;
                applied += 1;
              }
              sendBack({ type: "PROGRESS", appliedSeq: index.seq, lastSeq: log.lastSeq });
              if (next > log.lastSeq) {
                // caught up: idle until the next append (delivered with latency)
                log.waitForAppend(() => {
                  if (!stopped) w.later(tick, w.latency());
                });
                return;
              }
            }
            w.later(tick, w.int(1, 6) * 10);
          };
          w.later(tick, w.latency());
          return () => {
            stopped = true;
          };
        }),
        snapshot: fromPromise<SnapshotOutput, SnapshotInput>(async () => {
          const seq = index.seq;
          const state = index.state.clone();
          await w.sleep(w.latency() + 20);
          if (!ep.alive()) return new Promise<never>(() => {});
          if (this.partitioned()) throw new Error("object store unavailable");
          const cur = w.snapshots[shard];
          if (!cur || cur.seq < seq) w.snapshots[shard] = { seq, state };
          return { seq };
        }),
      },
      actions: {
        notifyState: (_, p) => w.log(`${name} ${p.state}`),
        reportFailure: (_, p) => w.log(`${name} failed (${p.retries}): ${p.error}`),
      },
    });
    const input: ReplicaInput = {
      collection: COLLECTION,
      shard,
      lagThresholdEntries: 2,
      snapshotEveryEntries: 4,
      snapshotIntervalMs: 0,
      retryDelayMs: 100,
      retryDelayMaxMs: 800,
    };
    const actor = createActor(machine, { clock: w.clock, input });
    actor.subscribe({ error: (e) => w.violate("actor-error", `${name} crashed: ${String(e)}`) });
    this.replicas.set(shard, { shard, actor, index, name });
    actor.start();
  }

  /** crash: every actor stops at once, in-memory state lost; in-flight requests may still land */
  crash(): void {
    const w = this.sim.world;
    w.log(`${this.name} CRASHES`);
    this.up = false;
    for (const t of this.timers) w.cancel(t);
    this.timers = [];
    this.coordinator?.stop(); // runs reconcile's cleanup (the leader term stops) — no release
    this.coordinator = undefined;
    for (const r of this.replicas.values()) r.actor.stop();
    this.replicas.clear();
  }
}

// ───────────────────────────── the leader's term ─────────────────────────────

interface MigrationRecord {
  payload: PersistedMigration;
  state: MigrationState;
  transfer: Transfer;
}

/** Everything the leader runs during one term: the reconcile loop and the migrations. */
class LeaderTerm {
  private stopped = false;
  private cache: { value: StoredPlacement | undefined; revision: number } | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private timer: number | undefined;
  private readonly migrations = new Map<string, MigrationActorRef>();

  constructor(
    private readonly sim: Simulation,
    private readonly node: SimNode,
    private readonly ep: Endpoint,
    private readonly epoch: number,
    private readonly fenced: () => void,
  ) {}

  private get w(): World {
    return this.sim.world;
  }

  start(): void {
    this.w.log(`${this.ep.name} term ${this.epoch} begins`);
    // resume the migrations a previous term left unfinished
    for (const [id, rec] of this.sim.migrations) {
      if (!isFinal(rec.state)) this.runMigration(id, rec.payload);
    }
    const tick = () => {
      if (this.stopped) return;
      void this.serial(() => this.reconcileOnce()).catch(() => {});
      this.timer = this.w.later(tick, TIMING.reconcileEveryMs);
    };
    this.timer = this.w.later(tick, 0);
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.w.log(`${this.ep.name} term ${this.epoch} ends`);
    if (this.timer !== undefined) this.w.cancel(this.timer);
    for (const a of this.migrations.values()) a.stop();
    this.migrations.clear();
  }

  /** placement reads and writes of this term run one at a time */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.chain.then(fn, fn);
    this.chain = p.catch(() => {});
    return p;
  }

  private alive(): void {
    if (this.stopped || !this.ep.alive()) throw new Error("term over");
  }

  private async readPlacement(): Promise<{ value: StoredPlacement | undefined; revision: number }> {
    if (this.cache) return this.cache;
    const r = await this.w.call(this.ep, () => this.w.placement.read(), TIMING.requestTimeoutMs);
    this.alive();
    this.cache = r;
    return r;
  }

  /** CAS-write `next` over `base`; on conflict: FENCED (another leader wrote) */
  private async write(next: PlacementWithLearners, baseRevision: number): Promise<StoredPlacement> {
    this.alive();
    const value: StoredPlacement = { ...next, leaderEpoch: this.epoch, writer: this.ep.name };
    try {
      const revision = await this.w.call(this.ep, () => this.w.placement.cas(value, baseRevision), TIMING.requestTimeoutMs);
      this.alive();
      this.cache = { value, revision }; // our own write applies locally at once
      return value;
    } catch (e) {
      this.cache = undefined; // unknown outcome: re-read next time
      if (e instanceof CasConflict && !this.stopped) {
        this.w.log(`${this.ep.name} term ${this.epoch} FENCED: ${e.message}`);
        this.fenced();
      }
      throw e;
    }
  }

  private liveNodes(): string[] {
    const now = this.w.now();
    return [...this.w.heartbeats].filter(([, at]) => now - at <= TIMING.nodeDeadAfterMs).map(([id]) => id);
  }

  private activeTargets(): Set<string> {
    const keys = new Set<string>();
    for (const rec of this.sim.migrations.values()) {
      if (!isFinal(rec.state)) keys.add(`${rec.transfer.shard}/${rec.transfer.to}`);
    }
    return keys;
  }

  private async reconcileOnce(): Promise<void> {
    this.alive();
    const members = await this.w.call(this.ep, () => this.liveNodes(), TIMING.requestTimeoutMs);
    this.alive();
    const { value: current, revision } = await this.readPlacement();
    if (members.length === 0) return;
    const sim = this.sim;
    const plan = planPlacement({
      collection: COLLECTION,
      shards: sim.shardCount,
      replicas: sim.rf,
      nodes: members,
      current: current ? { collection: current.collection, epoch: current.epoch, shards: current.shards.map((s) => ({ shard: s.shard, replicas: s.replicas })) } : undefined,
    });
    // keep the learners of live migrations (on live nodes, not replicas); drop orphans
    const active = this.activeTargets();
    const shards = plan.shards.map((s) => {
      const learners = (current?.shards.find((c) => c.shard === s.shard)?.learners ?? []).filter(
        (l) => members.includes(l) && !s.replicas.includes(l) && active.has(`${s.shard}/${l}`),
      );
      return learners.length > 0 ? { ...s, learners } : { shard: s.shard, replicas: s.replicas };
    });
    const same = current !== undefined && JSON.stringify(current.shards) === JSON.stringify(shards);
    if (!same) {
      const next: PlacementWithLearners = { collection: COLLECTION, epoch: (current?.epoch ?? 0) + 1, shards };
      await this.write(next, revision);
      return;
    }
    // stable: rebalance with a migration (one at a time)
    if (active.size > 0 || !current || this.sim.migrations.size >= 6) return;
    const load = new Map<string, number>(members.map((n) => [n, 0]));
    for (const s of current.shards) for (const n of s.replicas) if (load.has(n)) load.set(n, load.get(n)! + 1);
    const sorted = [...load].sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1));
    const [minNode, minLoad] = sorted[0]!;
    const [maxNode, maxLoad] = sorted.at(-1)!;
    if (maxLoad - minLoad <= 1 || !this.w.chance(0.5)) return;
    const s = current.shards.find((x) => x.replicas.includes(maxNode) && !x.replicas.includes(minNode));
    if (!s) return;
    const transfer = makeTransfer({
      collection: COLLECTION,
      uid: "u1",
      shard: s.shard,
      from: maxNode,
      to: minNode,
      reason: "rebalance",
      createdAt: "2026-01-01T00:00:00.000Z",
    });
    const existing = this.sim.migrations.get(transfer.id);
    if (existing && !isFinal(existing.state)) return;
    this.w.log(`${this.ep.name} term ${this.epoch} plans migration ${transfer.id} s${s.shard} ${maxNode}→${minNode}`);
    this.runMigration(transfer.id, undefined, transfer);
  }

  /** a placement transform by CAS (serialised with reconcile; conflict → FENCED) */
  private transform(fn: (p: PlacementWithLearners) => PlacementWithLearners, signal: AbortSignal): Promise<PlacementWithLearners> {
    return this.serial(async () => {
      if (signal.aborted) throw new Error("aborted");
      const { value, revision } = await this.readPlacement();
      if (!value) throw new Error("no placement yet");
      if (signal.aborted) throw new Error("aborted");
      const next = fn(value);
      if (next === value) return value;
      return this.write(next, revision);
    });
  }

  private runMigration(id: string, payload?: PersistedMigration, transfer?: Transfer): void {
    const w = this.w;
    const sim = this.sim;
    const t = payload ? payload.context.transfer : transfer!;
    const machine = migrationMachine.provide({
      actors: {
        prepare: fromPromise<PrepareOutput, StepInput>(async ({ input, signal }) => {
          const p = await this.transform((pl) => applyPrepare(pl, input.transfer), signal);
          return { epoch: p.epoch, alreadyCutOver: transferPhase(p, input.transfer) === "cutOver" };
        }),
        cutover: fromPromise<CutoverOutput, StepInput>(async ({ input, signal }) => {
          const p = await this.transform((pl) => applyCutover(pl, input.transfer), signal);
          return { epoch: p.epoch };
        }),
        rollback: fromPromise<RollbackOutput, StepInput>(async ({ input, signal }) => {
          const p = await this.transform((pl) => applyRollback(pl, input.transfer), signal);
          return { epoch: p.epoch, alreadyCutOver: transferPhase(p, input.transfer) === "cutOver" };
        }),
        // tell the source to close its replica: it does once it sees the placement without it
        release: fromPromise<void, StepInput>(async () => {
          await w.call(this.ep, () => undefined, TIMING.requestTimeoutMs);
        }),
        watchTarget: fromCallback<EventObject, WatchTargetInput>(({ input, sendBack }) => {
          let stopped = false;
          let targetDown = false;
          let sourceDown = false;
          const tick = () => {
            if (stopped) return;
            const now = w.now();
            const dead = (id: string | null) =>
              id !== null && now - (w.heartbeats.get(id) ?? -Infinity) > TIMING.nodeDeadAfterMs;
            if (!targetDown && dead(input.transfer.to)) {
              targetDown = true;
              sendBack({ type: "TARGET_DOWN" });
            }
            if (!sourceDown && dead(input.transfer.from)) {
              sourceDown = true;
              sendBack({ type: "SOURCE_DOWN" });
            }
            const target = sim.nodes.find((n) => n.id === input.transfer.to);
            const r = target?.up && !target.partitioned() ? target.replicas.get(input.transfer.shard) : undefined;
            if (r && r.actor.getSnapshot().status === "active") {
              const st = replicaStateOf(r.actor.getSnapshot());
              if (isApplying(st)) {
                const c = r.actor.getSnapshot().context;
                sendBack({ type: "TARGET_PROGRESS", appliedSeq: c.appliedSeq, lastSeq: c.lastSeq, bytes: 0, atMs: now });
              }
            }
            w.later(tick, 200);
          };
          w.later(tick, 200);
          return () => {
            stopped = true;
          };
        }),
      },
      actions: {
        persist: persistTo((pid, pl, state) => {
          const prev = sim.migrations.get(pid);
          // a stopped (old-term) actor must not overwrite the record of its successor
          if (this.stopped && prev && prev.payload !== pl) return;
          sim.migrations.set(pid, { payload: pl, state, transfer: pl.context.transfer });
          w.log(`migration ${pid} ${state}${pl.context.reason ? ` (${pl.context.reason})` : ""}`);
        }),
        reportError: (_, p) => w.log(`migration ${id} ${p.step} attempt ${p.attempt}: ${p.error}`),
      },
    });
    const base: MigrationInput = {
      transfer: t,
      catchUpLagMax: 1,
      stepTimeoutMs: 500,
      drainMs: 200,
      maxAttempts: 4,
      retryDelayMs: 100,
      retryDelayMaxMs: 400,
    };
    const actor = payload
      ? createActor(machine, { ...resumeOptions(payload), clock: w.clock })
      : createActor(machine, { input: base, clock: w.clock });
    actor.subscribe({ error: (e) => w.violate("actor-error", `migration ${id} crashed: ${String(e)}`) });
    this.migrations.set(id, actor);
    actor.start();
    if (!payload) actor.send({ type: "START", atMs: w.now() });
    else if (migrationStateOf(actor.getSnapshot()) === MigrationState.Planned) actor.send({ type: "START", atMs: w.now() });
  }
}

// ───────────────────────────── the simulation ─────────────────────────────

export class Simulation {
  readonly world: World;
  readonly nodes: SimNode[] = [];
  readonly shardCount: number;
  readonly rf: number;
  readonly migrations = new Map<string, MigrationRecord>();
  appends = 0;
  /** per replica actor: last appliedSeq seen (monotone between restores) */
  private readonly seenApplied = new WeakMap<AnyActorRef, number>();

  constructor(
    readonly seed: number,
    readonly options: SimOptions = {},
  ) {
    // the configuration comes from the seed too (a separate stream so it does not shift)
    const cfg = new World(seed ^ 0x9e3779b9, TIMING.leaseTtlMs, 0);
    const nodeCount = cfg.int(3, 5);
    this.shardCount = cfg.int(2, 4);
    this.rf = Math.min(nodeCount, cfg.int(2, 3));
    this.world = new World(seed, TIMING.leaseTtlMs, this.shardCount, options.traceSize ?? 60);
    this.world.lease.brokenIgnoreRevisions = options.broken?.leaseIgnoresRevisions ?? false;
    for (let i = 1; i <= nodeCount; i++) this.nodes.push(new SimNode(`n${i}`, this));
  }

  leaders(): SimNode[] {
    return this.nodes.filter((n) => n.up && n.coordinator && isLeader(coordinatorStateOf(n.coordinator.getSnapshot())));
  }

  /** invariants that must hold at every instant */
  checkAlways = (): void => {
    const w = this.world;
    // 1. lease safety
    const leaders = this.leaders();
    if (leaders.length > 1) w.violate("lease-safety", `two leaders: ${leaders.map((n) => n.name).join(", ")}`);
    for (const l of leaders) {
      const e = w.lease.live();
      if (!e || e.holder !== l.name) {
        w.violate("lease-safety", `${l.name} believes it leads but the live lease is ${e ? `${e.holder}@${e.revision}` : "none"}`);
      }
    }
    // 3. replicas: appliedSeq monotone between restores; applied state = a prefix of the log
    for (const n of this.nodes) {
      for (const r of n.replicas.values()) {
        const snap = r.actor.getSnapshot();
        if (snap.status !== "active") continue;
        // cheap state read (replicaStateOf is the reference mapping; this runs after every event)
        const value = snap.value as string | { active: { readiness: string } };
        if (typeof value === "string") {
          this.seenApplied.delete(r.actor); // restoring / failed: the next restore rebuilds the index
          continue;
        }
        const st = value.active.readiness as ReplicaState;
        const applied = snap.context.appliedSeq;
        const prev = this.seenApplied.get(r.actor) ?? 0;
        if (applied < prev) w.violate("replica-monotone", `${r.name} appliedSeq went ${prev} → ${applied}`);
        this.seenApplied.set(r.actor, applied);
        if (applied > r.index.seq) w.violate("replica-prefix", `${r.name} claims ${applied} but applied ${r.index.seq}`);
        if (isReadable(st)) {
          const log = w.logs[r.shard]!;
          if (r.index.seq > log.lastSeq || r.index.state.digest !== log.prefixDigest[r.index.seq]) {
            w.violate("replica-prefix", `${r.name} (${st}) state at ${r.index.seq} is not the log prefix`);
          }
        }
      }
    }
  };

  /** crash/partition/jump/… schedule and the workload, for the fault phase */
  private scheduleFaults(phaseMs: number): void {
    const w = this.world;
    const cfg = { drop: w.rand() * 0.15, lostReply: w.rand() * 0.08, slow: w.rand() * 0.08, delayed: w.rand() * 0.08 };
    w.faults = cfg;
    w.log(`faults drop=${cfg.drop.toFixed(2)} lost=${cfg.lostReply.toFixed(2)} slow=${cfg.slow.toFixed(2)} delayed=${cfg.delayed.toFixed(2)}`);
    const faultCount = w.int(1, 5);
    for (let i = 0; i < faultCount; i++) {
      const at = w.int(500, phaseMs - 500);
      const node = w.pick(this.nodes);
      const kind = w.rand();
      const dur = w.int(300, 5000);
      if (kind < 0.4) {
        w.later(() => {
          if (!node.up) return;
          w.log(`${node.name} PARTITIONED for ${dur} ms`);
          node.partitionedUntil = Math.max(node.partitionedUntil, w.now() + dur);
        }, at);
      } else if (kind < 0.8) {
        w.later(() => {
          if (!node.up) return;
          node.crash();
          w.later(() => {
            if (!node.up && !this.healed) node.start();
          }, dur);
        }, at);
      } else {
        // a bounded jump of the simulated clock (every process sees it: a global stall)
        w.later(() => {
          const j = w.int(50, 1200);
          w.log(`CLOCK JUMP +${j} ms`);
          w.clock.set(w.now() + j);
        }, at);
      }
    }
    // workload: acknowledged writes
    let t = 0;
    let v = 0;
    for (;;) {
      t += w.int(20, 250);
      if (t >= phaseMs) break;
      const shard = w.int(0, this.shardCount - 1);
      const id = `p${w.int(0, 15)}`;
      const op = w.chance(0.15) ? "delete" : "upsert";
      const version = ++v;
      w.later(() => {
        w.logs[shard]!.append(op, id, version);
        this.appends += 1;
      }, t);
    }
  }

  healed = false;

  /** is the cluster converged: one leader, placement at RF on live nodes, every replica caught up */
  private converged(): string | undefined {
    const w = this.world;
    const leaders = this.leaders();
    if (leaders.length !== 1) return `${leaders.length} leaders`;
    const p = w.placement.value;
    if (!p) return "no placement";
    const live = this.nodes.filter((n) => n.up).map((n) => n.id);
    const rf = Math.min(this.rf, live.length);
    for (const [id, rec] of this.migrations) if (!isFinal(rec.state)) return `migration ${id} ${rec.state}`;
    for (const s of p.shards) {
      if (s.replicas.length !== rf) return `shard ${s.shard} has ${s.replicas.length} replicas, want ${rf}`;
      if ((s.learners ?? []).length > 0) return `shard ${s.shard} has learners ${s.learners!.join(",")}`;
      const log = w.logs[s.shard]!;
      for (const nid of s.replicas) {
        const node = this.nodes.find((n) => n.id === nid);
        const r = node?.replicas.get(s.shard);
        if (!r) return `${nid} runs no replica of shard ${s.shard}`;
        const snap = r.actor.getSnapshot();
        if (snap.status !== "active" || replicaStateOf(snap) !== ReplicaState.Serving) return `${r.name} not serving`;
        if (snap.context.appliedSeq !== log.lastSeq || r.index.seq !== log.lastSeq) {
          return `${r.name} at ${snap.context.appliedSeq}/${log.lastSeq}`;
        }
      }
    }
    for (const n of this.nodes) {
      for (const [shard, r] of n.replicas) {
        const s = p.shards.find((x) => x.shard === shard);
        if (!s || !s.replicas.includes(n.id)) return `${r.name} still runs outside the placement`;
      }
    }
    return undefined;
  }

  /** the end-state invariants, once converged (or when convergence timed out) */
  private checkFinal(): void {
    const w = this.world;
    const p = w.placement.value!;
    // 3. no acknowledged write lost; replicas identical
    for (const s of p.shards) {
      const log = w.logs[s.shard]!;
      for (const nid of s.replicas) {
        const r = this.nodes.find((n) => n.id === nid)!.replicas.get(s.shard)!;
        if (r.index.state.digest !== log.digest) {
          w.violate("no-lost-write", `${r.name} digest ${r.index.state.digest} != log ${log.digest} (${log.lastSeq} entries)`);
        }
      }
    }
    // 4. migrations end well; failed only with a reason
    for (const [id, rec] of this.migrations) {
      if (rec.state === MigrationState.Failed && !rec.payload.context.reason) {
        w.violate("migration-final", `migration ${id} failed without a reason`);
      }
    }
  }

  async run(): Promise<SimResult> {
    const w = this.world;
    const phaseMs = this.options.faultPhaseMs ?? 4000;
    const convergeMs = this.options.convergeWithinMs ?? 20_000;
    w.log(`seed ${this.seed}: ${this.nodes.length} nodes, ${this.shardCount} shards, rf ${this.rf}`);
    this.nodes.forEach((n, i) => w.later(() => n.start(), i * w.int(0, 50)));
    this.scheduleFaults(phaseMs);
    let ok = await w.runUntil(phaseMs, this.checkAlways);
    if (ok) {
      // heal: no more faults, partitions end, crashed nodes restart
      this.healed = true;
      w.faults = { drop: 0, lostReply: 0, slow: 0, delayed: 0 };
      const healedAt = w.now();
      w.log("HEAL");
      for (const n of this.nodes) {
        n.partitionedUntil = 0;
        if (!n.up) n.start();
      }
      // 5a. a leader within leaseTtl + acquireInterval (+ one request) of healing
      const leaderBound = TIMING.leaseTtlMs + TIMING.acquireIntervalMs + TIMING.requestTimeoutMs;
      ok = await w.runUntil(healedAt + leaderBound, this.checkAlways, () => this.leaders().length === 1);
      if (w.violations.length === 0 && !ok) w.violate("liveness-leader", `no leader within ${leaderBound} ms of healing`);
      if (w.violations.length === 0) {
        // 5b. RF and catch-up within a bound
        ok = await w.runUntil(healedAt + convergeMs, this.checkAlways, () => this.converged() === undefined);
        if (w.violations.length === 0 && !ok) {
          w.violate("liveness-converge", `not converged ${convergeMs} ms after healing: ${this.converged()} — placement ${fmtPlacement(w.placement.value)}`);
        }
        if (w.violations.length === 0) this.checkFinal();
      }
    }
    const terms = w.lease.terms.size;
    for (const n of this.nodes) if (n.up) n.crash();
    const v = w.violations[0];
    return {
      seed: this.seed,
      ok: !v,
      invariant: v?.invariant,
      message: v?.message,
      trace: w.trace(),
      stats: {
        nodes: this.nodes.length,
        shards: this.shardCount,
        rf: this.rf,
        events: w.events,
        simMs: w.now(),
        terms,
        migrations: this.migrations.size,
        appends: this.appends,
      },
    };
  }
}

export async function runSimulation(seed: number, options: SimOptions = {}): Promise<SimResult> {
  const sim = new Simulation(seed, options);
  try {
    return await sim.run();
  } catch (e) {
    const inv = e instanceof InvariantViolation ? e.invariant : "exception";
    return {
      seed,
      ok: false,
      invariant: inv,
      message: e instanceof Error ? (e.stack ?? e.message) : String(e),
      trace: sim.world.trace(),
      stats: { nodes: sim.nodes.length, shards: sim.shardCount, rf: sim.rf, events: sim.world.events, simMs: sim.world.now(), terms: 0, migrations: 0, appends: sim.appends },
    };
  }
}
