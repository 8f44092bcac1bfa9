/**
 * The collection catalog: configs in KV `jade_collections`, cached from a watch
 * so the hot path never waits on KV. A cache miss falls back to KV, so a
 * collection created through another node is usable before our watch sees it.
 */
import { randomUUID } from "node:crypto";
import type { ListedKv } from "../../nats/kv-keys.ts";
import { ErrorCode, JadeError, notFound } from "../../runtime/errors.ts";
import type { Logger } from "../../runtime/log.ts";
import type { NatsContext } from "../../nats/connect.ts";
import { KvView } from "../../nats/kv-view.ts";
import { ensureStream, shardStreamConfig } from "../../nats/streams.ts";
import { parse } from "../../runtime/checks.ts";
import { CollectionConfig, CreateCollectionRequest, UpdateCollectionRequest } from "../../runtime/schemas.ts";
import { planSharding } from "../../runtime/sharding/index.ts";
import { names } from "../../runtime/subjects.ts";
import type { SnapshotStore } from "../../nats/snapshots.ts";

/** A config the nodes act on: not one a restore is still loading. */
function visible(config: CollectionConfig | undefined): CollectionConfig | undefined {
  return config?.restoring?.phase === "loading" ? undefined : config;
}

export type CatalogChange = { type: "put"; config: CollectionConfig } | { type: "delete"; name: string };

const encoder = new TextEncoder();

export class Catalog {
  readonly #ctx: NatsContext;
  readonly #kv: ListedKv;
  readonly #log: Logger;
  readonly #view: KvView<CollectionConfig>;
  readonly #snapshots: SnapshotStore;

  constructor(ctx: NatsContext, snapshots: SnapshotStore, log: Logger) {
    this.#ctx = ctx;
    this.#snapshots = snapshots;
    this.#kv = ctx.collections;
    this.#log = log.child({ actor: "catalog" });
    this.#view = new KvView(this.#kv, { decode: (entry) => CollectionConfig.parse(entry.json()), log: this.#log });
  }

  /** Starts the watch and resolves once the current configs are cached. */
  start(): Promise<void> {
    return this.#view.start();
  }

  stop(): void {
    void this.#view.stop();
  }

