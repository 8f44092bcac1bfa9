/**
 * The simulated world of the seeded simulation (test/simulation.test.ts): one simulated clock,
 * one seeded PRNG, an in-memory "network" with faults, the KV stores (lease, placement,
 * membership, transactions' locks and records), the shard logs (log.ts) and the snapshot
 * store. No real timers, no Date.now.
 *
 * Everything that happens later is a timer on the one clock; `runUntil` jumps the clock from
 * one due timer to the next and drains promise callbacks in between, so a run is a pure
 * function of its seed.
 */
import { LeaseError, type AcquireOutput, type RenewOutput } from "../../src/machines/coordinator.ts";
import type { Placement } from "../../src/runtime/placement.ts";
import { pickOne, randomInt, seededRandom } from "../../src/runtime/random.ts";
import { SimClock } from "./clock.ts";
import { SimBucket } from "./kv.ts";
import { ShardLog, type SavedShard } from "./log.ts";

/** One network hop takes 0..LATENCY_MAX_MS; a delayed request or a slow reply SLOW_EXTRA_MS more. */
export const LATENCY_MAX_MS = 50;
export const SLOW_EXTRA_MS = 400;
/** The longest a request sent before a heal can take to reach its target after it. */
export const DELIVERY_DELAY_MAX_MS = LATENCY_MAX_MS + SLOW_EXTRA_MS;

export const flush = () => new Promise<void>((r) => setImmediate(r));

/** Thrown (collected) when an invariant breaks. */
export class InvariantViolation extends Error {
  constructor(
    readonly invariant: string,
    message: string,
  ) {
    super(`${invariant}: ${message}`);
    this.name = "InvariantViolation";
  }
}

// ───────────────────────────── KV: lease ─────────────────────────────

/** The `coordinator` key of `jade_leases` with the bucket TTL (max age) on the simulated clock. */
export class SimLeaseStore {
  entry: { holder: string; revision: number; writtenAt: number } | undefined;
  /** when `brokenIgnoreRevisions`: CAS ignores revisions (to prove the checker catches it) */
  brokenIgnoreRevisions = false;
  readonly watchers: ((holder: string | null, revision: number) => void)[] = [];
  /** revision → holder of every successful create (terms) */
  readonly terms = new Map<number, string>();
  constructor(
    private readonly world: World,
    readonly ttlMs: number,
  ) {}
  live() {
    if (this.entry && this.world.clock.now() - this.entry.writtenAt >= this.ttlMs) this.entry = undefined; // silent
    return this.entry;
  }
  private write(holder: string): number {
    const rev = this.world.nextRevision();
    this.entry = { holder, revision: rev, writtenAt: this.world.clock.now() };
    for (const w of this.watchers) w(holder, rev);
    return rev;
  }
  create(holder: string): AcquireOutput {
    const e = this.live();
    if (e && !this.brokenIgnoreRevisions) return { heldBy: e.holder };
    const revision = this.write(holder);
    this.terms.set(revision, holder);
    return { revision };
  }
  update(holder: string, revision: number): RenewOutput {
    const e = this.live();
    if (!this.brokenIgnoreRevisions && (!e || e.revision !== revision)) {
      throw new LeaseError("deposed", `wrong last sequence: ${e?.revision ?? 0}`);
    }
    return { revision: this.write(holder) };
  }
  delete(revision: number): void {
    const e = this.live();
    if (!e || e.revision !== revision) throw new LeaseError("deposed", "wrong last sequence");
    this.entry = undefined;
    const rev = this.world.nextRevision();
    for (const w of this.watchers) w(null, rev);
  }
}

// ───────────────────────────── KV: placement ─────────────────────────────

export interface StoredPlacement extends Placement {
  /** the term (lease revision) of the leader that wrote it */
  leaderEpoch: number;
  writer: string;
}

export class CasConflict extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CasConflict";
  }
}

