/**
 * Membership: every node writes a heartbeat into KV `jade_nodes` every second
 * (its replicas' states and applied sequences, load, memory) and watches the
 * others'. Liveness is judged by when WE last received a node's heartbeat (our
 * own monotonic clock), so clock skew between machines cannot make a node look
 * dead or alive.
 */
import { EventEmitter } from "node:events";
import type { ListedKv } from "../../nats/kv-keys.ts";
import { z } from "zod";
import { ReplicaState } from "../../machines/replica.ts";
import { KvView } from "../../nats/kv-view.ts";
import type { Logger } from "../../runtime/log.ts";
import { RestoreInfo, TxnFigures } from "../../runtime/status.ts";
import { heartbeatIntervalMsDefault, nodeSilentMsDefault } from "../../runtime/limits.ts";
import { buildFormats, ReadableFormats } from "../../runtime/formats.ts";
import { jadeVersion } from "../../runtime/version.ts";

export const ReplicaBeat = z.object({
  collection: z.string(),
  uid: z.string(),
  shard: z.number().int(),
  state: z.enum(ReplicaState),
  appliedSeq: z.number().int(),
  /** Entries of the shard log known to the replica but not applied yet. */
  lag: z.number().int(),
  count: z.number().int(),
  /** Bytes copied into the replica since it started (snapshot or checkpoint, then log): a migration's progress. */
  transferredBytes: z.number().int().default(0),
  /** What `transferredBytes` reads once the copy under way (a peer's checkpoint, a shared snapshot) is in; 0: none started. */
  copyGoalBytes: z.number().int().default(0),
  /** The sequence this node's local checkpoint of the shard covers (0: none): it restarts from there. */
  checkpointSeq: z.number().int().default(0),
  /** Where the replica's index came from at its last (re)start. */
  restored: RestoreInfo.optional(),
  /** Points applied and searchable (exactly) that the graph has not absorbed yet. */
  pending: z.number().int().default(0),
  /** Points of its newest snapshot the saved graph did not hold (a restart indexes them again; a re-save comes once absorbed). */
  snapshotUnabsorbed: z.number().int().default(0),
});
export type ReplicaBeat = z.infer<typeof ReplicaBeat>;

export const NodeHeartbeat = z.object({
  nodeId: z.string(),
  startedAt: z.string(),
  beat: z.number().int(),
  replicas: z.array(ReplicaBeat),
  /** Requests in flight on this node (gateway + replica reads): the least-loaded router's signal. */
  load: z.number(),
  rssBytes: z.number(),
  leaving: z.boolean().default(false),
  /** The revision of the cluster's settings this node runs (actors/config; 0: none written yet). */
  configRevision: z.number().int().default(0),
  /** The jade build it runs, and the formats it reads (runtime/formats.ts): mixed versions show during an upgrade. */
  version: z.string().default("unknown"),
  formats: ReadableFormats.default({ log: { min: 1, max: 1 }, message: { min: 1, max: 1 } }),
  /** The transactions its gateway ran and its recovery finished (absent from a build without them). */
  txns: TxnFigures.optional(),
});
export type NodeHeartbeat = z.infer<typeof NodeHeartbeat>;

export interface MembershipSettings {
  heartbeatIntervalMs: number;
  /** A node silent this long is skipped by routers and not given new replicas. */
  failureTimeoutMs: number;
}

/** The failure timeout is the client's silence bound too (src/client/nodes.ts). */
export const defaultMembershipSettings: MembershipSettings = {
  heartbeatIntervalMs: heartbeatIntervalMsDefault,
  failureTimeoutMs: nodeSilentMsDefault,
};

export interface Member {
  heartbeat: NodeHeartbeat;
  /** performance.now() when we received it. */
  seenAtMs: number;
}

export class Membership {
  readonly nodeId: string;
  readonly #kv: ListedKv;
  readonly #log: Logger;
  #settings: MembershipSettings;
  readonly #describe: () => Pick<NodeHeartbeat, "replicas" | "load" | "configRevision" | "txns">;
  /** Decoding happens as the watch delivers, so a member's `seenAtMs` is when we received it. */
  readonly #members: KvView<Member>;
  readonly #events = new EventEmitter();
  readonly #startedAt = new Date().toISOString();
  #beat = 0;
  #timer: NodeJS.Timeout | undefined;
  #live = new Set<string>();

