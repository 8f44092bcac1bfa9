/**
 * Central configuration (DIST-011): the cluster's settings patch in KV `jade_config` under key
 * `settings`, every change a new revision (the bucket keeps the last 64). Every node watches
 * it and runs its own settings with the patch laid over them (schemas.ts), telling its parts
 * through `onChange`; the revision it runs goes into its heartbeat, so `jade status` and the
 * dashboard show a node still on an older one. A change is validated whole (zod, then the
 * relations between settings) before it is written, and refused with the reason otherwise;
 * a node whose own settings the new revision contradicts keeps the one it runs and says why.
 * Any gateway serves `admin.config.*`: writes are compare-and-set on the key's revision.
 */
import type { ListedKv } from "../../nats/kv-keys.ts";
import { z } from "zod";
import { KvView } from "../../nats/kv-view.ts";
import { parse } from "../../runtime/checks.ts";
import { ErrorCode, invalidArgument, JadeError } from "../../runtime/errors.ts";
import type { Logger } from "../../runtime/log.ts";
import { EmptyRequest } from "../../runtime/schemas.ts";
import { AdminOp, names, type ConfigOp } from "../../runtime/subjects.ts";
import { changed, diff, effective, relationIssue, type NodeBounds } from "./patch.ts";
import { ConfigRecord, ConfigRollbackRequest, ConfigSetRequest, SettingsPatch, type ClusterSettings, type ConfigRevision, type NodeConfigView } from "./schemas.ts";

/** The bucket's other keys (node sets: actors/control/admin.ts) are read, not used, here. */
type Stored = { record: ConfigRecord } | { other: true };

export interface ClusterConfigDeps {
  nodeId: string;
  kv: ListedKv;
  /** This node's own settings: its flags, or the defaults. */
  own: ClusterSettings;
  bounds: NodeBounds;
  /** The revision each node reports running (from heartbeats). */
  nodes: () => NodeConfigView[];
  log: Logger;
}

export class ClusterConfig {
  readonly #deps: ClusterConfigDeps;
  readonly #view: KvView<Stored>;
  readonly #listeners = new Set<(settings: ClusterSettings) => void>();
  #applied: { revision: number; settings: ClusterSettings };

