/**
 * Runs a `nats-server` child with JetStream: the embedded default of `jade dev`
 * and the server the test harness starts. The server picks a free port itself
 * (port -1) and we read the port it chose from its log, so there is no race on
 * ports; readiness is the server's own "Server is ready" line.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { createInterface } from "node:readline";
import { limits } from "../runtime/limits.ts";
import { delay } from "../runtime/async.ts";

export interface EmbeddedNatsOptions {
  /** JetStream store and config live here. */
  dataDir: string;
  /** Client port; 0 or -1 (default) lets the server choose a free one. */
  port?: number;
  host?: string;
  serverName?: string;
  /** Cluster settings for multi-server harnesses. */
  cluster?: { name: string; port: number; routes: string[] };
  /** Clients and routes over TLS only (a plaintext client is refused). */
  tls?: ServerTls;
  /**
   * A file holding the server's `authorization` block (nats/permissions.ts), included by the
   * configuration rather than copied into it, so it can be rewritten and the running server
   * told to reload it (`reloadEmbeddedNats`).
   */
  authorizationFile?: string;
  /** nats-server's HTTP monitoring port (/connz, /varz) on `host`; none by default. */
  monitorPort?: number;
  startTimeoutMs?: number;
  /** Called with each line the server logs (for debugging). */
  onLog?: (line: string) => void;
}

export class NatsServerMissingError extends Error {
  override readonly name = "NatsServerMissingError";
  readonly code = "nats_server_missing";
  constructor(cause?: unknown) {
    super(
      "nats-server was not found on PATH. Install it (Debian/Ubuntu: `apt-get update && apt-get install -y nats-server`) " +
        "or run `jade start --nats URL` against an existing NATS server with JetStream enabled.",
      { cause },
    );
  }
}

export interface ServerTls {
  certFile: string;
  keyFile: string;
  /** The CA the server checks client and route certificates against. */
  caFile?: string;
  /** Require a client certificate signed by `caFile` from every client (routes always verify each other). */
  verifyClients?: boolean;
}

export class NatsServerStartError extends Error {
  override readonly name = "NatsServerStartError";
  readonly code = "nats_server_start_failed";
}

export interface EmbeddedNats {
  url: string;
  port: number;
  /** The port routes from the cluster's other servers arrive on (clustered servers only). */
  clusterPort?: number;
  process: ChildProcess;
  /** SIGTERM, then SIGKILL after graceMs; resolves when the process has exited. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL at once (crash simulation). */
  kill(): Promise<void>;
}

export function natsServerAvailable(): boolean {
  const probe = spawnSync("nats-server", ["--version"], { stdio: "ignore" });
  return probe.error === undefined && probe.status === 0;
}

function configText(options: EmbeddedNatsOptions, storeDir: string): string {
  const host = options.host ?? "127.0.0.1";
  const lines = [
    `server_name: ${JSON.stringify(options.serverName ?? "jade-embedded")}`,
    `host: ${JSON.stringify(host)}`,
    `port: ${options.port === undefined || options.port === 0 ? -1 : options.port}`,
    `max_payload: ${limits.natsPayloadBytesMax}`,
    // Evict a client that stopped answering pings (a hung or SIGSTOPped node) within ~3 s, so
    // its queue-group subscriptions stop receiving API requests.
    `ping_interval: "1s"`,
    `ping_max: 2`,
    `pid_file: ${JSON.stringify(pidFile(options.dataDir))}`,
    `jetstream {`,
    `  store_dir: ${JSON.stringify(storeDir)}`,
    `}`,
  ];
  if (options.monitorPort !== undefined) lines.push(`http: ${JSON.stringify(`${host}:${options.monitorPort}`)}`);
  const { tls } = options;
  if (tls) lines.push(`tls ${tlsBlock(tls, tls.verifyClients ?? false)}`);
  // nats-server reads an include relative to the configuration's directory, even an absolute path.
  if (options.authorizationFile) lines.push(`include ${JSON.stringify(path.relative(options.dataDir, options.authorizationFile))}`);
  if (options.cluster) {
    lines.push(
      `cluster {`,
      `  name: ${JSON.stringify(options.cluster.name)}`,
      `  host: ${JSON.stringify(host)}`,
      `  port: ${options.cluster.port}`,
      `  routes: [${options.cluster.routes.map((r) => JSON.stringify(r)).join(", ")}]`,
      // Routes are clients of each other: each proves itself with its certificate.
      ...(tls ? [`  tls ${tlsBlock(tls, true)}`] : []),
      `}`,
    );
  }
  return lines.join("\n") + "\n";
}

