/**
 * The coordinator actor: `coordinatorMachine` bound to the lease in KV
 * `jade_leases`, and, while leader, the reconcile loop — compare desired state
 * (collections × shards × replication factor) with the live nodes and the
 * placement records, and write the difference by CAS (a deposed leader's write
 * fails, and it steps down).
 */
import { createActor, fromCallback, fromPromise, type EventObject } from "xstate";
import { JetStreamApiCodes, JetStreamApiError, type JetStreamManager } from "@nats-io/jetstream";
import type { ListedKv } from "../../nats/kv-keys.ts";
import { z } from "zod";
import { formatsToRaise, type FormatsInUse } from "../../runtime/formats.ts";
import { raiseFormats } from "../cluster/formats.ts";
import type { TxnRecovery } from "../txn/recovery.ts";
import {
  coordinatorMachine,
  coordinatorStateOf,
  isLeader,
  LeaseError,
  type AcquireInput,
  type AcquireOutput,
  type CoordinatorActorRef,
  type ReconcileInput,
  type ReleaseInput,
  type RenewInput,
  type RenewOutput,
} from "../../machines/coordinator.ts";
import type { Logger } from "../../runtime/log.ts";
import { learnersByShard, loadOf, planPlacement, servingPlacement, withInFlight } from "../../runtime/placement.ts";
import type { Catalog } from "../cluster/catalog.ts";
import type { NatsConnection } from "@nats-io/nats-core";
import { errorMessage, ErrorCode, JadeError, type Reply } from "../../runtime/errors.ts";
import { adminTimeoutMs, names, subjects, type AdminOp } from "../../runtime/subjects.ts";
import { ClusterAdmin, NodeSets } from "./admin.ts";
import type { Membership } from "../cluster/membership.ts";
import { defaultMigrationSettings, MigrationRunner, type MigrationSettings, type MigrationView } from "./migrations.ts";
import type { PlacementStore } from "../cluster/placement-store.ts";
import type { CollectionConfig } from "../../runtime/schemas.ts";
import { KvView } from "../../nats/kv-view.ts";
import type { SnapshotStore } from "../../nats/snapshots.ts";
import type { Backups } from "../backup/service.ts";
import { defaultRetentionSettings, Retention, type RetentionSettings } from "./retention.ts";
import type { ClusterSettings } from "../config/schemas.ts";
import type { Departure, Departures } from "../cluster/departures.ts";
import type { Hold } from "../../runtime/backup-schemas.ts";

export interface CoordinatorSettings {
  leaseTtlMs: number;
  renewIntervalMs: number;
  acquireIntervalMs: number;
  /** The leader re-checks placement this often (and at once on membership or catalog changes). */
  reconcileIntervalMs: number;
  /**
   * A node silent this long is declared dead and its replicas are placed elsewhere.
   * Longer than the routers' failure timeout: a briefly hung node is routed around
   * at once but only loses its replicas if it stays silent.
   */
  nodeDeadAfterMs: number;
  /** Move replicas onto a node that joins (zero-downtime migrations), so load spreads without an operator. */
  autoRebalance: boolean;
  /**
   * A node that stopped on purpose (actors/cluster/departures.ts) keeps its replicas this long
   * before they are placed elsewhere: a restart within it copies nothing. This node's own
   * setting; the cluster's (`jade config`, coordinator.restartDelayMs) overrides it, live.
   */
  restartDelayMs: number;
  /** A transaction not done this long past its deadline is finished by the coordinator from its record (actors/txn/recovery.ts). */
  txnRecoveryGraceMs: number;
  migration: MigrationSettings;
  retention: RetentionSettings;
}

export const defaultCoordinatorSettings: CoordinatorSettings = {
  leaseTtlMs: 6_000,
  renewIntervalMs: 1_500,
  acquireIntervalMs: 1_000,
  reconcileIntervalMs: 1_000,
  nodeDeadAfterMs: 8_000,
  autoRebalance: true,
  restartDelayMs: 60_000,
  txnRecoveryGraceMs: 10_000,
  migration: defaultMigrationSettings,
  retention: defaultRetentionSettings,
};

/** Load added to a drained node when placing new replicas: it is chosen only if nothing else can take them. */
const drainedLoadPenalty = 1_000_000;

