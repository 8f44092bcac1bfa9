/** The `jade` command line (commander). */
import { Command, InvalidArgumentError, Option } from "commander";
import { defaultCoordinatorSettings } from "../actors/control/coordinator.ts";
import { defaultMigrationSettings } from "../actors/control/migrations.ts";
import { SelectionName, selectionDefault } from "../actors/read/selection/index.ts";
import { defaultReplicaSettings } from "../actors/replica/types.ts";
import type { ServeOptions } from "./serve.ts";
import { bytesPerMib } from "./format.ts";
import { registerClientCommands } from "./commands.ts";
import type { HttpOptions } from "../actors/http/server.ts";
import type { TracingOptions } from "../runtime/tracing-sdk.ts";
import type { ServerTls } from "../nats/embedded.ts";
import { natsAuthOf } from "./commands/shared.ts";
import { errorMessage } from "../runtime/errors.ts";
import { trimIntervalMsDefault } from "../runtime/native-memory.ts";

/** A node's modules load for `dev` and `start` only: every other command starts ~1 s sooner without them. */
const serve = () => import("./serve.ts");

function nonNegative(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError("must be a number ≥ 0");
  return n;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError("must be an integer ≥ 1");
  return n;
}

function int(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError("must be an integer");
  return n;
}

export function natsUrls(value: string): string[] {
  return value.split(",").map((s) => s.trim()).filter(Boolean);
}

/** `--http-port` of `jade dev` (documented in the README): NATS's 4222 with HTTP's 80. */
const httpPortDev = 4280;

function httpPort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < -1 || n > 65_535) throw new InvalidArgumentError("must be a port (0 – 65535), or -1 for none");
  return n;
}

function ratio(value: string): number {
  const n = Number(value);
  if (!(n >= 0 && n <= 1)) throw new InvalidArgumentError("must be a number from 0 to 1");
  return n;
}

/** Tracing is off unless an endpoint is given. */
function tracingOf(o: { otlpEndpoint?: string; traceSampleRatio: number }): TracingOptions | undefined {
  return o.otlpEndpoint === undefined ? undefined : { otlpUrl: o.otlpEndpoint, sampleRatio: o.traceSampleRatio };
}

function httpOf(o: { httpPort?: number; httpHost: string; httpApiKeys?: boolean }, tls?: HttpOptions["tls"]): HttpOptions | undefined {
  if (o.httpPort === undefined || o.httpPort < 0) return undefined;
  return { port: o.httpPort, host: o.httpHost, ...(tls ? { tls } : {}), ...(o.httpApiKeys ? { apiKeys: true } : {}) };
}

/** `--http-key-rate/-burst` and `--nats-tenant-rate/-burst`: per node, a burst of one second's rate unless given. */
function withRateOptions(command: Command): Command {
  return command
    .option("--http-key-rate <n>", "requests per second each API key may make on this node (default: unlimited)", nonNegative)
    .option("--http-key-burst <n>", "requests an API key may make at once (default: its rate)", positiveInt)
    .option("--nats-tenant-rate <n>", "requests per second each NATS tenant may make on this node (default: unlimited)", nonNegative)
    .option("--nats-tenant-burst <n>", "requests a NATS tenant may make at once (default: its rate)", positiveInt);
}

function rateLimitsOf(o: { httpKeyRate?: number; httpKeyBurst?: number; natsTenantRate?: number; natsTenantBurst?: number }): ServeOptions["rateLimits"] {
  const setting = (perSecond: number | undefined, burst: number | undefined) => (perSecond ? { perSecond, burst: burst ?? Math.max(1, Math.ceil(perSecond)) } : undefined);
  const httpKey = setting(o.httpKeyRate, o.httpKeyBurst);
  const natsTenant = setting(o.natsTenantRate, o.natsTenantBurst);
  return httpKey || natsTenant ? { ...(httpKey ? { httpKey } : {}), ...(natsTenant ? { natsTenant } : {}) } : undefined;
}

/** Options that do not fit together end the command with the reason, as commander does for one that does not parse. */
function orExit<T>(read: () => T): T {
  try {
    return read();
  } catch (err) {
    process.stderr.write(`error: ${errorMessage(err)}\n`);
    process.exit(1);
  }
}

/** `jade dev`'s TLS: a certificate and its key, or nothing. */
function serverTlsOf(o: { tlsCert?: string; tlsKey?: string; tlsCa?: string; tlsVerifyClients?: boolean }): { tls?: ServerTls } {
  if (o.tlsCert === undefined && o.tlsKey === undefined) return {};
  if (o.tlsCert === undefined || o.tlsKey === undefined) throw new InvalidArgumentError("--tls-cert and --tls-key go together");
  if (o.tlsVerifyClients && o.tlsCa === undefined) throw new InvalidArgumentError("--tls-verify-clients needs --tls-ca");
  return { tls: { certFile: o.tlsCert, keyFile: o.tlsKey, ...(o.tlsCa ? { caFile: o.tlsCa } : {}), verifyClients: o.tlsVerifyClients === true } };
}

const program = new Command()
  .name("jade")
  .description("JadeVectorDB: a distributed vector database on NATS")
  .showHelpAfterError();

