/**
 * Cluster administration, carried out by the coordinator while it leads:
 * drain / undrain / remove nodes, move a shard replica, rebalance, and list or
 * control migrations. Any gateway forwards `jade.v1.admin.<op>` to
 * `jade.coordinator.<op>`, which only the leader serves.
 */
import type { KV, KvEntry } from "@nats-io/kv";
import type { Msg, NatsConnection } from "@nats-io/nats-core";
import { z } from "zod";
import { ErrorCode, invalidArgument, JadeError } from "../../runtime/errors.ts";
import { decodeJsonBody } from "../../runtime/json-body.ts";
import { limits } from "../../runtime/limits.ts";
import type { Logger } from "../../runtime/log.ts";
import { rebalanceMoves, type Move } from "../../runtime/rebalance.ts";
import { type AdminOp, isBackupOp, isConfigOp, isKeyOp, isTxnOp, names, nodeIdPattern, parseCoordinatorSubject, shardKey, subjects } from "../../runtime/subjects.ts";
import type { Backups } from "../backup/service.ts";
import { parse } from "../../runtime/checks.ts";
import { CollectionName, EmptyRequest } from "../../runtime/schemas.ts";
import { quote } from "../../runtime/text.ts";
import type { TransferReason } from "../../runtime/transfer.ts";
import type { Membership } from "../cluster/membership.ts";
import type { MigrationRunner } from "./migrations.ts";
import type { Departures } from "../cluster/departures.ts";
import type { PlacementStore } from "../cluster/placement-store.ts";
import { servingPlacement } from "../../runtime/placement.ts";
import { serve, type Serving } from "../../nats/serve.ts";

const NodeId = z.string().regex(nodeIdPattern, "must match ^[a-zA-Z0-9_-]{1,64}$ (a node id)");
export const NodeRequest = z.object({ node: NodeId }).strict();
export const MoveRequest = z
  .object({ collection: CollectionName, shard: z.number().int().min(0).max(limits.shardsMax - 1), from: NodeId, to: NodeId })
  .strict();
/** Migration ids are `<collection>/<shard>/…` of printable ASCII (see transfer.ts). */
export const MigrationRequest = z.object({ id: z.string().min(1).max(256).regex(/^[\x21-\x7e]+$/, "must be printable ASCII (a migration id)") }).strict();

/** A node set as stored in KV `jade_config`: sorted node ids. */
const StoredNodeSet = z.array(NodeId);

/** Operators change node sets rarely and by hand: ten lost CAS races in a row means something keeps rewriting the key. */
const nodeSetCasAttemptsMax = 10;

/** The node set in a KV entry; a missing or deleted key is the empty set, an unreadable value a bug. */
function nodeSetOf(entry: KvEntry | null): string[] {
  if (entry?.operation !== "PUT") return [];
  return StoredNodeSet.parse(entry.json());
}

/** Node sets kept in KV `jade_config` (history kept): drained nodes get no replicas; removed ones count as dead. */
export class NodeSets {
  readonly #kv: KV;

  constructor(kv: KV) {
    this.#kv = kv;
  }

  async get(key: string): Promise<string[]> {
    return nodeSetOf(await this.#kv.get(key));
  }

  /** Read-modify-write by CAS on the entry's revision. */
  async update(key: string, change: (nodes: Set<string>) => void): Promise<string[]> {
    for (let attempt = 0; attempt < nodeSetCasAttemptsMax; attempt++) {
      const entry = await this.#kv.get(key);
      const nodes = new Set(nodeSetOf(entry));
      change(nodes);
      const value = JSON.stringify([...nodes].sort());
      try {
        if (entry) await this.#kv.update(key, value, entry.revision);
        else await this.#kv.create(key, value);
        return [...nodes].sort();
      } catch {
        // Someone else changed it: read again.
      }
    }
    throw new JadeError(ErrorCode.Conflict, `${key} kept changing; try again`);
  }
}

interface Deps {
  nodeSets: NodeSets;
  backups: Backups;
  placements: PlacementStore;
  membership: Membership;
  runner: MigrationRunner;
  nodeDeadAfterMs: number;
  departures: Departures;
  /** coordinator.restartDelayMs, as the cluster's settings say now. */
  restartDelayMs: () => number;
  /** Re-run reconciliation now (after a change of the node sets). */
  poke: () => void;
  log: Logger;
}

export class ClusterAdmin {
  readonly #deps: Deps;
  #serving: Serving | undefined;

  constructor(deps: Deps) {
    this.#deps = deps;
  }

