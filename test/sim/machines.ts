/**
 * The coordinator, replica and migration machines bound to the simulated world.
 *
 * Bound once per process: `.provide()` builds a whole new machine, and doing it per actor cost
 * a tenth of the run time. Each actor finds what its effects act on (its node incarnation, fake
 * index, leader term) by its actor system, one per root actor, registered right after
 * `createActor` and before `start()`, so an effect never runs without its handle.
 */
import { fromCallback, fromPromise, type ActorSystem, type EventObject } from "xstate";
import {
  coordinatorMachine,
  type AcquireInput,
  type AcquireOutput,
  type ReconcileInput,
  type ReleaseInput,
  type RenewInput,
  type RenewOutput,
} from "../../src/machines/coordinator.ts";
import {
  migrationMachine,
  persistTo,
  type CutoverOutput,
  type PrepareOutput,
  type RollbackOutput,
  type StepInput,
  type WatchTargetInput,
} from "../../src/machines/migration.ts";
import {
  isApplying,
  replicaMachine,
  replicaStateOf,
  type FollowInput,
  type RestoreInput,
  type RestoreOutput,
  type SnapshotInput,
  type SnapshotOutput,
} from "../../src/machines/replica.ts";
import { applyCutover, applyPrepare, applyRollback, transferPhase } from "../../src/runtime/transfer.ts";
import { TIMING } from "./config.ts";
import type { ShardState } from "./log.ts";
import type { SimNode } from "./node.ts";
import type { LeaderTerm } from "./term.ts";
import type { Endpoint } from "./world.ts";

interface CoordinatorBinding {
  node: SimNode;
  ep: Endpoint;
}
interface ReplicaBinding {
  node: SimNode;
  ep: Endpoint;
  index: ShardState;
  name: string;
  shard: number;
}
interface MigrationBinding {
  term: LeaderTerm;
  id: string;
}
type AnyActorSystem = ActorSystem<any>; // (xstate does not export its alias)
export const coordinatorBindings = new WeakMap<AnyActorSystem, CoordinatorBinding>();
export const replicaBindings = new WeakMap<AnyActorSystem, ReplicaBinding>();
export const migrationBindings = new WeakMap<AnyActorSystem, MigrationBinding>();
const bindingOf = <B>(bindings: WeakMap<AnyActorSystem, B>, system: AnyActorSystem): B => {
  const b = bindings.get(system);
  if (!b) throw new Error("simulator: an actor ran an effect before its binding was registered");
  return b;
};

export const simCoordinatorMachine = coordinatorMachine.provide({
  actors: {
    acquire: fromPromise<AcquireOutput, AcquireInput>(({ input, system }) => {
      const { node, ep } = bindingOf(coordinatorBindings, system);
      const w = node.sim.world;
      return w.call(ep, () => w.lease.create(input.nodeId));
    }),
    renew: fromPromise<RenewOutput, RenewInput>(({ input, system }) => {
      const { node, ep } = bindingOf(coordinatorBindings, system);
      const w = node.sim.world;
      return w.call(ep, () => w.lease.update(input.nodeId, input.revision));
    }),
    release: fromPromise<void, ReleaseInput>(({ input, system }) => {
      const { node, ep } = bindingOf(coordinatorBindings, system);
      const w = node.sim.world;
      return w.call(ep, () => w.lease.delete(input.revision));
    }),
    reconcile: fromCallback<EventObject, ReconcileInput>(({ input, sendBack, system }) => {
      const { node, ep } = bindingOf(coordinatorBindings, system);
      const term = node.beginTerm(ep, input.epoch, () => sendBack({ type: "FENCED" }));
      term.start();
      return () => term.stop();
    }),
  },
  actions: {
    notifyState: ({ system }, p) => {
      const { node, ep } = bindingOf(coordinatorBindings, system);
      node.sim.world.log(`${ep.name} coordinator ${p.state}${p.epoch !== null ? ` epoch=${p.epoch}` : ""}`);
    },
    reportError: ({ system }, p) => {
      const { node, ep } = bindingOf(coordinatorBindings, system);
      node.sim.world.log(`${ep.name} coordinator error during ${p.during}: ${p.error}`);
    },
  },
});

