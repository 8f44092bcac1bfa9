/**
 * `jade dev` (embedded nats-server + one node) and `jade start` (a node on an
 * existing NATS). Both print one line containing `ready`, the NATS URL and (when
 * serving HTTP) the HTTP URL once the API answers, and stop cleanly on SIGINT/SIGTERM.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import path from "node:path";
import { JadeClient } from "../client/client.ts";
import { startEmbeddedNats, NatsServerMissingError, type EmbeddedNats, type ServerTls } from "../nats/embedded.ts";
import { AuthDir } from "../nats/auth-dir.ts";
import type { NatsAuth } from "../nats/auth.ts";
import { Role } from "../nats/permissions.ts";
import { rootLogger } from "../runtime/log.ts";
import { JadeNode, type NodeOptions, isIncompatibleFormatError } from "../node.ts";
import type { SelectionName } from "../actors/read/selection/index.ts";
import type { CoordinatorSettings } from "../actors/control/coordinator.ts";
import { defaultMigrationSettings } from "../actors/control/migrations.ts";
import type { ReplicaSettings } from "../actors/replica/types.ts";
import type { HttpOptions } from "../actors/http/server.ts";
import { startTracing, type TracingOptions } from "../runtime/tracing-sdk.ts";
import { bytesPerMib } from "./format.ts";

export interface ServeOptions {
  data: string;
  nodeId?: string;
  workers?: number;
  /** `NodeOptions.memoryTrimIntervalMs`. */
  memoryTrimIntervalMs?: number;
  streamReplicas?: number;
  selection?: SelectionName;
  nodeDeadAfterMs?: number;
  restartDelayMs?: number;
  /** Rebalancing copy budget (`ReplicaSettings.transferBytesPerSecMax`), in MiB/s. */
  transferMibPerSec?: number;
  /** Coordinator settings: they apply while this node leads, so start every node with the same. */
  autoRebalance?: boolean;
  migrationsMax?: number;
  http?: HttpOptions;
  metrics?: boolean;
  /** OpenTelemetry tracing; off without it. */
  tracing?: TracingOptions;
  /** How this node's NATS connections authenticate and encrypt. */
  auth?: NatsAuth;
  /** The credentials an operator uses (printed in the ready line): `jade dev --auth`. */
  adminCreds?: string;
  /** Per API key and per NATS tenant, on this node. */
  rateLimits?: NodeOptions["rateLimits"];
}

export interface DevSecurity {
  /** Make (or reuse) identities under `<data>/auth` and let only them in (nats/auth-dir.ts). */
  requireAuth?: boolean;
  /** The embedded nats-server and HTTP serve TLS only, with this certificate. */
  tls?: ServerTls;
}

