/**
 * A leader's term in the simulation: the reconcile loop (planPlacement over live nodes, CAS on
 * the placement, FENCED on conflict), the migrations it plans or resumes, and transaction
 * recovery (txn-recovery.ts).
 */
import { createActor } from "xstate";
import {
  isFinal,
  MigrationState,
  migrationStateOf,
  resumeOptions,
  type MigrationActorRef,
  type MigrationInput,
  type PersistedMigration,
} from "../../src/machines/migration.ts";
import { learnersByShard, planPlacement, type Placement } from "../../src/runtime/placement.ts";
import { makeTransfer, type Transfer } from "../../src/runtime/transfer.ts";
import { COLLECTION, TIMING } from "./config.ts";
import { migrationBindings, simMigrationMachine } from "./machines.ts";
import type { Simulation } from "./simulator.ts";
import type { TxnHost } from "./txn-gateway.ts";
import { runRecovery } from "./txn-recovery.ts";
import { CasConflict, type Endpoint, type StoredPlacement, type World } from "./world.ts";

export interface MigrationRecord {
  payload: PersistedMigration;
  state: MigrationState;
  transfer: Transfer;
}

/** Everything the leader runs during one term: the reconcile loop and the migrations. */
export class LeaderTerm {
  stopped = false;
  private cache: { value: StoredPlacement | undefined; revision: number } | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private timer: number | undefined;
  private stopRecovery: (() => void) | undefined;
  private readonly migrations = new Map<string, MigrationActorRef>();

  constructor(
    readonly sim: Simulation,
    readonly ep: Endpoint,
    private readonly epoch: number,
    private readonly fenced: () => void,
    /** the leader's transactions: recovery runs while it leads */
    private readonly txn: TxnHost | undefined,
  ) {}

  get w(): World {
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
    if (this.txn) this.stopRecovery = runRecovery(this.txn);
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.w.log(`${this.ep.name} term ${this.epoch} ends`);
    if (this.timer !== undefined) this.w.cancel(this.timer);
    this.stopRecovery?.();
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

  /**
   * The placement as this term last read or wrote it. The cache stands for the real coordinator's
   * watch of the entry, so it goes when the entry moves on (seed 2629: a CAS of this term timed
   * out, the term re-read the placement, then the CAS landed; the stale cache hid it forever).
   */
  private async readPlacement(): Promise<{ value: StoredPlacement | undefined; revision: number }> {
    if (this.cache && this.cache.revision === this.w.placement.revision) return this.cache;
    const r = await this.w.call(this.ep, () => this.w.placement.read(), TIMING.requestTimeoutMs);
    this.alive();
    this.cache = r;
    return r;
  }

  /** CAS-write `next` over `base`; on conflict: FENCED (another leader wrote) */
  private async write(next: Placement, baseRevision: number): Promise<StoredPlacement> {
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
      ...(current ? { learners: learnersByShard(current) } : {}),
    });
    // keep the learners of live migrations (not replicas); drop orphans. A learner belongs to
    // its migration, which removes it (rollback) or promotes it (cutover): like the real
    // coordinator, reconcile keeps it while its node looks dead (seed 1893: dropped here while
    // the target was partitioned, it was back before watchTarget saw it dead, and the migration
    // waited in catchingUp for a target that no longer followed the shard)
    const active = this.activeTargets();
    const shards = plan.shards.map((s) => {
      const learners = (current?.shards.find((c) => c.shard === s.shard)?.learners ?? []).filter(
        (l) => !s.replicas.includes(l) && active.has(`${s.shard}/${l}`),
      );
      return learners.length > 0 ? { ...s, learners } : { shard: s.shard, replicas: s.replicas };
    });
    const same = current !== undefined && JSON.stringify(current.shards) === JSON.stringify(shards);
    if (!same) {
      const next: Placement = { collection: COLLECTION, epoch: (current?.epoch ?? 0) + 1, shards };
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
  transform(fn: (p: Placement) => Placement, signal: AbortSignal): Promise<Placement> {
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
    const t = payload ? payload.context.transfer : transfer!;
    const base: MigrationInput = {
      transfer: t,
      catchUpLagMax: 1,
      stepTimeoutMs: 500,
      drainMs: 200,
      attemptsMax: 4,
      retryDelayMs: 100,
      retryDelayMaxMs: 400,
    };
    const actor = payload
      ? createActor(simMigrationMachine, { ...resumeOptions(payload), clock: w.clock })
      : createActor(simMigrationMachine, { input: base, clock: w.clock });
    migrationBindings.set(actor.system, { term: this, id });
    actor.subscribe({ error: (e) => w.violate("actor-error", `migration ${id} crashed: ${String(e)}`) });
    this.migrations.set(id, actor);
    actor.start();
    if (!payload) actor.send({ type: "START", atMs: w.now() });
    else if (migrationStateOf(actor.getSnapshot()) === MigrationState.Planned) actor.send({ type: "START", atMs: w.now() });
  }
}
