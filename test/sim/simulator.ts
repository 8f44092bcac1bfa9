/**
 * Seeded simulation of a JadeVectorDB cluster (FoundationDB / TigerBeetle style).
 *
 * 3–5 nodes, each a process incarnation running a `coordinatorMachine` (bound to the simulated
 * lease KV), `replicaMachine`s for the shards the placement gives it (restore / follow /
 * snapshot bound to in-memory shard logs and a snapshot store; each replica reads its log
 * through the shard's real TxnSequencer), and — while it leads — a reconcile loop
 * (planPlacement over live nodes, CAS on the placement KV, FENCED on conflict) plus
 * `migrationMachine`s for rebalancing moves (applyPrepare / applyCutover / applyRollback by
 * CAS, persisted to a simulated `jade_migrations` and resumed by the next leader) and
 * transaction recovery. Any live node is a gateway: its `transactionMachine`s take locks in a
 * simulated `jade_locks`, write records in `jade_txns` (the real TxnRecords), append prepares
 * and markers to the shard logs and ask replicas for votes; a crash kills them at any step.
 *
 * One seed drives the configuration, the workload (appends to the shard logs: the
 * acknowledged writes; and a handful of transactions) and every fault (request drop / delay /
 * lost reply, partitions, crashes + restarts, clock jumps). Invariants are checked after every
 * timer event, as each transaction entry lands, and, after healing everything, at quiescence.
 * See `runSimulation`.
 *
 * Layout: this file (the run, the faults, the invariants), world.ts (clock, PRNG, network, KV
 * stores), log.ts (shard logs and what reading one makes), kv.ts (JetStream KV buckets and
 * their client), clock.ts (the heap clock), node.ts (a node's incarnations), term.ts (a
 * leader's term: reconcile + migrations + recovery), machines.ts (the machines bound to the
 * world), txn.ts (the transactional workload) with txn-gateway.ts,
 * txn-recovery.ts and txn-checks.ts, config.ts (timings, option and result types), pool.ts +
 * worker.ts (seeds over threads).
 */
import type { AnyActorRef } from "xstate";
import { coordinatorStateOf, isLeader, type CoordinatorSnapshot } from "../../src/machines/coordinator.ts";
import { isFinal, MigrationState } from "../../src/machines/migration.ts";
import { isReadable, replicaStateOf, ReplicaState } from "../../src/machines/replica.ts";
import { TIMING, type SimOptions, type SimResult } from "./config.ts";
import { SimNode } from "./node.ts";
import type { MigrationRecord } from "./term.ts";
import { SimTxns } from "./txn.ts";
import { DELIVERY_DELAY_MAX_MS, fmtPlacement, InvariantViolation, World } from "./world.ts";

export { COLLECTION, TIMING, type SimOptions, type SimResult } from "./config.ts";

// ───────────────────────────── the simulation ─────────────────────────────

/**
 * `isLeader(coordinatorStateOf(snapshot))`, memoised per snapshot: snapshots are immutable and
 * an actor gets a new one on every transition, while `leaders()` runs after every event and
 * `snapshot.matches` is not cheap.
 */
const leaderBySnapshot = new WeakMap<CoordinatorSnapshot, boolean>();
function leadsIn(snapshot: CoordinatorSnapshot): boolean {
  let leads = leaderBySnapshot.get(snapshot);
  if (leads === undefined) {
    leads = isLeader(coordinatorStateOf(snapshot));
    leaderBySnapshot.set(snapshot, leads);
  }
  return leads;
}

export class Simulation {
  readonly world: World;
  readonly nodes: SimNode[] = [];
  readonly shardCount: number;
  readonly rf: number;
  readonly migrations = new Map<string, MigrationRecord>();
  /** the transactional workload, its gateways and recovery (undefined when the options turn it off) */
  readonly txns: SimTxns | undefined;
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
    this.txns = options.transactions === false ? undefined : new SimTxns(this);
    for (let i = 1; i <= nodeCount; i++) this.nodes.push(new SimNode(`n${i}`, this));
  }

  leaders(): SimNode[] {
    return this.nodes.filter((n) => n.up && n.coordinator && leadsIn(n.coordinator.getSnapshot()));
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
          if (r.index.seq > log.lastSeq || r.index.digest !== log.prefixDigest[r.index.seq]) {
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
    for (;;) {
      t += w.int(20, 250);
      if (t >= phaseMs) break;
      const shard = w.int(0, this.shardCount - 1);
      const id = `p${w.int(0, 15)}`;
      const op = w.chance(0.15) ? "delete" : "upsert";
      w.later(() => {
        w.logs[shard]!.appendPlain(op, id);
        this.appends += 1;
      }, t);
    }
    this.txns?.schedule(phaseMs);
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
    return this.txns?.quiescent();
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
        if (r.index.digest !== log.digest) {
          w.violate("no-lost-write", `${r.name} digest ${r.index.digest} != log ${log.digest} (${log.lastSeq} entries)`);
        }
      }
    }
    // 4. migrations end well; failed only with a reason
    for (const [id, rec] of this.migrations) {
      if (rec.state === MigrationState.Failed && !rec.payload.context.reason) {
        w.violate("migration-final", `migration ${id} failed without a reason`);
      }
    }
    // 6. transactions: atomic, finished, as told (txn-checks.ts)
    this.txns?.checks.final();
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
      // 5a. a leader within leaseTtl + acquireInterval (+ one request) of healing — counted from
      // when the last request sent before the heal can land: a late acquire may still take the
      // lease for a node that already gave up on it, and that lease must then expire
      const leaderBound = DELIVERY_DELAY_MAX_MS + TIMING.leaseTtlMs + TIMING.acquireIntervalMs + TIMING.requestTimeoutMs;
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
        txns: this.txns?.runs.size ?? 0,
        committed: this.txns?.committed() ?? 0,
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
      stats: { nodes: sim.nodes.length, shards: sim.shardCount, rf: sim.rf, events: sim.world.events, simMs: sim.world.now(), terms: 0, migrations: 0, appends: sim.appends, txns: sim.txns?.runs.size ?? 0, committed: 0 },
    };
  }
}
