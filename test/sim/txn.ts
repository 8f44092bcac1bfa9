/**
 * Transactions in the seeded simulation (decision 013): the workload a seed draws, the stream's
 * side of their appends and the replicas' side of their votes, and when they are quiescent.
 *
 * Each transaction runs on a gateway: a random live node, whose `transactionMachine` is bound in
 * txn-gateway.ts; the leader's recovery (txn-recovery.ts) finishes what a gateway left; the
 * invariants are in txn-checks.ts. Some transactions crash their gateway's node when they enter
 * a drawn state (any one, between the commit CAS and the markers included), so every step is
 * cut short in some seed; the seed's other faults (network, partitions, crashes, clock jumps)
 * reach them too.
 */
import type { TxnVoteReply } from "../../src/actors/replica/protocol.ts";
import type { ShardPart } from "../../src/actors/txn/plan.ts";
import { isReadable, replicaStateOf } from "../../src/machines/replica.ts";
import { TransactionState, transactionStateOf } from "../../src/machines/transaction.ts";
import { EntryKind, type TxnCondition } from "../../src/runtime/log-entry.ts";
import { TxnState } from "../../src/runtime/txn-schemas.ts";
import { TIMING, TXN } from "./config.ts";
import type { SimNode } from "./node.ts";
import type { Simulation } from "./simulator.ts";
import { TxnChecks } from "./txn-checks.ts";
import { TxnHost, type TxnRun } from "./txn-gateway.ts";
import { DELIVERY_DELAY_MAX_MS, type Endpoint, type World } from "./world.ts";

/** What a seed draws for one transaction; the conditions' versions are read when it starts. */
interface TxnPlan {
  id: string;
  writes: { id: string; shard: number; op: "upsert" | "delete"; condition?: "version" | "exists" | "absent" }[];
  timeoutMs: number;
  /** crash the gateway's node `afterMs` after the transaction enters `state`, for `downMs` */
  crash?: { state: TransactionState; afterMs: number; downMs: number };
}

const crashStates = Object.values(TransactionState).filter((s) => s !== TransactionState.Done);

export class SimTxns {
  readonly runs = new Map<string, TxnRun>();
  readonly checks: TxnChecks;
  /** when a transaction's last write (KV or log) was sent: quiescent only once none can still land */
  private lastWriteAt = -Infinity;

  constructor(readonly sim: Simulation) {
    this.checks = new TxnChecks(sim, this.runs);
  }

  get w(): World {
    return this.sim.world;
  }

  /** What a node incarnation's gateway and recovery share. */
  host(node: SimNode, ep: Endpoint): TxnHost {
    return new TxnHost(this, node, ep);
  }

  readonly wrote = (): void => {
    this.lastWriteAt = this.w.now();
  };

  /** Draws the seed's transactions, started during the fault phase. */
  schedule(phaseMs: number): void {
    const w = this.w;
    const count = w.int(TXN.perSeedMin, TXN.perSeedMax);
    for (let i = 1; i <= count; i++) {
      // After the first placement (~0.6 s in: a gateway with none to ask votes of only aborts), and
      // early enough to end, recovery included, near the heal: the whole cluster runs until they do.
      const at = w.int(800, phaseMs / 2 + 500);
      const ids = new Set<string>();
      const size = w.int(1, 3);
      while (ids.size < size) ids.add(`p${w.int(0, 15)}`);
      const writes = [...ids].map((id) => ({
        id,
        shard: w.int(0, this.sim.shardCount - 1),
        op: w.chance(0.2) ? ("delete" as const) : ("upsert" as const),
        ...(w.chance(0.3) ? { condition: w.pick(["version", "exists", "absent"] as const) } : {}),
      }));
      const timeoutMs = w.int(TXN.timeoutMsMin, TXN.timeoutMsMax);
      const crash = w.chance(0.3) ? { state: w.pick(crashStates), afterMs: w.int(0, 40), downMs: w.int(300, 3000) } : undefined;
      const plan: TxnPlan = { id: `t${i}`, writes, timeoutMs, ...(crash ? { crash } : {}) };
      w.later(() => this.start(plan), at);
    }
  }

  private start(plan: TxnPlan): void {
    const w = this.w;
    const live = this.sim.nodes.filter((n) => n.txn !== undefined);
    if (live.length === 0) {
      w.log(`txn ${plan.id} not started: no node is up`);
      return;
    }
    const node = w.pick(live);
    const parts = new Map<number, ShardPart>();
    for (const { id, shard, op, condition } of plan.writes) {
      const part = parts.get(shard) ?? parts.set(shard, { deleteIds: [], conditions: [] }).get(shard)!;
      if (op === "delete") part.deleteIds.push(id);
      else {
        const ids = [...(part.upsert?.ids ?? []), id];
        part.upsert = { ids, dimension: 1, vectors: new Float32Array(ids.length) };
      }
      if (condition) part.conditions.push(this.condition(shard, id, condition));
    }
    const trigger = plan.crash;
    const incarnation = node.incarnation;
    let fired = false;
    const run = node.txn!.begin({ id: plan.id, parts, lockIds: plan.writes.map((x) => x.id), timeoutMs: plan.timeoutMs }, (state) => {
      if (!trigger || fired || state !== trigger.state) return;
      fired = true;
      w.later(() => {
        if (this.sim.healed || !node.up || node.incarnation !== incarnation) return;
        w.log(`${node.name} crashes: ${plan.id} entered ${state}`);
        node.crash();
        w.later(() => {
          if (!node.up && !this.sim.healed) node.start();
        }, trigger.downMs);
      }, trigger.afterMs);
    });
    this.runs.set(plan.id, run);
  }