interface Deps {
  nodeId: string;
  nc: NatsConnection;
  jsm: JetStreamManager;
  leases: ListedKv;
  migrations: ListedKv;
  config: ListedKv;
  retention: ListedKv;
  snapshots: SnapshotStore;
  backups: Backups;
  catalog: Catalog;
  membership: Membership;
  placements: PlacementStore;
  log: Logger;
  settings: CoordinatorSettings;
  /** The cluster settings this node runs now (actors/config): migration concurrency, retention defaults, the restart delay. */
  live: () => ClusterSettings;
  /** Nodes that stopped on purpose and are expected back (actors/cluster/departures.ts). */
  departures: Departures;
  /** Finishes transactions their gateways left in doubt. */
  txnRecovery: TxnRecovery;
}

/** The lease's value: its holder's node id, as plain text (not JSON). */
const LeaseHolder = z.string().min(1);

/** JetStream's answer to a KV create/update CAS that lost: the key's last sequence moved (kv.create reports "exists" the same way). */
function isCasConflict(err: unknown): boolean {
  return (
    err instanceof JetStreamApiError &&
    (err.code === JetStreamApiCodes.StreamWrongLastSequence || err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}

export class Coordinator {
  readonly #deps: Deps;
  readonly #log: Logger;
  readonly #actor: CoordinatorActorRef;
  readonly #runner: MigrationRunner;
  readonly #admin: ClusterAdmin;
  readonly #retention: Retention;
  readonly #lease: KvView<string>;
  #poke: () => void = () => undefined;
  /** The formats last seen written, or the oldest there are: the raise reads the record only when the nodes read newer ones. */
  #formatsKnown: FormatsInUse = { log: 1, message: 1 };
  /** The live nodes at the last reconcile of this leadership (undefined before the first): a node not among them has joined. */
  #knownLive: Set<string> | undefined;

  constructor(deps: Deps) {
    this.#deps = deps;
    this.#log = deps.log.child({ actor: "coordinator" });
    this.#lease = new KvView(deps.leases, { decode: (entry) => LeaseHolder.parse(entry.string()), log: this.#log });
    this.#runner = new MigrationRunner({
      jsm: deps.jsm,
      kv: deps.migrations,
      placements: deps.placements,
      membership: deps.membership,
      nodeDeadAfterMs: deps.settings.nodeDeadAfterMs,
      log: deps.log,
      settings: deps.settings.migration,
      concurrentMax: () => deps.live().migration.concurrentMax,
    });
    this.#admin = new ClusterAdmin({
      nodeSets: new NodeSets(deps.config),
      backups: deps.backups,
      placements: deps.placements,
      membership: deps.membership,
      runner: this.#runner,
      nodeDeadAfterMs: deps.settings.nodeDeadAfterMs,
      departures: deps.departures,
      restartDelayMs: () => deps.live().coordinator.restartDelayMs,
      poke: () => this.#poke(),
      log: deps.log,
    });
    this.#retention = new Retention({
      jsm: deps.jsm,
      kv: deps.retention,
      snapshots: deps.snapshots,
      catalog: deps.catalog,
      membership: deps.membership,
      placements: deps.placements,
      nodeDeadAfterMs: deps.settings.nodeDeadAfterMs,
      log: deps.log,
      settings: deps.settings.retention,
      live: deps.live,
      holds: async () => [...(await deps.backups.holds()), ...departureHolds(deps.departures.within(deps.live().coordinator.restartDelayMs))],
    });
    this.#actor = createActor(this.#machine(), {
      input: {
        nodeId: deps.nodeId,
        leaseTtlMs: deps.settings.leaseTtlMs,
        renewIntervalMs: deps.settings.renewIntervalMs,
        acquireIntervalMs: deps.settings.acquireIntervalMs,
      },
    });
  }

  async start(): Promise<void> {
    this.#actor.start();
    // Deletes are told too (holder null): a freed lease is taken at once, not after the acquire interval.
    this.#lease.onChange(({ key, value, revision }) => {
      if (key === names.coordinatorLease) this.#actor.send({ type: "LEASE_OBSERVED", holder: value ?? null, revision });
    });
    await this.#lease.start();
  }

  /** Forwards an admin request to whichever node leads now. */
  async forward(op: AdminOp, body: unknown): Promise<unknown> {
    let reply: Reply<unknown>;
    try {
      const msg = await this.#deps.nc.request(subjects.coordinator(op), JSON.stringify(body ?? {}), { timeout: adminTimeoutMs(op) });
      reply = msg.json<Reply<unknown>>();
    } catch (err) {
      throw new JadeError(ErrorCode.Unavailable, `no coordinator answered: ${errorMessage(err)}`);
    }
    if (!reply.ok) throw JadeError.fromWire(reply.error);
    return reply.result;
  }

  get isLeader(): boolean {
    return isLeader(coordinatorStateOf(this.#actor.getSnapshot()));
  }

  /** The lease revision this node leads under (fences its writes); null when not leading. */
  get epoch(): number | null {
    return this.isLeader ? this.#actor.getSnapshot().context.epoch : null;
  }

  /** Migrations this node runs as leader, not finished yet. */
  /** The cluster's settings changed: a higher migration concurrency starts waiting transfers now. */
  settingsChanged(): void {
    this.#runner.schedule();
  }

  runningMigrations(): MigrationView[] {
    return this.#runner.running();
  }

  /** The node we believe leads (ourselves when leader), or null. */
  get leader(): string | null {
    return this.isLeader ? this.#deps.nodeId : this.#actor.getSnapshot().context.leader;
  }

  async stop(): Promise<void> {
    await this.#lease.stop();
    this.#actor.send({ type: "STOP" });
    // Releasing the lease lets a successor take over at once instead of after the TTL.
    await new Promise<void>((resolve) => {
      const done = () => coordinatorStateOf(this.#actor.getSnapshot()) === "stopped";
      if (done()) return resolve();
      const sub = this.#actor.subscribe(() => {
        if (done()) {
          sub.unsubscribe();
          resolve();
        }
      });
      setTimeout(resolve, this.#deps.settings.renewIntervalMs).unref();
    });
    this.#actor.stop();
  }

  #machine() {
    const { leases, nodeId } = this.#deps;
    const key = names.coordinatorLease;
    return coordinatorMachine.provide({
      actors: {
        acquire: fromPromise<AcquireOutput, AcquireInput>(async () => {
          try {
            return { revision: await leases.create(key, nodeId) };
          } catch (err) {
            const held = await this.#lease.read(key);
            if (held) return { heldBy: held.value };
            throw err;
          }
        }),
        renew: fromPromise<RenewOutput, RenewInput>(async ({ input }) => {
          try {
            return { revision: await leases.update(key, nodeId, input.revision) };
          } catch (err) {
            const entry = await leases.get(key).catch(() => undefined);
            if (entry === null || (entry && entry.revision !== input.revision)) throw new LeaseError("deposed", "the lease moved");
            throw new LeaseError("unavailable", errorMessage(err));
          }
        }),
        release: fromPromise<void, ReleaseInput>(async ({ input }) => {
          await leases.delete(key, { previousSeq: input.revision });
        }),
        reconcile: fromCallback<EventObject, ReconcileInput>(({ input, sendBack }) => this.#reconcileLoop(input.epoch, () => sendBack({ type: "FENCED" }))),
      },
      actions: {
        notifyState: (_, params) => this.#log.info({ state: params.state, epoch: params.epoch, leader: params.leader }, "coordinator state"),
        reportError: (_, params) => this.#log.warn({ during: params.during, error: params.error }, "coordinator effect failed"),
      },
    });
  }

  /** Runs while leader; returns its cleanup. */
  #reconcileLoop(epoch: number, fenced: () => void): () => void {
    const { catalog, membership, placements, settings } = this.#deps;
    let stopped = false;
    let running = false;
    let again = false;
    const run = async () => {
      if (stopped) return;
      if (running) {
        again = true;
        return;
      }
      running = true;
      try {
        do {
          again = false;
          await this.#reconcileOnce(epoch);
        } while (again && !stopped);
      } catch (err) {
        if (stopped) return;
        if (isCasConflict(err)) {
          this.#log.warn({ err: errorMessage(err) }, "placement CAS failed: another coordinator wrote; stepping down");
          fenced();
        } else {
          this.#log.warn({ err: errorMessage(err) }, "reconcile failed; will retry");
        }
      } finally {
        running = false;
      }
    };
    const timer = setInterval(() => void run(), settings.reconcileIntervalMs);
    const offMembers = membership.onChange(() => void run());
    const offCatalog = catalog.onChange(() => void run());
    this.#poke = () => void run();
    this.#knownLive = undefined;
    this.#admin.serve(this.#deps.nc);
    void this.#runner.start().catch((err) => this.#log.warn({ err: String(err) }, "could not resume migrations"));
    this.#retention.start();
    const stopSweeping = this.#deps.backups.lead();
    let recovering = false;
    const recoveryTimer = setInterval(() => {
      if (recovering || stopped) return;
      recovering = true;
      void this.#deps.txnRecovery
        .sweep()
        .catch((err: unknown) => this.#log.warn({ err: errorMessage(err) }, "transaction recovery failed; will retry"))
        .finally(() => (recovering = false));
    }, settings.reconcileIntervalMs);
    void run();
    return () => {
      stopped = true;
      clearInterval(timer);
      clearInterval(recoveryTimer);
      offMembers();
      offCatalog();
      this.#poke = () => undefined;
      this.#admin.stop();
      this.#runner.stop();
      void this.#retention.stop();
      stopSweeping();
    };
  }

  /**
   * The formats the cluster writes move up once every node reads a newer one (runtime/formats.ts).
   * The record is read only when the nodes' heartbeats say a move may be due.
   */
  async #raiseFormats(): Promise<void> {
    const readers = this.#deps.membership.members().map((m) => m.heartbeat.formats);
    if (!formatsToRaise(this.#formatsKnown, readers)) return;
    const raised = await raiseFormats(this.#deps.config, readers);
    if (raised) this.#log.info({ formats: raised }, "every node reads newer formats: the cluster now writes them");
    this.#formatsKnown = raised ?? formatsToRaise(this.#formatsKnown, readers)!;
  }

  /** Plans one collection's placement from the live nodes and writes it if it changed (inside its `exclusive` section). */
  async #placeCollection(config: CollectionConfig, live: string[], cordoned: string[], epoch: number): Promise<void> {
    const { placements } = this.#deps;
    const stored = placements.get(config.name);
    const current = stored && stored.record.uid === config.uid ? servingPlacement(stored.record) : undefined;
    const others = placements.all().filter((p) => p.record.collection !== config.name).map((p) => servingPlacement(p.record));
    const planned = planPlacement({
      collection: config.name,
      shards: config.shards,
      replicas: config.replicas,
      nodes: live,
      current,
      load: penalise(loadOf(others, config.name, live), cordoned),
      ...(current ? { learners: learnersByShard(stored!.record) } : {}),
    });
    if (planned === current) return;
    const shards = withInFlight(planned.shards, current ? stored!.record.shards : []);
    await placements.write({ ...planned, shards, uid: config.uid, leaderEpoch: epoch }, stored?.revision);
    this.#log.info({ collection: config.name, epoch: planned.epoch, shards: planned.shards }, "placement written");
  }

  async #reconcileOnce(epoch: number): Promise<void> {
    const { catalog, placements, settings } = this.#deps;
    const { live, cordoned, holding } = await this.#admin.eligibleNodes();
    if (live.length === 0) return;
    const configs = catalog.cached();
    const wanted = new Set(configs.map((c) => c.name));
    for (const { record } of placements.all()) {
      if (wanted.has(record.collection)) continue;
      await placements.exclusive(record.collection, async () => {
        const stored = placements.get(record.collection);
        if (stored) await placements.remove(record.collection, stored.revision);
      });
    }
    for (const config of configs) await placements.exclusive(config.name, () => this.#placeCollection(config, live, [...cordoned, ...holding], epoch));
    // Not while a node that stopped cleanly is expected back: it has not said what it will read.
    if (holding.length === 0) await this.#raiseFormats();
    // Drained nodes are emptied by migrations; a node that joined gets its share when auto-rebalance is on.
    // A restarting node counts as live throughout (holding): back, it has not "joined".
    const joined = this.#knownLive === undefined ? [] : live.filter((n) => !this.#knownLive!.has(n));
    this.#knownLive = new Set(live);
    const drainedHold = cordoned.some((n) => placements.all().some((p) => p.record.shards.some((s) => s.replicas.includes(n))));
    if (drainedHold) await this.#admin.rebalance("drain");
    else if (joined.length > 0 && settings.autoRebalance) {
      const moves = await this.#admin.rebalance("rebalance");
      if (moves.length > 0) this.#log.info({ joined, moves: moves.length }, "rebalancing onto joined nodes");
    }
  }
}

function penalise(load: Record<string, number>, drained: readonly string[]): Record<string, number> {
  const out = { ...load };
  for (const n of drained) out[n] = (out[n] ?? 0) + drainedLoadPenalty;
  return out;
}

/** What the replicas of nodes expected back will replay: retention keeps it (departures.ts). */
function departureHolds(departures: readonly Departure[]): Hold[] {
  return departures.flatMap((d) => d.replicas.map((r) => ({ what: `restart of ${d.node}`, collection: r.collection, uid: r.uid, shard: r.shard, seq: r.seq })));
}
