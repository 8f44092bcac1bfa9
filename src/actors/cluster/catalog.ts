/**
 * The collection catalog: configs in KV `jade_collections`, cached from a watch
 * so the hot path never waits on KV. A cache miss falls back to KV, so a
 * collection created through another node is usable before our watch sees it.
 */
import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import type { KV } from "@nats-io/kv";
import { ErrorCode, JadeError, notFound } from "../../runtime/errors.ts";
import type { Logger } from "../../runtime/log.ts";
import type { NatsContext } from "../../nats/connect.ts";
import { ensureStream, shardStreamConfig } from "../../nats/streams.ts";
import { parse } from "../../runtime/checks.ts";
import { CollectionConfig, CreateCollectionRequest } from "../../runtime/schemas.ts";
import { planSharding } from "../../runtime/sharding/index.ts";
import { names } from "../../runtime/subjects.ts";

export type CatalogChange = { type: "put"; config: CollectionConfig } | { type: "delete"; name: string };

const encoder = new TextEncoder();

export class Catalog {
  readonly #ctx: NatsContext;
  readonly #kv: KV;
  readonly #log: Logger;
  readonly #cache = new Map<string, CollectionConfig>();
  readonly #events = new EventEmitter();
  #stopWatch: (() => void) | undefined;

  constructor(ctx: NatsContext, log: Logger) {
    this.#ctx = ctx;
    this.#kv = ctx.collections;
    this.#log = log.child({ actor: "catalog" });
  }

  /** Starts the watch and resolves once the current configs are cached. */
  async start(): Promise<void> {
    const watch = await this.#kv.watch();
    this.#stopWatch = () => watch.stop();
    let initialDone: () => void;
    const initial = new Promise<void>((r) => (initialDone = r));
    // A watch of an empty bucket delivers nothing, so "caught up" is also reached by pending = 0 on the first entry or by status.
    const status = await this.#kv.status();
    if (status.values === 0) initialDone!();
    void (async () => {
      for await (const entry of watch) {
        if (entry.operation === "PUT") {
          const config = this.#decode(entry.value);
          if (config) this.#apply({ type: "put", config });
        } else {
          this.#apply({ type: "delete", name: entry.key });
        }
        if (entry.delta === 0) initialDone!();
      }
    })().catch((err) => this.#log.error({ err }, "catalog watch ended"));
    await initial;
  }

  stop(): void {
    this.#stopWatch?.();
  }

  onChange(listener: (change: CatalogChange) => void): () => void {
    this.#events.on("change", listener);
    return () => this.#events.off("change", listener);
  }

  cached(): CollectionConfig[] {
    return [...this.#cache.values()];
  }

  /** The collection's config, or a not_found error. */
  async require(name: string): Promise<CollectionConfig> {
    const cached = this.#cache.get(name);
    if (cached) return cached;
    const entry = await this.#kv.get(name);
    const config = entry && entry.operation === "PUT" ? this.#decode(entry.value) : undefined;
    if (!config) throw notFound(`collection ${JSON.stringify(name)} does not exist`);
    return config;
  }

  async create(raw: unknown): Promise<CollectionConfig> {
    const { sharding, splitPoints, sample, centroids, ...request } = parse(CreateCollectionRequest, raw);
    // auto is resolved and a sample trained into centroids here, once; the sample is not stored.
    const plan = planSharding({ ...request, sharding, splitPoints, sample, centroids });
    const config: CollectionConfig = { ...request, ...plan, createdAt: new Date().toISOString(), uid: randomUUID() };
    const exists = () => this.#kv.get(config.name).then((e) => e?.operation === "PUT");
    const duplicate = () => new JadeError(ErrorCode.AlreadyExists, `collection ${JSON.stringify(config.name)} already exists`);
    if (await exists()) throw duplicate();
    // The shard logs exist before the collection does: replicas started by its appearance
    // (on every node, through the watch) find their streams.
    try {
      for (let shard = 0; shard < config.shards; shard++) {
        await ensureStream(this.#ctx.jsm, shardStreamConfig(config.name, shard, this.#ctx.streamReplicas));
      }
    } catch (err) {
      throw new JadeError(ErrorCode.Unavailable, `could not create the shard logs of ${config.name}`, { cause: err });
    }
    try {
      await this.#kv.create(config.name, encoder.encode(JSON.stringify(config)));
    } catch (err) {
      if (await exists()) throw duplicate();
      throw err;
    }
    this.#apply({ type: "put", config });
    this.#log.info({ collection: config.name, shards: config.shards, dimension: config.dimension }, "collection created");
    return config;
  }

  async list(): Promise<CollectionConfig[]> {
    const keys = await this.#kv.keys();
    const configs: CollectionConfig[] = [];
    for await (const key of keys) {
      const entry = await this.#kv.get(key);
      const config = entry && entry.operation === "PUT" ? this.#decode(entry.value) : undefined;
      if (config) configs.push(config);
    }
    return configs.sort((a, b) => a.name.localeCompare(b.name));
  }

  async drop(name: string): Promise<{ dropped: string }> {
    const config = await this.require(name);
    await this.#kv.delete(name);
    this.#apply({ type: "delete", name });
    for (let shard = 0; shard < config.shards; shard++) {
      await this.#ctx.jsm.streams.delete(names.logStream(name, shard)).catch(() => false);
    }
    for (const info of await this.#ctx.snapshots.list()) {
      if (info.name.startsWith(`${name}/`)) await this.#ctx.snapshots.delete(info.name).catch(() => undefined);
    }
    this.#log.info({ collection: name }, "collection dropped");
    return { dropped: name };
  }

  #apply(change: CatalogChange): void {
    if (change.type === "put") {
      const previous = this.#cache.get(change.config.name);
      if (previous?.uid === change.config.uid) return;
      if (previous) this.#emit({ type: "delete", name: previous.name });
      this.#cache.set(change.config.name, change.config);
    } else {
      if (!this.#cache.delete(change.name)) return;
    }
    this.#emit(change);
  }

  #emit(change: CatalogChange): void {
    this.#events.emit("change", change);
  }

  #decode(bytes: Uint8Array): CollectionConfig | undefined {
    try {
      return CollectionConfig.parse(JSON.parse(new TextDecoder().decode(bytes)));
    } catch (err) {
      this.#log.error({ err }, "unreadable collection config in KV");
      return undefined;
    }
  }
}