  /** A condition as a client writes it after reading the point (`version`: the one it read, now). */
  private condition(shard: number, id: string, kind: "version" | "exists" | "absent"): TxnCondition {
    if (kind === "exists") return { id, exists: true };
    const version = this.w.logs[shard]!.state.versionOf(id);
    return kind === "absent" || version === undefined ? { id, exists: false } : { id, version };
  }

  /** A request of a transaction's; a crashed process sends nothing more. */
  send<T>(ep: Endpoint, op: () => T, timeoutMs: number, writes: boolean): Promise<T> {
    if (!ep.alive()) return new Promise<T>(() => {});
    if (writes) this.wrote();
    return this.w.call(ep, op, timeoutMs);
  }

  /**
   * An append as `publishDurable` (src/nats/streams.ts) makes it: deduplicated by message id,
   * retried with back-off until `deadlineMs` has passed; answers the entry's sequence.
   */
  async publish(ep: Endpoint, shard: number, data: Uint8Array, msgId: string, deadlineMs: number): Promise<number> {
    const w = this.w;
    const deadline = w.now() + deadlineMs;
    for (let backoffMs = 50; ; backoffMs = Math.min(1000, backoffMs * 2)) {
      const remaining = deadline - w.now();
      try {
        return await this.send(ep, () => this.land(shard, data, msgId), Math.max(250, Math.min(remaining, 5000)), true);
      } catch (err) {
        if (w.now() + backoffMs >= deadline) throw err;
        await w.sleep(backoffMs);
      }
    }
  }

  /** The stream's side of an append: checked as it lands, before anyone reads it. */
  private land(shard: number, data: Uint8Array, msgId: string): number {
    const log = this.w.logs[shard]!;
    const { seq, duplicate } = log.append(data, msgId);
    if (!duplicate) {
      const e = log.entries[seq - 1]!;
      if (e.entry.kind === EntryKind.TxnPrepare || e.entry.kind === EntryKind.TxnCommit || e.entry.kind === EntryKind.TxnAbort) {
        this.w.log(`${e.entry.kind} ${e.entry.txn} s${shard}@${seq}`);
      }
      this.checks.landed(shard, e);
    }
    return seq;
  }

  isLive(nodeId: string): boolean {
    return this.w.now() - (this.w.heartbeats.get(nodeId) ?? -Infinity) <= TIMING.nodeDeadAfterMs;
  }

  /**
   * A replica's answer to `txn.vote` (src/actors/replica/replica.ts): its shard's outcome of the
   * transaction, once it has read the prepare. Answered from the log's own reading: every
   * replica computes the same from the same log (checked at quiescence on every replica).
   */
  replicaVote(nodeId: string, shard: number, txn: string): TxnVoteReply {
    const node = this.sim.nodes.find((n) => n.id === nodeId);
    const r = node?.up && !node.partitioned() ? node.replicas.get(shard) : undefined;
    if (!r) throw new Error("no responders");
    const snap = r.actor.getSnapshot();
    if (snap.status !== "active" || !isReadable(replicaStateOf(snap))) throw new Error(`shard ${shard} on ${nodeId} is not serving`);
    const known = this.w.logs[shard]!.state.txns.outcome(txn);
    if (!known) return { yes: false, reason: `no prepare of ${txn} read on this shard`, outcome: "unknown" };
    return { ...known.vote, outcome: known.outcome, ...(known.outcome === "staged" ? { prepareSeq: known.seq } : {}) };
  }

  /** Why the transactions are not quiescent yet, or undefined. */
  quiescent(): string | undefined {
    for (const run of this.runs.values()) {
      const snap = run.actor.getSnapshot();
      if (snap.status === "active") return `transaction ${run.id} ${transactionStateOf(snap)} on ${run.gateway}`;
    }
    const open = this.w.txnRecords.keys("open.>")[0];
    if (open !== undefined) return `transaction record ${open} not done`;
    if (this.w.now() < this.lastWriteAt + DELIVERY_DELAY_MAX_MS) return "a transaction's write may still land";
    return undefined;
  }

  committed(): number {
    return [...this.runs.keys()].filter((id) => this.checks.recordOf(id)?.state === TxnState.Committed).length;
  }
}
