/**
 * One simulated node: its process incarnations (start / crash), the coordinator actor, the
 * replica actors of the shards its placement view gives it, its heartbeat and placement poll
 * loops, and its transactions. Effects are bound in machines.ts and txn-gateway.ts.
 */
import { createActor } from "xstate";
import type { CoordinatorActorRef, CoordinatorInput } from "../../src/machines/coordinator.ts";
import type { ReplicaActorRef, ReplicaInput } from "../../src/machines/replica.ts";
import { COLLECTION, TIMING } from "./config.ts";
import { coordinatorBindings, replicaBindings, simCoordinatorMachine, simReplicaMachine } from "./machines.ts";
import type { Simulation } from "./simulator.ts";
import { LeaderTerm } from "./term.ts";
import { ShardState } from "./log.ts";
import type { TxnHost } from "./txn-gateway.ts";
import type { Endpoint, StoredPlacement } from "./world.ts";

// ───────────────────────────── replica with its fake index ─────────────────────────────

export interface ReplicaHandle {
  shard: number;
  actor: ReplicaActorRef;
  /** the replica's fake index: what it read of the log, through the shard's sequencer; rebuilt by every restore */
  index: ShardState;
  name: string;
}

// ───────────────────────────── node ─────────────────────────────

export class SimNode implements Endpoint {
  incarnation = 0;
  up = false;
  partitionedUntil = 0;
  coordinator: CoordinatorActorRef | undefined;
  /** this incarnation's transactions (gateway and recovery), while it is up */
  txn: TxnHost | undefined;
  readonly replicas = new Map<number, ReplicaHandle>();
  private timers: number[] = [];
  view: StoredPlacement | undefined;

  constructor(
    readonly id: string,
    readonly sim: Simulation,
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
    this.txn = this.sim.txns?.host(this, ep);
    const lease = w.lease;
    const input: CoordinatorInput = {
      nodeId: this.name,
      leaseTtlMs: TIMING.leaseTtlMs,
      renewIntervalMs: TIMING.renewIntervalMs,
      acquireIntervalMs: TIMING.acquireIntervalMs,
      requestTimeoutMs: TIMING.requestTimeoutMs,
    };
    const actor = createActor(simCoordinatorMachine, { clock: w.clock, input });
    coordinatorBindings.set(actor.system, { node: this, ep });
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

  /** a leader term of this incarnation, run by its coordinator's `reconcile` while it leads */
  beginTerm(ep: Endpoint, epoch: number, fenced: () => void): LeaderTerm {
    return new LeaderTerm(this.sim, ep, epoch, fenced, this.txn);
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
    const index = new ShardState();
    const name = `${ep.name}/s${shard}`;
    const input: ReplicaInput = {
      collection: COLLECTION,
      shard,
      lagThresholdEntries: 2,
      snapshotEveryEntries: 4,
      snapshotIntervalMs: 0,
      retryDelayMs: 100,
      retryDelayMaxMs: 800,
    };
    const actor = createActor(simReplicaMachine, { clock: w.clock, input });
    replicaBindings.set(actor.system, { node: this, ep, index, name, shard });
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
    this.txn?.crash();
    this.txn = undefined;
    for (const r of this.replicas.values()) r.actor.stop();
    this.replicas.clear();
  }
}
