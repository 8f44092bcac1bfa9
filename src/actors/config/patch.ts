/**
 * Pure operations on settings: a change laid on a patch, a patch laid on a node's own
 * settings, the relations between settings, and what differs between two patches.
 */
import type { ClusterSettings, SettingsPatch } from "./schemas.ts";

type Groups = Record<string, Record<string, unknown> | undefined>;

/** `patch` with `set` written and `unset` removed (paths `group.field`, checked by the request's schema); validate the result. */
export function changed(patch: SettingsPatch, set: Readonly<Record<string, unknown>>, unset: readonly string[]): unknown {
  const out: Groups = {};
  for (const [group, fields] of Object.entries(patch as Groups)) out[group] = { ...fields };
  for (const path of unset) {
    const [group, field] = split(path);
    delete out[group]?.[field];
    if (out[group] && Object.keys(out[group]).length === 0) delete out[group];
  }
  for (const [path, value] of Object.entries(set)) {
    const [group, field] = split(path);
    out[group] = { ...out[group], [field]: value };
  }
  return out;
}

/** A node's own settings with the cluster's patch laid over them. */
export function effective(own: ClusterSettings, patch: SettingsPatch): ClusterSettings {
  const out = structuredClone(own) as unknown as Groups;
  for (const [group, fields] of Object.entries(patch as Groups)) Object.assign(out[group]!, fields);
  return out as unknown as ClusterSettings;
}

/** What a node must also hold to run `settings`: its coordinator's dead-node timeout. */
export interface NodeBounds {
  nodeDeadAfterMs: number;
}

/** The first relation `settings` break on a node with `bounds`, in words; undefined when they hold. */
export function relationIssue(settings: ClusterSettings, bounds: NodeBounds): string | undefined {
  const { heartbeatIntervalMs, failureTimeoutMs } = settings.membership;
  if (failureTimeoutMs < 2 * heartbeatIntervalMs) {
    return `membership.failureTimeoutMs (${failureTimeoutMs}) must be at least twice membership.heartbeatIntervalMs (${heartbeatIntervalMs}): a node is judged silent only after missing two heartbeats`;
  }
  if (failureTimeoutMs >= bounds.nodeDeadAfterMs) {
    return `membership.failureTimeoutMs (${failureTimeoutMs}) must stay below the coordinator's dead-node timeout (${bounds.nodeDeadAfterMs} ms, --node-dead-after-ms): routers stop reading from a node before its replicas are re-placed`;
  }
  return undefined;
}

export interface SettingChange {
  path: string;
  /** Undefined: not set (each node's own). */
  from: unknown;
  to: unknown;
}

/** The settings that differ from `a` to `b`, by path. */
export function diff(a: SettingsPatch, b: SettingsPatch): SettingChange[] {
  const flat = (patch: SettingsPatch) => new Map(Object.entries(patch as Groups).flatMap(([group, fields]) => Object.entries(fields ?? {}).map(([field, value]) => [`${group}.${field}`, value] as const)));
  const before = flat(a);
  const after = flat(b);
  const paths = [...new Set([...before.keys(), ...after.keys()])].sort();
  return paths.filter((p) => JSON.stringify(before.get(p)) !== JSON.stringify(after.get(p))).map((path) => ({ path, from: before.get(path), to: after.get(path) }));
}

function split(path: string): [string, string] {
  const dot = path.indexOf(".");
  return [path.slice(0, dot), path.slice(dot + 1)];
}