/** The placement entry of `jade_placement`: read → {value, revision}; update by CAS on the revision. */
export class SimPlacementStore {
  value: StoredPlacement | undefined;
  revision = 0;
  readonly writes: { at: number; revision: number; leaderEpoch: number; writer: string }[] = [];
  constructor(private readonly world: World) {}
  read(): { value: StoredPlacement | undefined; revision: number } {
    return { value: this.value, revision: this.revision };
  }
  cas(value: StoredPlacement, expected: number): number {
    if (expected !== this.revision) throw new CasConflict(`placement revision is ${this.revision}, not ${expected}`);
    const last = this.writes.at(-1);
    // invariant 2 (fencing): once a term wrote the placement, no older term's write lands
    if (last && value.leaderEpoch < last.leaderEpoch) {
      this.world.violate(
        "placement-fencing",
        `write by ${value.writer} of term ${value.leaderEpoch} landed after a write of term ${last.leaderEpoch}`,
      );
    }
    if (!this.world.lease.terms.has(value.leaderEpoch)) {
      this.world.violate("placement-fencing", `write by ${value.writer} with epoch ${value.leaderEpoch}: no such term`);
    }
    for (const s of value.shards) {
      if (new Set(s.replicas).size !== s.replicas.length) {
        this.world.violate("placement-distinct", `shard ${s.shard} has two replicas on one node: ${s.replicas.join(",")}`);
      }
      for (const l of s.learners ?? []) {
        if (s.replicas.includes(l)) this.world.violate("placement-distinct", `shard ${s.shard}: ${l} is replica and learner`);
      }
    }
    this.value = value;
    this.revision = this.world.nextRevision();
    this.writes.push({ at: this.world.clock.now(), revision: this.revision, leaderEpoch: value.leaderEpoch, writer: value.writer });
    this.world.log(`placement rev ${this.revision} by ${value.writer} term ${value.leaderEpoch}: ${fmtPlacement(value)}`);
    return this.revision;
  }
}

export function fmtPlacement(p: Placement | undefined): string {
  if (!p) return "(none)";
  return p.shards
    .map((s) => `${s.shard}:[${s.replicas.join(",")}]${s.learners?.length ? `+[${s.learners.join(",")}]` : ""}`)
    .join(" ");
}

// ───────────────────────────── network ─────────────────────────────

export interface NetFaults {
  /** request lost before it reaches the server */
  drop: number;
  /** applied, reply lost */
  lostReply: number;
  /** applied, reply late (after the client's timeout) */
  slow: number;
  /** request reaches the server late (after the client gave up) */
  delayed: number;
}

/** Who sends: a node process (its incarnation) — requests of a crashed incarnation never answer. */
export interface Endpoint {
  name: string;
  /** false once crashed (this incarnation is gone) */
  alive(): boolean;
  partitioned(): boolean;
}

export class World {
  readonly clock = new SimClock();
  readonly rand: () => number;
  readonly lease: SimLeaseStore;
  readonly placement: SimPlacementStore;
  readonly logs: ShardLog[] = [];
  readonly snapshots: (SavedShard | undefined)[] = [];
  /** KV `jade_locks` and `jade_txns` (transactions' point locks and records) */
  readonly locks = new SimBucket();
  readonly txnRecords = new SimBucket();
  /** membership KV: node id → last heartbeat (receiver's clock) */
  readonly heartbeats = new Map<string, number>();
  faults: NetFaults = { drop: 0, lostReply: 0, slow: 0, delayed: 0 };
  private revision = 0;
  private readonly traceLines: string[] = [];
  readonly violations: InvariantViolation[] = [];
  events = 0;

  constructor(
    readonly seed: number,
    leaseTtlMs: number,
    shards: number,
    readonly traceSize = 80,
  ) {
    this.rand = seededRandom(seed);
    this.lease = new SimLeaseStore(this, leaseTtlMs);
    this.placement = new SimPlacementStore(this);
    for (let i = 0; i < shards; i++) {
      this.logs.push(new ShardLog());
      this.snapshots.push(undefined);
    }
  }

  nextRevision(): number {
    this.revision += 1;
    return this.revision;
  }
  now(): number {
    return this.clock.now();
  }
  int(lo: number, hi: number): number {
    return randomInt(this.rand, lo, hi);
  }
  chance(p: number): boolean {
    return this.rand() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return pickOne(this.rand, xs);
  }