export async function runDev(options: ServeOptions & DevSecurity & { natsPort?: number }): Promise<void> {
  const dataDir = path.resolve(options.data);
  await mkdir(dataDir, { recursive: true });
  const authDir = options.requireAuth ? new AuthDir(path.join(dataDir, "auth")) : undefined;
  await authDir?.init();
  let nats: EmbeddedNats;
  try {
    nats = await startEmbeddedNats({
      dataDir: path.join(dataDir, "nats"),
      port: options.natsPort ?? 4222,
      serverName: "jade-dev",
      ...(options.tls ? { tls: options.tls } : {}),
      ...(authDir ? { authorizationFile: authDir.authorizationFile } : {}),
    });
  } catch (err) {
    if (err instanceof NatsServerMissingError) {
      process.stderr.write(`error: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  // The node's data directory holds the object store too: one copy of each snapshot, not two.
  await serve([nats.url], dataDir, securedDev(options, authDir), () => nats.stop(), { keepUploadedCheckpoint: false });
}

/** What `jade dev --auth / --tls-*` asks of its node: how it connects to its own server, and HTTPS. */
function securedDev(options: ServeOptions & DevSecurity, authDir: AuthDir | undefined): ServeOptions {
  const { tls } = options;
  // The node trusts the CA of the server's certificate, and shows that certificate where clients must.
  const clientTls = tls && { caFile: tls.caFile, ...(tls.verifyClients ? { certFile: tls.certFile, keyFile: tls.keyFile } : {}) };
  const auth: NatsAuth = { ...(clientTls ? { tls: clientTls } : {}), ...(authDir ? { credsFile: authDir.credsFile(Role.Node) } : {}) };
  return {
    ...options,
    ...(options.http
      ? { http: { ...options.http, ...(tls ? { tls: { certFile: tls.certFile, keyFile: tls.keyFile } } : {}), ...(authDir ? { apiKeys: true } : {}) } }
      : {}),
    ...(clientTls || authDir ? { auth } : {}),
    ...(authDir ? { adminCreds: authDir.credsFile(Role.Admin) } : {}),
  };
}

export async function runStart(options: ServeOptions & { nats: string[] }): Promise<void> {
  const dataDir = path.resolve(options.data);
  await mkdir(dataDir, { recursive: true });
  await serve(options.nats, dataDir, options, async () => undefined);
}

/**
 * The node id is kept in the data directory, so a restarted node is the same
 * member of the cluster: it finds its replicas in the placement at once instead
 * of waiting for its old identity to be declared dead.
 */
async function stableNodeId(dataDir: string, explicit: string | undefined): Promise<string> {
  const file = path.join(dataDir, "node-id");
  if (explicit) {
    await writeFile(file, explicit);
    return explicit;
  }
  const stored = (await readFile(file, "utf8").catch(() => "")).trim();
  if (stored) return stored;
  const generated = `${hostname().replace(/[^a-zA-Z0-9_-]/g, "_").slice(0, 40)}-${randomBytes(3).toString("hex")}`;
  await writeFile(file, generated);
  return generated;
}

async function serve(
  servers: string[],
  dataDir: string,
  options: ServeOptions,
  stopNats: () => Promise<void>,
  replica: Partial<ReplicaSettings> = {},
): Promise<void> {
  let node: JadeNode | undefined;
  let stopping = false;
  const tracing = options.tracing && startTracing(options.tracing);
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    rootLogger.info({ signal }, "shutting down");
    await node?.stop().catch((err) => rootLogger.error({ err }, "node stop failed"));
    // The spans still buffered go out before the process ends.
    await tracing?.shutdown().catch((err) => rootLogger.warn({ err }, "trace export failed"));
    await stopNats();
    process.exit(0);
  };
  process.on("SIGINT", () => void shutdown("SIGINT"));
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  try {
    node = await JadeNode.start({
      servers,
      ...(options.auth ? { auth: options.auth } : {}),
      nodeId: await stableNodeId(dataDir, options.nodeId),
      dataDir,
      workers: options.workers,
      ...(options.memoryTrimIntervalMs === undefined ? {} : { memoryTrimIntervalMs: options.memoryTrimIntervalMs }),
      streamReplicas: options.streamReplicas,
      selection: options.selection,
      coordinator: coordinatorOptions(options),
      replica: options.transferMibPerSec === undefined ? replica : { ...replica, transferBytesPerSecMax: Math.round(options.transferMibPerSec * bytesPerMib) },
      http: options.http,
      metrics: options.metrics,
      ...(options.rateLimits ? { rateLimits: options.rateLimits } : {}),
    });
    const client = await JadeClient.connect({ servers, name: "jade-readiness", ...(options.auth ? { auth: options.auth } : {}) });
    await client.listCollections();
    await client.close();
  } catch (err) {
    rootLogger.error({ err }, "node failed to start");
    // Said plainly too: an operator mid-upgrade must see which build to run.
    if (isIncompatibleFormatError(err)) process.stderr.write(`error: ${err.message}\n`);
    await stopNats();
    process.exit(1);
  }
  const http = node.httpUrl ? ` http=${node.httpUrl}` : "";
  const creds = options.adminCreds ? ` creds=${options.adminCreds}` : "";
  process.stdout.write(`jade ready nats=${servers.join(",")} node=${node.nodeId}${http}${creds}\n`);
}

function coordinatorOptions(options: ServeOptions): Partial<CoordinatorSettings> {
  return {
    ...(options.nodeDeadAfterMs === undefined ? {} : { nodeDeadAfterMs: options.nodeDeadAfterMs }),
    ...(options.restartDelayMs === undefined ? {} : { restartDelayMs: options.restartDelayMs }),
    ...(options.autoRebalance === undefined ? {} : { autoRebalance: options.autoRebalance }),
    ...(options.migrationsMax === undefined ? {} : { migration: { ...defaultMigrationSettings, concurrentMax: options.migrationsMax } }),
  };
}
