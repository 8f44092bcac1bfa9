/**
 * Client-side view of the live nodes, from the heartbeats in KV `jade_nodes`.
 * A request to the shared queue group can land on a node that hung after it
 * subscribed (NATS keeps feeding it until the connection dies), so the client
 * addresses live nodes directly and moves on from one that does not answer.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { Kvm } from "@nats-io/kv";
import { names } from "../runtime/subjects.ts";

/** Same as the routers' failure timeout: a node silent this long is not asked. */
export const nodeSilentMsMax = 3_000;

export class NodeTracker {
  readonly #seen = new Map<string, number>();
  /** Nodes that just failed to answer us: skipped until they beat again. */
  readonly #suspect = new Map<string, number>();
  #next = 0;
  #stop: (() => void) | undefined;

  /** Starts watching; if the bucket does not exist yet, the tracker stays empty (callers fall back to the queue group). */
  async start(nc: NatsConnection): Promise<void> {
    try {
      const kv = await new Kvm(nc).open(names.nodesBucket);
      const watch = await kv.watch();
      this.#stop = () => watch.stop();
      void (async () => {
        for await (const entry of watch) {
          if (entry.operation !== "PUT") {
            this.#seen.delete(entry.key);
            continue;
          }
          try {
            const beat = entry.json<{ nodeId?: string; leaving?: boolean }>();
            if (typeof beat.nodeId !== "string") continue;
            if (beat.leaving) this.#seen.delete(beat.nodeId);
            else {
              this.#seen.set(beat.nodeId, performance.now());
              this.#suspect.delete(beat.nodeId);
            }
          } catch {
            // Not a heartbeat we can read: ignore it.
          }
        }
      })().catch(() => undefined);
    } catch {
      // No cluster has run on this NATS yet.
    }
  }

  stop(): void {
    this.#stop?.();
  }

  /** Live nodes in rotating order (round-robin across calls), not counting those in `exclude`. */
  candidates(exclude: ReadonlySet<string> = new Set()): string[] {
    const now = performance.now();
    const live = [...this.#seen]
      .filter(([id, seenAt]) => now - seenAt <= nodeSilentMsMax && !exclude.has(id) && !this.#suspect.has(id))
      .map(([id]) => id)
      .sort();
    if (live.length === 0) return [];
    const start = this.#next++ % live.length;
    return live.map((_, i) => live[(start + i) % live.length]!);
  }

  /** A node did not answer: skip it until its next heartbeat. */
  suspect(nodeId: string): void {
    this.#suspect.set(nodeId, performance.now());
  }
}
