/**
 * The transactional workload of a chaos run (decision 013), on a collection of its own: one
 * transaction at a time, each upserting a group of ids spread over the shards (payload
 * {g: n}) and deleting the group written `keepGroups` transactions before, so every
 * transaction both creates and removes points atomically across shards. Readers meanwhile
 * count, get and search one recent group at a time: each read must show all of a group or
 * none of it (a `partial` result, a shard unanswered, cannot be judged and is only counted).
 *
 * After the last fault, `check` holds every group to what its transactions' clients were
 * told: committed → applied, refused → not, no answer (indeterminate) → either, but whole.
 */
import type { JadeClient } from "../src/client/client.ts";
import { errorMessage } from "../src/runtime/errors.ts";
import { delay, now, seededRandom, withTimeout } from "./util.ts";

export interface TxnWorkloadOptions {
  collection: string;
  shards: number;
  replicas: number;
  dimension: number;
  seed: number;
  /** Ids each transaction writes. */
  groupSize: number;
  /** Groups alive at once: transaction n deletes group n − keepGroups. */
  keepGroups: number;
  timeoutMs: number;
  writeIntervalMs: number;
  readIntervalMs: number;
  maxDurationMs: number;
}

/** What the client of a transaction was told. */
type Told = "committed" | "refused" | "indeterminate";

export interface HalfRead {
  at: string;
  group: number;
  read: "count" | "get" | "search";
  shown: number;
}

export interface TxnCheck {
  groups: number;
  /** Groups whose final state breaks what their transactions' clients were told. */
  broken: { group: number; expected: string; shown: number }[];
  halfReads: HalfRead[];
  reads: { judged: number; partial: number; errors: number };
  told: Record<Told, number>;
  errors: Record<string, number>;
}

const idsOf = (group: number, size: number) => Array.from({ length: size }, (_, j) => `g${group}-${j}`);

export class TxnWorkload {
  readonly options: TxnWorkloadOptions;
  readonly #client: JadeClient;
  /** Group n → what the client of the transaction that wrote it (and deleted group n − keepGroups) was told. */
  readonly told = new Map<number, Told>();
  readonly halfReads: HalfRead[] = [];
  readonly reads = { judged: 0, partial: 0, errors: 0 };
  readonly errors = new Map<string, number>();
  #stopping = false;
  #loops: Promise<void>[] = [];

  constructor(client: JadeClient, options: TxnWorkloadOptions) {
    this.#client = client;
    this.options = options;
  }

  setup(): Promise<unknown> {
    const { collection, dimension, shards, replicas } = this.options;
    return this.#client.createCollection({ name: collection, dimension, metric: "l2", shards, replicas });
  }

  start(): void {
    const startedAt = performance.now();
    const running = () => !this.#stopping && performance.now() - startedAt < this.options.maxDurationMs;
    this.#loops = [this.#writer(running), this.#reader(running, this.options.seed * 13 + 1), this.#reader(running, this.options.seed * 13 + 2)];
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    await withTimeout(Promise.all(this.#loops), this.options.timeoutMs * 3 + 10_000, "transactional workload stop").catch(() => undefined);
  }

  async #writer(running: () => boolean): Promise<void> {
    const { collection, groupSize, keepGroups, dimension, timeoutMs } = this.options;
    for (let group = 0; running(); group++) {
      const points = idsOf(group, groupSize).map((id, j) => ({ id, vector: Array.from({ length: dimension }, (_, d) => (d === 0 ? group : j)), payload: { g: group } }));
      const ops: Parameters<JadeClient["transaction"]>[1]["ops"] = [{ op: "upsert", points }];
      if (group >= keepGroups) ops.push({ op: "delete", ids: idsOf(group - keepGroups, groupSize) });
      this.told.set(group, "indeterminate");
      try {
        await withTimeout(this.#client.transaction(collection, { ops, timeoutMs }), timeoutMs + 10_000, `transaction ${group}`);
        this.told.set(group, "committed");
      } catch (err) {
        const code = (err as { code?: string }).code ?? "no_answer";
        this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
        // conflict: refused (a failed vote, a lock not taken); anything else leaves it in doubt.
        if (code === "conflict") this.told.set(group, "refused");
      }
      await delay(this.options.writeIntervalMs);
    }
  }

  async #reader(running: () => boolean, seed: number): Promise<void> {
    const random = seededRandom(seed);
    const { collection, groupSize, keepGroups, dimension } = this.options;
    for (let op = 0; running(); op++) {
      const newest = this.told.size - 1;
      if (newest < 0) {
        await delay(this.options.readIntervalMs);
        continue;
      }
      // Recent groups: the one being written, and those being deleted.
      const group = Math.max(0, newest - Math.floor(random() * (keepGroups + 2)));
      const consistency = op % 2 === 0 ? "eventual" : "strong";
      const reads = {
        count: () => this.#client.count(collection, { filter: { g: group }, consistency }).then((r) => ({ partial: r.partial, shown: r.count })),
        get: () => this.#client.get(collection, { ids: idsOf(group, groupSize), consistency }).then((r) => ({ partial: r.partial, shown: r.points.length })),
        search: () =>
          this.#client.search(collection, { vector: Array.from({ length: dimension }, () => 0), k: groupSize + 4, filter: { g: group }, consistency }).then((r) => ({ partial: r.partial, shown: r.hits.length })),
      };
      const kind = (["count", "get", "search"] as const)[op % 3]!;
      try {
        const { partial, shown } = await withTimeout(reads[kind](), 60_000, "transactional read guard");
        if (partial) this.reads.partial++;
        else {
          this.reads.judged++;
          if (shown !== 0 && shown !== groupSize) this.halfReads.push({ at: new Date(now()).toISOString(), group, read: kind, shown });
        }
      } catch (err) {
        this.reads.errors++;
        const code = `read ${(err as { code?: string }).code ?? errorMessage(err).slice(0, 40)}`;
        this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
      }
      await delay(this.options.readIntervalMs);
    }
  }

  /** After the faults: every group whole, and as its transactions' clients were told. */
  async check(): Promise<TxnCheck> {
    const { collection, groupSize, keepGroups } = this.options;
    const broken: TxnCheck["broken"] = [];
    const told = { committed: 0, refused: 0, indeterminate: 0 };
    for (const [group, outcome] of this.told) {
      told[outcome]++;
      const { count } = await this.#client.count(collection, { filter: { g: group }, consistency: "strong" });
      const expected = expectedState(outcome, this.told.get(group + keepGroups));
      const fits = expected === "present" ? count === groupSize : expected === "absent" ? count === 0 : count === 0 || count === groupSize;
      if (!fits) broken.push({ group, expected, shown: count });
    }
    return { groups: this.told.size, broken, halfReads: this.halfReads, reads: this.reads, told, errors: Object.fromEntries(this.errors) };
  }

  /** The ids written, for the replicas' convergence check. */
  ids(): string[] {
    return [...this.told.keys()].flatMap((g) => idsOf(g, this.options.groupSize));
  }
}

/** Where a group must be: written by `created`'s transaction, deleted by `deletedBy`'s (none yet: undefined). */
function expectedState(created: Told, deletedBy: Told | undefined): "present" | "absent" | "either" {
  if (created === "refused" || deletedBy === "committed") return "absent";
  if (created === "committed" && (deletedBy === undefined || deletedBy === "refused")) return "present";
  return "either";
}
