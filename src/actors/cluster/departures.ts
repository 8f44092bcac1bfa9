/**
 * Graceful departures (rolling restarts, upgrades): a node that stops cleanly says so in KV
 * `jade_config` (`departed.<node>`) before its goodbye heartbeat, with the log sequence each of
 * its replicas will restart from. For `coordinator.restartDelayMs` after that the coordinator
 * keeps the node's replicas where they are (routers already read the other replicas) and
 * retention keeps the log those replicas will replay: a node back within the delay replays only
 * what it missed, and nothing is copied. Elasticsearch's `delayed_timeout` waits the same way;
 * its peers then copy whole shards, ours replay a log. Past the delay the node counts as dead
 * and its replicas are placed elsewhere. The node deletes its record once it is back.
 *
 * How long ago a node left is the shorter of the wall-clock time since it wrote the record and
 * the monotonic time since this process first saw it: a clock ahead or behind on either side
 * only makes the wait longer, never cuts it short.
 */
import type { ListedKv } from "../../nats/kv-keys.ts";
import { z } from "zod";
import { KvView } from "../../nats/kv-view.ts";
import { limits } from "../../runtime/limits.ts";
import type { Logger } from "../../runtime/log.ts";
import { names } from "../../runtime/subjects.ts";

export const Departure = z
  .object({
    node: z.string(),
    at: z.iso.datetime(),
    /** Each replica's restart point: the sequence its local checkpoint will cover. */
    replicas: z.array(z.object({ collection: z.string(), uid: z.string(), shard: z.number().int().min(0), seq: z.number().int().min(0) }).strict()).max(limits.replicasPerNodeMax),
  })
  .strict();
export type Departure = z.infer<typeof Departure>;

/** The bucket's other keys (settings, node sets) are read, not used, here. */
type Stored = { departure: Departure } | { other: true };

export class Departures {
  readonly #kv: ListedKv;
  readonly #view: KvView<Stored>;
  /** node → performance.now() when this process first saw its current record. */
  readonly #seenAtMs = new Map<string, number>();

  constructor(kv: ListedKv, log: Logger) {
    this.#kv = kv;
    this.#view = new KvView(kv, {
      decode: (entry) => (names.isDepartedKey(entry.key) ? { departure: Departure.parse(entry.json()) } : { other: true }),
      log,
    });
    this.#view.onChange((change) => {
      if (!names.isDepartedKey(change.key)) return;
      const node = names.nodeOfDepartedKey(change.key);
      if (change.value === undefined) this.#seenAtMs.delete(node);
      else this.#seenAtMs.set(node, performance.now());
    });
  }

  start(): Promise<void> {
    return this.#view.start();
  }

  stop(): Promise<void> {
    return this.#view.stop();
  }

  /** Says this node is leaving on purpose, and what its replicas will replay when it is back. */
  async announce(departure: Omit<Departure, "at">): Promise<void> {
    const record: Departure = { ...departure, at: new Date().toISOString() };
    const revision = await this.#kv.put(names.departedKey(departure.node), JSON.stringify(record));
    this.#view.applyOwnWrite(names.departedKey(departure.node), { departure: record }, revision);
  }

  /** What `node` said when it last left cleanly, if its record is still there. */
  of(node: string): Departure | undefined {
    const stored = this.#view.get(names.departedKey(node))?.value;
    return stored && "departure" in stored ? stored.departure : undefined;
  }

  /** The node is back (or removed for good): its record goes. */
  async clear(node: string): Promise<void> {
    if (this.#view.get(names.departedKey(node)) === undefined && (await this.#kv.get(names.departedKey(node)))?.operation !== "PUT") return;
    await this.#kv.delete(names.departedKey(node));
    this.#view.applyOwnDelete(names.departedKey(node));
  }

  /** Nodes that left on purpose less than `delayMs` ago, with their records. */
  within(delayMs: number): Departure[] {
    const out: Departure[] = [];
    for (const [key, { value }] of this.#view.entries()) {
      if (!("departure" in value)) continue;
      const sinceWrittenMs = Date.now() - Date.parse(value.departure.at);
      const sinceSeenMs = performance.now() - (this.#seenAtMs.get(names.nodeOfDepartedKey(key)) ?? performance.now());
      if (Math.min(sinceWrittenMs, sinceSeenMs) < delayMs) out.push(value.departure);
    }
    return out;
  }
}