export const simReplicaMachine = replicaMachine.provide({
  actors: {
    restore: fromPromise<RestoreOutput, RestoreInput>(async ({ system }) => {
      const { node, ep, index, name, shard } = bindingOf(replicaBindings, system);
      const w = node.sim.world;
      await w.sleep(w.latency() + 10);
      if (!ep.alive()) return new Promise<never>(() => {});
      if (node.partitioned() || w.chance(0.03)) throw new Error("object store unavailable");
      index.load(w.snapshots[shard]);
      w.log(`${name} restored snapshot @${index.seq}`);
      return { snapshotSeq: index.seq };
    }),
    follow: fromCallback<EventObject, FollowInput>(({ input, sendBack, system }) => {
      const { node, ep, index, name, shard } = bindingOf(replicaBindings, system);
      const w = node.sim.world;
      const log = w.logs[shard]!;
      const broken = node.sim.options.broken;
      let next = input.fromSeq;
      let stopped = false;
      if (next !== index.seq + 1) {
        w.violate("replica-prefix", `${name} follow from ${next} but its index is at ${index.seq}`);
      }
      const tick = () => {
        if (stopped || !ep.alive()) return;
        if (!node.partitioned()) {
          if (w.chance(0.005)) {
            sendBack({ type: "FOLLOW_FAILED", error: "consumer deleted" });
            return;
          }
          const n = w.int(1, 3);
          let applied = 0;
          while (applied < n && next <= log.lastSeq) {
            const e = log.entries[next - 1]!;
            if (e.seq !== index.seq + 1) w.violate("replica-prefix", `${name} applies ${e.seq} after ${index.seq}`);
            if (broken?.replicaSkipsEntry && e.seq === 3) index.seq = e.seq;
            else index.read(e);
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
    snapshot: fromPromise<SnapshotOutput, SnapshotInput>(async ({ system }) => {
      const { node, ep, index, shard } = bindingOf(replicaBindings, system);
      const w = node.sim.world;
      const saved = index.save();
      await w.sleep(w.latency() + 20);
      if (!ep.alive()) return new Promise<never>(() => {});
      if (node.partitioned()) throw new Error("object store unavailable");
      const cur = w.snapshots[shard];
      if (!cur || cur.seq < saved.seq) w.snapshots[shard] = saved;
      return { seq: saved.seq };
    }),
  },
  actions: {
    notifyState: ({ system }, p) => {
      const { node, name } = bindingOf(replicaBindings, system);
      node.sim.world.log(`${name} ${p.state}`);
    },
    reportFailure: ({ system }, p) => {
      const { node, name } = bindingOf(replicaBindings, system);
      node.sim.world.log(`${name} failed (${p.retries}): ${p.error}`);
    },
  },
});

export const simMigrationMachine = migrationMachine.provide({
  actors: {
    prepare: fromPromise<PrepareOutput, StepInput>(async ({ input, signal, system }) => {
      const { term } = bindingOf(migrationBindings, system);
      const p = await term.transform((pl) => applyPrepare(pl, input.transfer), signal);
      return { epoch: p.epoch, alreadyCutOver: transferPhase(p, input.transfer) === "cutOver" };
    }),
    cutover: fromPromise<CutoverOutput, StepInput>(async ({ input, signal, system }) => {
      const { term } = bindingOf(migrationBindings, system);
      const p = await term.transform((pl) => applyCutover(pl, input.transfer), signal);
      return { epoch: p.epoch };
    }),
    rollback: fromPromise<RollbackOutput, StepInput>(async ({ input, signal, system }) => {
      const { term } = bindingOf(migrationBindings, system);
      const p = await term.transform((pl) => applyRollback(pl, input.transfer), signal);
      return { epoch: p.epoch, alreadyCutOver: transferPhase(p, input.transfer) === "cutOver" };
    }),
    // tell the source to close its replica: it does once it sees the placement without it
    release: fromPromise<void, StepInput>(async ({ system }) => {
      const { term } = bindingOf(migrationBindings, system);
      await term.w.call(term.ep, () => undefined, TIMING.requestTimeoutMs);
    }),
    watchTarget: fromCallback<EventObject, WatchTargetInput>(({ input, sendBack, system }) => {
      const { term } = bindingOf(migrationBindings, system);
      const sim = term.sim;
      const w = sim.world;
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
            sendBack({ type: "TARGET_PROGRESS", appliedSeq: c.appliedSeq, lastSeq: c.lastSeq, bytes: 0, copyGoalBytes: 0, atMs: now });
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
    persist: (args, params) => {
      const { term } = bindingOf(migrationBindings, args.system);
      const sim = term.sim;
      persistTo((pid, pl, state) => {
        const prev = sim.migrations.get(pid);
        // a stopped (old-term) actor must not overwrite the record of its successor
        if (term.stopped && prev && prev.payload !== pl) return;
        sim.migrations.set(pid, { payload: pl, state, transfer: pl.context.transfer });
        sim.world.log(`migration ${pid} ${state}${pl.context.reason ? ` (${pl.context.reason})` : ""}`);
      })(args, params);
    },
    reportError: ({ system }, p) => {
      const { term, id } = bindingOf(migrationBindings, system);
      term.w.log(`migration ${id} ${p.step} attempt ${p.attempt}: ${p.error}`);
    },
  },
});