  constructor(kv: ListedKv, nodeId: string, describe: () => Pick<NodeHeartbeat, "replicas" | "load" | "configRevision" | "txns">, log: Logger, settings = defaultMembershipSettings) {
    this.#kv = kv;
    this.nodeId = nodeId;
    this.#describe = describe;
    this.#log = log.child({ actor: "membership" });
    this.#settings = settings;
    this.#members = new KvView(kv, {
      decode: (entry) => ({ heartbeat: NodeHeartbeat.parse(entry.json()), seenAtMs: performance.now() }),
      log: this.#log,
    });
  }

  async start(): Promise<void> {
    await this.#members.start();
    await this.beat();
    this.#startTimer();
  }

  /** New timing from now on (the cluster's settings changed): the next heartbeat comes at the new interval. */
  setTiming(settings: MembershipSettings): void {
    const restart = settings.heartbeatIntervalMs !== this.#settings.heartbeatIntervalMs && this.#timer !== undefined;
    this.#settings = settings;
    if (restart) {
      clearInterval(this.#timer);
      this.#startTimer();
    }
  }

  #startTimer(): void {
    this.#timer = setInterval(() => void this.beat().catch((err) => this.#log.warn({ err: String(err) }, "heartbeat failed")), this.#settings.heartbeatIntervalMs);
    this.#timer.unref();
  }

  async beat(leaving = false): Promise<void> {
    const heartbeat: NodeHeartbeat = {
      nodeId: this.nodeId,
      startedAt: this.#startedAt,
      beat: ++this.#beat,
      rssBytes: process.memoryUsage.rss(),
      leaving,
      version: jadeVersion,
      formats: buildFormats,
      ...this.#describe(),
    };
    const revision = await this.#kv.put(this.nodeId, JSON.stringify(heartbeat));
    this.#members.applyOwnWrite(this.nodeId, { heartbeat, seenAtMs: performance.now() }, revision);
    this.#checkLiveness();
  }

  /** Says goodbye (so peers stop routing here at once) and stops heart-beating. */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#kv.delete(this.nodeId).catch(() => undefined);
    await this.#members.stop();
  }

  /**
   * Heard from within `silentMs` (default: the failure timeout routers use) and not leaving.
   * Silence is measured up to when our own watch last delivered anything (plus two
   * intervals): when our watch stalls (a NATS server we read from died, and the client
   * has not noticed yet), we cannot tell, so nobody ages — a coordinator must not
   * declare the whole cluster dead because it went deaf.
   */
  isLive(nodeId: string, silentMs = this.#settings.failureTimeoutMs): boolean {
    if (nodeId === this.nodeId) return true;
    const member = this.member(nodeId);
    if (member === undefined || member.heartbeat.leaving) return false;
    // Our own heartbeat comes back through the watch every interval, so a quiet watch is a stalled one.
    const reference = Math.min(performance.now(), this.#members.lastDeliveryMs + 2 * this.#settings.heartbeatIntervalMs);
    return reference - member.seenAtMs <= silentMs;
  }

  liveNodes(silentMs = this.#settings.failureTimeoutMs): string[] {
    return this.#members
      .entries()
      .map(([id]) => id)
      .filter((id) => this.isLive(id, silentMs))
      .sort();
  }

  member(nodeId: string): Member | undefined {
    return this.#members.get(nodeId)?.value;
  }

  members(): Member[] {
    return this.#members.values();
  }

  /** What the node's last heartbeat said about its replica of shard `shard` of collection incarnation `uid`. */
  replicaBeat(nodeId: string, uid: string, shard: number): ReplicaBeat | undefined {
    return this.member(nodeId)?.heartbeat.replicas.find((r) => r.uid === uid && r.shard === shard);
  }

  /** Called with the new live set whenever a node joins, leaves or goes silent. */
  onChange(listener: (live: string[]) => void): () => void {
    this.#events.on("change", listener);
    return () => this.#events.off("change", listener);
  }

  #checkLiveness(): void {
    const live = new Set(this.liveNodes());
    const changed = live.size !== this.#live.size || [...live].some((id) => !this.#live.has(id));
    this.#live = live;
    if (changed) this.#events.emit("change", [...live]);
  }
}
