/**
 * Client-side view of the live nodes, from the heartbeats in KV `jade_nodes`.
 * A request to the shared queue group can land on a node that hung after it
 * subscribed (NATS keeps feeding it until the connection dies), so the client
 * addresses live nodes directly and moves on from one that does not answer.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { openListedKv } from "../nats/kv-keys.ts";
import { z } from "zod";
import { KvView } from "../nats/kv-view.ts";
import { names } from "../runtime/subjects.ts";
import { nodeSilentMsDefault } from "../runtime/limits.ts";


/** The two heartbeat fields a client needs, so a heartbeat of another server version still counts. */
const TrackedBeat = z.object({ nodeId: z.string(), leaving: z.boolean().default(false) });

/** `seenAtMs`: performance.now() when its heartbeat reached us. */
type TrackedNode = z.infer<typeof TrackedBeat> & { seenAtMs: number };

export class NodeTracker {
  #nodes: KvView<TrackedNode> | undefined;
  /** Nodes that failed to answer us, and when: skipped until a heartbeat newer than that. */
  readonly #suspect = new Map<string, number>();
  #next = 0;

  /** Starts watching; if the bucket does not exist yet, the tracker stays empty (callers fall back to the queue group). */
  async start(nc: NatsConnection): Promise<void> {
    try {
      const nodes = new KvView(await openListedKv(nc, names.nodesBucket), {
        decode: (entry) => ({ ...TrackedBeat.parse(entry.json()), seenAtMs: performance.now() }),
      });
      await nodes.start();
      this.#nodes = nodes;
    } catch {
      // No cluster has run on this NATS yet.
    }
  }

  stop(): void {
    void this.#nodes?.stop();
  }

  /** Live nodes in rotating order (round-robin across calls), not counting those in `exclude`. */
  candidates(exclude: ReadonlySet<string> = new Set()): string[] {
    const now = performance.now();
    const live = (this.#nodes?.values() ?? [])
      .filter((n) => !n.leaving && now - n.seenAtMs <= nodeSilentMsDefault && !exclude.has(n.nodeId) && !this.#isSuspect(n))
      .map((n) => n.nodeId)
      .sort();
    if (live.length === 0) return [];
    const start = this.#next++ % live.length;
    return live.map((_, i) => live[(start + i) % live.length]!);
  }

  /** A node did not answer: skip it until its next heartbeat. */
  suspect(nodeId: string): void {
    this.#suspect.set(nodeId, performance.now());
  }

  /** Suspected and not heard from since. */
  #isSuspect(node: TrackedNode): boolean {
    const suspectedAtMs = this.#suspect.get(node.nodeId);
    return suspectedAtMs !== undefined && suspectedAtMs >= node.seenAtMs;
  }
}