  constructor(deps: ClusterConfigDeps) {
    this.#deps = deps;
    this.#applied = { revision: 0, settings: this.#deps.own };
    this.#view = new KvView(deps.kv, {
      decode: (entry) => (entry.key === names.settingsKey ? { record: ConfigRecord.parse(entry.json()) } : { other: true }),
      log: deps.log,
    });
  }

  async start(): Promise<void> {
    this.#view.onChange((change) => {
      if (change.key === names.settingsKey) this.#apply(change.revision, change.value);
    });
    await this.#view.start();
  }

  stop(): Promise<void> {
    return this.#view.stop();
  }

  /** The settings this node runs. */
  get settings(): ClusterSettings {
    return this.#applied.settings;
  }

  /** The revision of `settings` this node runs (0: none was ever written). */
  get revision(): number {
    return this.#applied.revision;
  }

  /** The newest revision of the settings this node has seen stored (applied here or not). */
  get storedRevision(): number {
    return this.#view.get(names.settingsKey)?.revision ?? 0;
  }

  /** Called with the new settings whenever this node starts running another revision. */
  onChange(listener: (settings: ClusterSettings) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async handle(op: ConfigOp, body: unknown): Promise<unknown> {
    switch (op) {
      case AdminOp.ConfigGet:
        parse(EmptyRequest, body);
        return this.#get();
      case AdminOp.ConfigSet:
        return this.#set(parse(ConfigSetRequest, body));
      case AdminOp.ConfigHistory:
        parse(EmptyRequest, body);
        return { revisions: await this.#history() };
      case AdminOp.ConfigRollback:
        return this.#rollback(parse(ConfigRollbackRequest, body));
    }
  }

  async #get() {
    const stored = await this.#read();
    return {
      ...revisionOf(stored),
      effective: this.#applied.settings,
      node: { node: this.#deps.nodeId, revision: this.#applied.revision },
      nodes: this.#deps.nodes(),
    };
  }

  async #set(request: z.output<typeof ConfigSetRequest>) {
    const stored = await this.#read();
    const current = stored?.record.settings ?? {};
    if (request.revision !== undefined && request.revision !== (stored?.revision ?? 0)) {
      throw new JadeError(ErrorCode.Conflict, `the settings are at revision ${stored?.revision ?? 0}, not ${request.revision}: read them again (jade config get)`);
    }
    const next = this.#validate(changed(current, request.set ?? {}, request.unset ?? []));
    return this.#write(stored, next, request.note);
  }

  async #rollback(request: z.output<typeof ConfigRollbackRequest>) {
    const stored = await this.#read();
    const target = await this.#deps.kv.get(names.settingsKey, { revision: request.revision }).catch(() => null);
    if (target?.key !== names.settingsKey || target.operation !== "PUT") {
      throw new JadeError(ErrorCode.NotFound, `revision ${request.revision} of the settings is not kept (jade config history lists those that are)`);
    }
    const next = this.#validate(ConfigRecord.parse(target.json()).settings);
    return this.#write(stored, next, request.note ?? `rollback to revision ${request.revision}`);
  }

  /** The patch, refused with the reason unless it is well-formed and this node could run it. */
  #validate(raw: unknown): SettingsPatch {
    const patch = parse(SettingsPatch, raw);
    const issue = relationIssue(effective(this.#deps.own, patch), this.#deps.bounds);
    if (issue) throw invalidArgument(issue);
    return patch;
  }

  async #write(stored: { record: ConfigRecord; revision: number } | undefined, next: SettingsPatch, note: string | undefined) {
    const record: ConfigRecord = { settings: next, changedAt: new Date().toISOString(), ...(note ? { note } : {}) };
    let revision: number;
    try {
      // Compare-and-set: two operators changing settings at once never lose one's change silently.
      revision = stored ? await this.#deps.kv.update(names.settingsKey, JSON.stringify(record), stored.revision) : await this.#deps.kv.create(names.settingsKey, JSON.stringify(record));
    } catch (err) {
      throw new JadeError(ErrorCode.Conflict, "the settings changed meanwhile: read them again and retry", { cause: err });
    }
    this.#view.applyOwnWrite(names.settingsKey, { record }, revision);
    return { revision, changes: diff(stored?.record.settings ?? {}, next), settings: next };
  }

  async #read(): Promise<{ record: ConfigRecord; revision: number } | undefined> {
    const entry = await this.#deps.kv.get(names.settingsKey);
    return entry?.operation === "PUT" ? { record: ConfigRecord.parse(entry.json()), revision: entry.revision } : undefined;
  }

  /** Every kept revision, newest first. */
  async #history(): Promise<ConfigRevision[]> {
    const out: ConfigRevision[] = [];
    for (const entry of await this.#deps.kv.revisions(names.settingsKey)) {
      if (entry.operation === "PUT") out.push(revisionOf({ record: ConfigRecord.parse(entry.json()), revision: entry.revision }));
    }
    return out.reverse();
  }

  #apply(revision: number, stored: Stored | undefined): void {
    if (stored === undefined || "other" in stored) return;
    const settings = effective(this.#deps.own, stored.record.settings);
    const issue = relationIssue(settings, this.#deps.bounds);
    if (issue) {
      // The status shows this node on its old revision; the log says why.
      this.#deps.log.error({ revision, runs: this.#applied.revision }, `settings revision ${revision} not applied on this node: ${issue}`);
      return;
    }
    this.#applied = { revision, settings };
    this.#deps.log.info({ revision, note: stored.record.note }, "settings applied");
    for (const listener of this.#listeners) listener(settings);
  }
}

function revisionOf(stored: { record: ConfigRecord; revision: number } | undefined): ConfigRevision {
  if (!stored) return { revision: 0, settings: {} };
  const { settings, changedAt, note } = stored.record;
  return { revision: stored.revision, changedAt, ...(note ? { note } : {}), settings };
}