  /**
   * A collection re-created under the same name (new uid) is told as the old one's delete,
   * then the new one's put; a re-put of the same incarnation is not a change.
   */
  onChange(listener: (change: CatalogChange) => void): () => void {
    return this.#view.onChange((change) => {
      const { key } = change;
      const value = visible(change.value);
      const previous = visible(change.previous);
      if (previous !== undefined && previous.uid === value?.uid) return;
      if (previous !== undefined) listener({ type: "delete", name: key });
      if (value !== undefined) listener({ type: "put", config: value });
    });
  }

  /** The collections nodes serve (or start serving: a restore's `starting` phase). */
  cached(): CollectionConfig[] {
    return this.#view.values().filter((c) => visible(c) !== undefined);
  }

  /** Every stored collection, those a restore is still loading included. */
  stored(): CollectionConfig[] {
    return this.#view.values();
  }

  /** The collection's config, or a not_found error; `unavailable` while a restore builds it. */
  async require(name: string): Promise<CollectionConfig> {
    const config = await this.#find(name);
    if (config.restoring) throw new JadeError(ErrorCode.Unavailable, `collection ${JSON.stringify(name)} is being restored (restore ${config.restoring.id})`);
    return config;
  }

  async #find(name: string): Promise<CollectionConfig> {
    const config = this.#view.get(name) ?? (await this.#view.read(name));
    if (!config) throw notFound(`collection ${JSON.stringify(name)} does not exist`);
    return config.value;
  }

  async create(raw: unknown): Promise<CollectionConfig> {
    const { sharding, splitPoints, sample, centroids, ...request } = parse(CreateCollectionRequest, raw);
    // auto is resolved and a sample trained into centroids here, once; the sample is not stored.
    const plan = planSharding({ ...request, sharding, splitPoints, sample, centroids });
    const config: CollectionConfig = { ...request, ...plan, createdAt: new Date().toISOString(), uid: randomUUID() };
    return this.#create(config);
  }

  /**
   * Reserves a name for a restore: the config of the collection it rebuilds, new uid, in its
   * `loading` phase; the restore writes its logs itself (actors/backup/restore.ts).
   */
  async createRestoring(source: CollectionConfig, name: string, restoreId: string): Promise<CollectionConfig> {
    const config: CollectionConfig = { ...source, name, uid: randomUUID(), createdAt: new Date().toISOString(), restoring: { id: restoreId, phase: "loading" } };
    return this.#create(config);
  }

  /** Moves a restore on (`starting`), or ends it (undefined): CAS on the stored config, which must still be this incarnation. */
  async setRestoring(name: string, uid: string, phase: "starting" | undefined): Promise<CollectionConfig> {
    const entry = await this.#kv.get(name);
    const stored = entry?.operation === "PUT" ? CollectionConfig.parse(entry.json()) : undefined;
    if (!stored?.restoring || stored.uid !== uid) throw new JadeError(ErrorCode.Conflict, `collection ${JSON.stringify(name)} is no longer the one being restored (dropped?)`);
    const { restoring, ...rest } = stored;
    const config: CollectionConfig = phase ? { ...rest, restoring: { id: restoring.id, phase } } : rest;
    const revision = await this.#kv.update(name, encoder.encode(JSON.stringify(config)), entry!.revision);
    this.#view.applyOwnWrite(name, config, revision);
    return config;
  }

  async #create(config: CollectionConfig): Promise<CollectionConfig> {
    const exists = () => this.#kv.get(config.name).then((e) => e?.operation === "PUT");
    const duplicate = () => new JadeError(ErrorCode.AlreadyExists, `collection ${JSON.stringify(config.name)} already exists`);
    if (await exists()) throw duplicate();
    // The shard logs exist before the collection does: replicas started by its appearance
    // (on every node, through the watch) find their streams. A restore writes its own.
    if (!config.restoring) await this.#createLogs(config);
    let revision: number;
    try {
      revision = await this.#kv.create(config.name, encoder.encode(JSON.stringify(config)));
    } catch (err) {
      if (await exists()) throw duplicate();
      throw err;
    }
    this.#view.applyOwnWrite(config.name, config, revision);
    this.#log.info({ collection: config.name, shards: config.shards, dimension: config.dimension }, "collection created");
    return config;
  }

  async #createLogs(config: CollectionConfig): Promise<void> {
    try {
      for (let shard = 0; shard < config.shards; shard++) {
        await ensureStream(this.#ctx.jsm, shardStreamConfig(config.name, shard, this.#ctx.streamReplicas));
      }
    } catch (err) {
      throw new JadeError(ErrorCode.Unavailable, `could not create the shard logs of ${config.name}`, { cause: err });
    }
  }

  async list(): Promise<CollectionConfig[]> {
    const configs: CollectionConfig[] = [];
    for (const key of await this.#kv.listKeys()) {
      const config = await this.#view.read(key);
      if (config) configs.push(config.value);
    }
    return configs.sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * Changes the settings that may change (retention) by compare-and-set on the stored config:
   * a concurrent create, drop or update makes this one fail as `conflict`, never lost.
   */
  async update(raw: unknown): Promise<CollectionConfig> {
    const { name, retention } = parse(UpdateCollectionRequest, raw);
    const entry = await this.#kv.get(name);
    if (entry?.operation !== "PUT") throw notFound(`collection ${JSON.stringify(name)} does not exist`);
    const config: CollectionConfig = { ...CollectionConfig.parse(entry.json()), retention };
    let revision: number;
    try {
      revision = await this.#kv.update(name, encoder.encode(JSON.stringify(config)), entry.revision);
    } catch (err) {
      throw new JadeError(ErrorCode.Conflict, `collection ${JSON.stringify(name)} changed while it was updated; retry`, { cause: err });
    }
    this.#view.applyOwnWrite(name, config, revision);
    this.#log.info({ collection: name, retention }, "collection updated");
    return config;
  }

  async drop(name: string): Promise<{ dropped: string }> {
    // A collection being restored may be dropped too: that is how a failed restore is cleaned up.
    const config = await this.#find(name);
    // Purged, not deleted: the dropped config's history goes with it.
    await this.#kv.purge(name);
    this.#view.applyOwnDelete(name);
    for (let shard = 0; shard < config.shards; shard++) {
      await this.#ctx.jsm.streams.delete(names.logStream(name, shard)).catch(() => false);
    }
    // Every incarnation's snapshots and what retention published: a dropped collection leaves nothing behind.
    for (const snapshot of await this.#snapshots.all()) {
      if (snapshot.collection === name) await this.#snapshots.delete(snapshot.name).catch(() => undefined);
    }
    await this.#ctx.retention.purge(name).catch(() => undefined);
    this.#log.info({ collection: name }, "collection dropped");
    return { dropped: name };
  }
}