function tlsBlock(tls: ServerTls, verify: boolean): string {
  const fields = { cert_file: tls.certFile, key_file: tls.keyFile, ...(tls.caFile ? { ca_file: tls.caFile } : {}), verify, timeout: 2 };
  return JSON.stringify(fields);
}

function pidFile(dataDir: string): string {
  return path.join(dataDir, "nats-server.pid");
}

/**
 * A previous `jade dev` that was killed with -9 leaves its nats-server running on
 * the same store; stop that one (only if it really is a nats-server) before starting.
 */
async function stopStaleServer(dataDir: string): Promise<void> {
  const pid = Number((await readFile(pidFile(dataDir), "utf8").catch(() => "")).trim());
  if (!Number.isInteger(pid) || pid <= 0) return;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
  if (!cmdline.includes("nats-server") || !cmdline.includes(dataDir)) return;
  process.kill(pid, "SIGTERM");
  const deadline = performance.now() + 10_000;
  while (performance.now() < deadline) {
    if (!(await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => ""))) return;
    await delay(50);
  }
  process.kill(pid, "SIGKILL");
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

export async function startEmbeddedNats(options: EmbeddedNatsOptions): Promise<EmbeddedNats> {
  if (!natsServerAvailable()) throw new NatsServerMissingError();
  const storeDir = path.join(options.dataDir, "jetstream");
  await mkdir(storeDir, { recursive: true });
  await stopStaleServer(options.dataDir);
  const configPath = path.join(options.dataDir, "nats-server.conf");
  await writeFile(configPath, configText(options, storeDir));

  const child = spawn("nats-server", ["-c", configPath], { stdio: ["ignore", "ignore", "pipe"] });
  const timeoutMs = options.startTimeoutMs ?? 20_000;
  const logTail: string[] = [];

  const port = await new Promise<number>((resolve, reject) => {
    let chosen: number | undefined;
    const timer = setTimeout(() => fail(new NatsServerStartError(`nats-server not ready after ${timeoutMs} ms`)), timeoutMs);
    const lines = createInterface({ input: child.stderr! });
    function fail(err: Error) {
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(new NatsServerStartError(`${err.message}\n${logTail.join("\n")}`, { cause: err }));
    }
    child.once("error", (err) => fail(err));
    child.once("exit", (code, signal) => fail(new Error(`nats-server exited early (code ${code}, signal ${signal})`)));
    lines.on("line", (line) => {
      options.onLog?.(line);
      logTail.push(line);
      if (logTail.length > 40) logTail.shift();
      const listening = /Listening for client connections on .*:(\d+)\s*$/.exec(line);
      if (listening) chosen = Number(listening[1]);
      if (line.includes("Server is ready") && chosen !== undefined) {
        clearTimeout(timer);
        child.removeAllListeners("exit");
        child.removeAllListeners("error");
        resolve(chosen);
      }
    });
  });

  const host = options.host ?? "127.0.0.1";
  const stop = async (graceMs = 5_000) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await exited(child);
    clearTimeout(timer);
  };
  const kill = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGKILL");
    await exited(child);
  };
  return { url: `nats://${host}:${port}`, port, ...(options.cluster ? { clusterPort: options.cluster.port } : {}), process: child, stop, kill };
}

/**
 * Tells the embedded server of `dataDir` (its pid file) to reload its configuration: a rewritten
 * authorization file applies to new connections and to the permissions of connected ones.
 * False when no server runs there.
 */
export async function reloadEmbeddedNats(dataDir: string): Promise<boolean> {
  const pid = Number((await readFile(pidFile(dataDir), "utf8").catch(() => "")).trim());
  if (!Number.isInteger(pid) || pid <= 0) return false;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
  if (!cmdline.includes("nats-server")) return false;
  process.kill(pid, "SIGHUP");
  return true;
}