  log(line: string): void {
    this.traceLines.push(`t=${this.clock.now()} ${line}`);
    if (this.traceLines.length > this.traceSize * 2) this.traceLines.splice(0, this.traceLines.length - this.traceSize);
  }
  trace(): string[] {
    return this.traceLines.slice(-this.traceSize);
  }
  violate(invariant: string, message: string): void {
    const v = new InvariantViolation(invariant, `t=${this.clock.now()} ${message}`);
    this.log(`VIOLATION ${v.message}`);
    this.violations.push(v);
  }

  /** run `fn` after `ms` on the simulated clock */
  later(fn: () => void, ms: number): number {
    return this.clock.setTimeout(fn, Math.max(0, Math.trunc(ms)));
  }
  cancel(id: number): void {
    this.clock.clearTimeout(id);
  }
  /** a promise resolved after `ms` of simulated time */
  sleep(ms: number): Promise<void> {
    return new Promise((r) => this.later(r, ms));
  }

  /** one-way network latency, ms */
  latency(): number {
    return 10 * this.int(0, LATENCY_MAX_MS / 10);
  }

  /**
   * A request from `from` to a server (KV / stream) that runs `op` there. Faults from the
   * current fault profile; a partitioned sender's requests fail or hang; a crashed sender
   * never sees a reply. With `timeoutMs` the promise rejects "timed out" when not answered
   * in time (the request may still apply later). Without it, it may hang forever (the caller
   * — a machine — has its own timeout).
   */
  call<T>(from: Endpoint, op: () => T, timeoutMs?: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      let timer: number | undefined;
      const done = (fn: () => void) => {
        if (settled || !from.alive()) return;
        settled = true;
        if (timer !== undefined) this.cancel(timer);
        fn();
      };
      if (timeoutMs !== undefined) timer = this.later(() => done(() => reject(new Error("timed out"))), timeoutMs);
      const f = this.faults;
      if (from.partitioned()) {
        if (this.chance(0.5)) this.later(() => done(() => reject(new Error("no responders"))), this.latency());
        return; // else hangs
      }
      const roll = this.rand();
      let d1 = this.latency();
      let d2 = this.latency();
      if (roll < f.drop) {
        if (this.chance(0.5)) this.later(() => done(() => reject(new Error("no responders"))), d1);
        return;
      }
      let r = roll - f.drop;
      const lost = r < f.lostReply;
      r -= f.lostReply;
      if (!lost && r >= 0 && r < f.slow) d2 += SLOW_EXTRA_MS;
      else if (!lost && r >= f.slow && r < f.slow + f.delayed) d1 += SLOW_EXTRA_MS;
      this.later(() => {
        let result: T;
        try {
          result = op();
        } catch (e) {
          this.later(() => {
            if (from.partitioned()) return;
            done(() => reject(e));
          }, d2);
          return;
        }
        if (lost) return;
        this.later(() => {
          if (from.partitioned()) return;
          done(() => resolve(result));
        }, d2);
      }, d1);
    });
  }

  /** earliest due time of a pending timer, or undefined */
  nextDue(): number | undefined {
    return this.clock.nextDue();
  }

  /**
   * Advance the clock from due timer to due timer until `end` (or until `stop()` holds),
   * draining promise callbacks after each, and run `check` after each.
   */
  async runUntil(end: number, check: () => void, stop?: () => boolean): Promise<boolean> {
    for (;;) {
      await flush();
      check();
      if (this.violations.length > 0) return false;
      if (stop?.()) return true;
      const due = this.nextDue();
      if (due === undefined || due > end) {
        if (this.clock.now() < end) {
          this.clock.set(end);
          await flush();
          check();
        }
        return stop?.() ?? true;
      }
      this.clock.set(Math.max(due, this.clock.now()));
      this.events += 1;
      if (this.events > 400_000) throw new InvariantViolation("livelock", "more than 400000 timer events");
    }
  }
}