withRateOptions(program.command("dev"))
  .description("run one node with an embedded nats-server (JetStream store under --data)")
  .option("--data <dir>", "data directory", "./data")
  .option("--nats-port <port>", "client port of the embedded nats-server", int, 4222)
  .option("--node-id <id>", "node identity")
  .option("--workers <n>", "index worker threads (default: one per core)", int)
  .option("--memory-trim-interval-ms <ms>", "hand freed native memory back to the OS this often (glibc malloc_trim; 0 = never)", nonNegative, trimIntervalMsDefault)
  .option("--http-port <port>", "HTTP port: REST API, OpenAPI, health (0 = any free port, -1 = no HTTP)", httpPort, httpPortDev)
  .option("--http-host <address>", "address HTTP listens on", "127.0.0.1")
  .option("--no-metrics", "serve no /metrics (to measure what the metrics cost)")
  .option("--otlp-endpoint <url>", "trace requests (OpenTelemetry): send spans to this OTLP/HTTP endpoint, e.g. http://127.0.0.1:4318/v1/traces")
  .option("--trace-sample-ratio <r>", "share of new traces recorded (0 – 1)", ratio, 1)
  .option("--auth", "let only known NATS users in (the node, an admin and the tenants of `jade auth`, identities under <data>/auth), and require API keys on HTTP")
  .option("--http-api-keys", "require an API key (jade keys create) on HTTP requests")
  .option("--tls-cert <file>", "serve NATS and HTTP over TLS only, with this certificate (PEM)")
  .option("--tls-key <file>", "its key (PEM)")
  .option("--tls-ca <file>", "the CA that signed it (and, with --tls-verify-clients, the clients' certificates)")
  .option("--tls-verify-clients", "NATS asks every client for a certificate signed by --tls-ca")
  .action(async (o) =>
    (await serve()).runDev({
      data: o.data,
      natsPort: o.natsPort,
      nodeId: o.nodeId,
      workers: o.workers,
      memoryTrimIntervalMs: o.memoryTrimIntervalMs,
      http: httpOf(o),
      metrics: o.metrics,
      tracing: tracingOf(o),
      requireAuth: o.auth === true,
      rateLimits: rateLimitsOf(o),
      ...orExit(() => serverTlsOf(o)),
    }),
  );

withRateOptions(program.command("start"))
  .description("run a node against an existing NATS (JetStream enabled)")
  .requiredOption("--nats <urls>", "NATS URL[,URL…]", natsUrls)
  .option("--data <dir>", "scratch directory", "./data")
  .option("--node-id <id>", "node identity")
  .option("--workers <n>", "index worker threads (default: one per core)", int)
  .option("--memory-trim-interval-ms <ms>", "hand freed native memory back to the OS this often (glibc malloc_trim; 0 = never)", nonNegative, trimIntervalMsDefault)
  .option("--stream-replicas <n>", "replicas of the streams and buckets created (3 on a NATS cluster)", int, 1)
  .addOption(new Option("--selection <name>", "replica selection for reads").choices(Object.values(SelectionName)).default(selectionDefault))
  .option("--node-dead-after-ms <ms>", "a node silent this long loses its replicas to other nodes", int, defaultCoordinatorSettings.nodeDeadAfterMs)
  .option("--restart-delay-ms <ms>", "when coordinator, how long a node that stopped cleanly keeps its replicas before they are placed elsewhere", int, defaultCoordinatorSettings.restartDelayMs)
  .option(
    "--transfer-mib-per-sec <n>",
    "shard copying budget of this node while rebalancing (0 = unlimited)",
    nonNegative,
    defaultReplicaSettings.transferBytesPerSecMax / bytesPerMib,
  )
  .option("--no-auto-rebalance", "when coordinator, do not move replicas onto a node that joins (run `jade rebalance` instead)")
  .option("--migrations-max <n>", "when coordinator, shard migrations run at once", positiveInt, defaultMigrationSettings.concurrentMax)
  .option("--http-port <port>", "serve HTTP on this port: REST API, OpenAPI, health (0 = any free port; default: no HTTP)", httpPort)
  .option("--http-host <address>", "address HTTP listens on", "127.0.0.1")
  .option("--no-metrics", "serve no /metrics (to measure what the metrics cost)")
  .option("--otlp-endpoint <url>", "trace requests (OpenTelemetry): send spans to this OTLP/HTTP endpoint, e.g. http://127.0.0.1:4318/v1/traces")
  .option("--trace-sample-ratio <r>", "share of new traces recorded (0 – 1)", ratio, 1)
  .option("--creds <file>", "this node's NATS credentials file (`jade auth init` writes node.creds.json)", process.env["JADE_NATS_CREDS"] || undefined)
  .option("--tls-ca <file>", "the CA that signed the NATS servers' certificates (connect over TLS)", process.env["JADE_TLS_CA"] || undefined)
  .option("--tls-cert <file>", "this node's certificate: served by HTTP (HTTPS only), shown to NATS servers that verify clients")
  .option("--tls-key <file>", "its key")
  .option("--http-api-keys", "require an API key (jade keys create) on HTTP requests")
  .action(async (o) =>
    (await serve()).runStart({
      auth: orExit(() => natsAuthOf(o)),
      rateLimits: rateLimitsOf(o),
      nats: o.nats,
      data: o.data,
      nodeId: o.nodeId,
      workers: o.workers,
      memoryTrimIntervalMs: o.memoryTrimIntervalMs,
      streamReplicas: o.streamReplicas,
      selection: o.selection,
      nodeDeadAfterMs: o.nodeDeadAfterMs,
      restartDelayMs: o.restartDelayMs,
      transferMibPerSec: o.transferMibPerSec,
      autoRebalance: o.autoRebalance,
      migrationsMax: o.migrationsMax,
      http: httpOf(o, o.tlsCert && o.tlsKey ? { certFile: o.tlsCert, keyFile: o.tlsKey } : undefined),
      metrics: o.metrics,
      tracing: tracingOf(o),
    }),
  );

registerClientCommands(program);

await program.parseAsync(process.argv);