  serve(nc: NatsConnection): void {
    this.#serving = serve(nc, {
      subjects: [{ subject: subjects.coordinatorWildcard }],
      handle: (msg) => this.#dispatch(msg),
      encode: (reply) => JSON.stringify(reply),
      log: this.#deps.log.child({ actor: "admin" }),
    });
  }

  /** Stops taking requests; handlers in flight still finish and answer (the coordinator does not wait for them). */
  stop(): void {
    void this.#serving?.stop();
  }

  /**
   * Nodes that may host replicas: live, not drained, not removed. `holding`: nodes that left on
   * purpose within the restart delay (departures.ts); they keep their replicas and are counted
   * in `live`, but take no new ones.
   */
  async eligibleNodes(): Promise<{ live: string[]; eligible: string[]; cordoned: string[]; holding: string[] }> {
    const [cordoned, removed] = await Promise.all([this.#deps.nodeSets.get(names.cordonedKey), this.#deps.nodeSets.get(names.removedKey)]);
    const alive = this.#deps.membership.liveNodes(this.#deps.nodeDeadAfterMs).filter((n) => !removed.includes(n));
    const holding = this.#deps.departures
      .within(this.#deps.restartDelayMs())
      .map((d) => d.node)
      .filter((n) => !alive.includes(n) && !removed.includes(n));
    return { live: [...alive, ...holding], eligible: alive.filter((n) => !cordoned.includes(n)), cordoned: cordoned.filter((n) => alive.includes(n)), holding };
  }

  /** Plans transfers for the moves that even out replicas (and empty drained nodes). */
  async rebalance(reason: TransferReason): Promise<Move[]> {
    const { eligible, cordoned, holding } = await this.eligibleNodes();
    const busy = new Set(this.#deps.runner.pending().map((t) => shardKey(t.collection, t.shard)));
    // A shard with a learner or a draining replica is still settling from a move, and one with a
    // replica on a restarting node is one replica short already: leave them for now.
    for (const { record } of this.#deps.placements.all()) {
      for (const s of record.shards) {
        if (s.learners?.length || s.draining?.length || s.replicas.some((n) => holding.includes(n))) busy.add(shardKey(record.collection, s.shard));
      }
    }
    const placements = this.#deps.placements.all().map((p) => servingPlacement(p.record));
    const moves = rebalanceMoves({ placements, eligible, cordoned: reason === "drain" || reason === "rebalance" ? cordoned : [], busy });
    for (const m of moves) await this.#plan(m, reason);
    return moves;
  }

  async #plan(m: Move, reason: TransferReason) {
    const stored = this.#deps.placements.get(m.collection);
    if (!stored) throw new JadeError(ErrorCode.NotFound, `collection ${m.collection} has no placement`);
    return this.#deps.runner.plan({ collection: m.collection, uid: stored.record.uid, shard: m.shard, from: m.from, to: m.to, reason });
  }

  #dispatch(msg: Msg): Promise<unknown> {
    const op = parseCoordinatorSubject(msg.subject);
    if (op === undefined) throw invalidArgument(`unknown coordinator subject ${quote(msg.subject)}`);
    return this.#handle(op, decodeJsonBody(msg.data));
  }

  async #handle(op: AdminOp, body: unknown): Promise<unknown> {
    const { nodeSets, runner, placements, poke } = this.#deps;
    if (isBackupOp(op)) return this.#deps.backups.handle(op, body);
    // Keys, settings and transaction records live in KV: every gateway serves them itself (api/handlers.ts), none is forwarded here.
    if (isKeyOp(op) || isConfigOp(op) || isTxnOp(op)) throw invalidArgument(`${op} is served at ${subjects.admin(op)} by any node, not by the coordinator`);
    switch (op) {
      case "drain": {
        const { node } = parse(NodeRequest, body);
        const cordoned = await nodeSets.update(names.cordonedKey, (s) => void s.add(node));
        const moves = await this.rebalance("drain");
        poke();
        return { cordoned, moves };
      }
      case "undrain": {
        const { node } = parse(NodeRequest, body);
        return { cordoned: await nodeSets.update(names.cordonedKey, (s) => void s.delete(node)) };
      }
      case "remove": {
        const { node } = parse(NodeRequest, body);
        const holds = placements.all().some((p) => p.record.shards.some((s) => s.replicas.includes(node)));
        if (holds && this.#deps.membership.isLive(node)) {
          throw new JadeError(ErrorCode.Conflict, `node ${node} is live and still holds replicas: drain it first`);
        }
        const removed = await nodeSets.update(names.removedKey, (s) => void s.add(node));
        await nodeSets.update(names.cordonedKey, (s) => void s.delete(node));
        // Removed for good: not expected back, whatever it said when it left.
        await this.#deps.departures.clear(node);
        poke();
        return { removed };
      }
      case "move": {
        const m = parse(MoveRequest, body);
        const stored = placements.get(m.collection);
        const shard = stored?.record.shards[m.shard];
        if (!stored || !shard) throw new JadeError(ErrorCode.NotFound, `no shard ${m.shard} in ${m.collection}`);
        if (!shard.replicas.includes(m.from)) throw new JadeError(ErrorCode.InvalidArgument, `${m.from} holds no replica of ${m.collection}/${m.shard}`);
        if (shard.replicas.includes(m.to)) throw new JadeError(ErrorCode.InvalidArgument, `${m.to} already holds a replica of ${m.collection}/${m.shard}`);
        if (!this.#deps.membership.isLive(m.to)) throw new JadeError(ErrorCode.Unavailable, `node ${m.to} is not live`);
        return this.#plan(m, "move");
      }
      case "rebalance":
        parse(EmptyRequest, body);
        return { moves: await this.rebalance("rebalance") };
      case "migrations":
        parse(EmptyRequest, body);
        return { migrations: await runner.list() };
      case "pause":
      case "resume":
      case "cancel":
        return runner.control(parse(MigrationRequest, body).id, op);
    }
  }
}
