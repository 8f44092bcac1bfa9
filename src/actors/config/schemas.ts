/**
 * Cluster settings (`jade config`, `admin.config.*`): one schema per setting, with its bounds,
 * and the messages that read and change them; types derived from them.
 *
 * What is stored in KV `jade_config` is a patch: the settings an operator set. A node runs its
 * own settings (its flags, or the defaults) with the patch laid over them, the way
 * Elasticsearch's persistent cluster settings override each node's file: a setting nobody set
 * cluster-wide stays the node's own, and `unset` hands it back.
 */
import { z } from "zod";
import { limits } from "../../runtime/limits.ts";

const LogLevel = z.enum(["fatal", "error", "warn", "info", "debug", "trace"]);
export type LogLevel = z.infer<typeof LogLevel>;

const int = (min: number, max: number) => z.number().int().min(min).max(max);

/** A rate and a burst, per second (runtime/rate-limit.ts RateSetting); perSecond 0 = unlimited. */
const Rate = z.object({ perSecond: z.number().min(0).max(1_000_000), burst: int(1, 1_000_000) }).strict();

/** Every cluster setting, grouped as the node's parts read them. */
const groups = {
  membership: {
    heartbeatIntervalMs: int(100, 60_000),
    /** A node silent this long is routed around (and judged so by clients). */
    failureTimeoutMs: int(200, 600_000),
  },
  replica: {
    /** Bytes per second a node spends copying shards another replica already serves; 0 = unlimited. */
    transferBytesPerSecMax: int(0, 16 * 1024 ** 3),
  },
  migration: {
    /** Shard migrations the coordinator runs at once. */
    concurrentMax: int(1, 64),
  },
  coordinator: {
    /** How long a node that stopped on purpose keeps its replicas before they are placed elsewhere. */
    restartDelayMs: int(0, 3_600_000),
  },
  snapshot: {
    /** The snapshot interval of collections created without one of their own. */
    intervalMs: int(100, 86_400_000),
  },
  retention: {
    /** The point-in-time window of collections created without one of their own. */
    pointInTimeMs: int(0, limits.pointInTimeMsMax),
  },
  rateLimits: {
    httpKey: Rate,
    natsTenant: Rate,
  },
  log: {
    level: LogLevel,
  },
} as const;

type Groups = typeof groups;
type Full<G> = { [K in keyof G]: G[K] extends z.ZodType ? z.output<G[K]> : never };

/** The settings a node runs: every one set. */
export type ClusterSettings = { [G in keyof Groups]: Full<Groups[G]> };

function groupSchema<G extends Record<string, z.ZodType>>(fields: G) {
  return z.object(fields).strict();
}

export const ClusterSettings = z
  .object({
    membership: groupSchema(groups.membership),
    replica: groupSchema(groups.replica),
    migration: groupSchema(groups.migration),
    coordinator: groupSchema(groups.coordinator),
    snapshot: groupSchema(groups.snapshot),
    retention: groupSchema(groups.retention),
    rateLimits: groupSchema(groups.rateLimits),
    log: groupSchema(groups.log),
  })
  .strict();

/** What operators set: any of the settings, nothing else. */
export const SettingsPatch = z
  .object({
    membership: groupSchema(groups.membership).partial().optional(),
    replica: groupSchema(groups.replica).partial().optional(),
    migration: groupSchema(groups.migration).partial().optional(),
    coordinator: groupSchema(groups.coordinator).partial().optional(),
    snapshot: groupSchema(groups.snapshot).partial().optional(),
    retention: groupSchema(groups.retention).partial().optional(),
    rateLimits: groupSchema(groups.rateLimits).partial().optional(),
    log: groupSchema(groups.log).partial().optional(),
  })
  .strict();
export type SettingsPatch = z.infer<typeof SettingsPatch>;

/** Every setting's path (`membership.heartbeatIntervalMs`), for the CLI's help and its errors. */
export const settingPaths: readonly string[] = Object.entries(groups).flatMap(([group, fields]) => Object.keys(fields).map((field) => `${group}.${field}`));

/** The stored value of key `settings`: the patch, when and why it was written. */
export const ConfigRecord = z
  .object({
    settings: SettingsPatch,
    changedAt: z.iso.datetime(),
    note: z.string().max(200).optional(),
  })
  .strict();
export type ConfigRecord = z.infer<typeof ConfigRecord>;

const pathIssue = (p: string) => `${p.slice(0, 64)} is not a setting: one of ${settingPaths.join(", ")}`;
const SettingPath = z.string().refine((p) => settingPaths.includes(p), { error: (issue) => pathIssue(String(issue.input)) });
const Note = z.string().min(1).max(200);

export const ConfigSetRequest = z
  .object({
    /** Setting path → value; a group's whole value (`rateLimits.httpKey` → {perSecond, burst}) too. */
    set: z
      .record(z.string(), z.unknown())
      .superRefine((set, ctx) => {
        const unknown = Object.keys(set).find((p) => !settingPaths.includes(p));
        if (unknown !== undefined) ctx.addIssue({ code: "custom", path: [], message: pathIssue(unknown) });
      })
      .optional(),
    /** Paths handed back to each node's own setting. */
    unset: z.array(SettingPath).max(settingPaths.length).optional(),
    /** The revision the change was made against: refused as a conflict if another came first. */
    revision: z.number().int().min(0).optional(),
    note: Note.optional(),
  })
  .strict()
  .refine((r) => Object.keys(r.set ?? {}).length + (r.unset?.length ?? 0) > 0, { message: "nothing to change: give set or unset" });
export type ConfigSetRequest = z.input<typeof ConfigSetRequest>;

export const ConfigRollbackRequest = z.object({ revision: z.number().int().min(1), note: Note.optional() }).strict();
export type ConfigRollbackRequest = z.input<typeof ConfigRollbackRequest>;

/** One revision of the settings, as history and get show it (revision 0: nothing ever set). */
export interface ConfigRevision {
  revision: number;
  changedAt?: string;
  note?: string;
  settings: SettingsPatch;
}

/** What a node runs: the revision it applied and the settings it runs with. */
export interface NodeConfigView {
  node: string;
  revision: number;
}
