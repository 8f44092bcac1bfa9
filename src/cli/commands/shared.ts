/**
 * What every client command shares: the `--nats` and `--json` options, option
 * parsers, connecting, and turning failures into messages and exit codes:
 *
 * - 0: success;
 * - 1: the server answered with an error (`error: <code>: <message>`), bad input,
 *      or (upsert/import) some lines were skipped;
 * - 2: no connection: NATS is unreachable or no node serves the API.
 */
import { InvalidArgumentError, Option, type Command } from "commander";
import { JadeClient, transportFailure } from "../../client/client.ts";
import { errorMessage, JadeError } from "../../runtime/errors.ts";
import { CredentialsError, NatsAuth } from "../../nats/auth.ts";
import { z } from "zod";
import { printError } from "../format.ts";

export const defaultNatsUrl = "nats://127.0.0.1:4222";

export const exitCodes = { ok: 0, failed: 1, noConnection: 2 } as const;

export interface ClientOptions extends SecurityOptions {
  nats: string[];
  json?: boolean;
}

/** How a command's NATS connection authenticates and encrypts (docs/security.md). */
export interface SecurityOptions {
  creds?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
}

/** The NatsAuth of the security options, refused with the reason when they do not fit together; undefined for an open NATS. */
export function natsAuthOf(o: SecurityOptions): NatsAuth | undefined {
  const tls = o.tlsCa !== undefined || o.tlsCert !== undefined ? { caFile: o.tlsCa, certFile: o.tlsCert, keyFile: o.tlsKey } : undefined;
  if (tls === undefined && o.creds === undefined) return undefined;
  const parsed = NatsAuth.safeParse({ tls, credsFile: o.creds });
  if (!parsed.success) throw new CliError(`--creds / --tls-*: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

/** Adds `--creds` and `--tls-ca|cert|key` (defaults from $JADE_NATS_CREDS, $JADE_TLS_CA, $JADE_TLS_CERT, $JADE_TLS_KEY). */
export function withSecurityOptions(command: Command): Command {
  const env = (name: string) => process.env[name] || undefined;
  return command
    .addOption(new Option("--creds <file>", "NATS credentials file (jade auth)").default(env("JADE_NATS_CREDS"), "$JADE_NATS_CREDS"))
    .addOption(new Option("--tls-ca <file>", "CA that signed the NATS servers' certificates (connect over TLS)").default(env("JADE_TLS_CA"), "$JADE_TLS_CA"))
    .addOption(new Option("--tls-cert <file>", "client certificate, for servers that verify clients").default(env("JADE_TLS_CERT"), "$JADE_TLS_CERT"))
    .addOption(new Option("--tls-key <file>", "its key").default(env("JADE_TLS_KEY"), "$JADE_TLS_KEY"));
}

/** An error whose message is for the user as it is (bad input, unreadable file, …). */
export class CliError extends Error {
  override readonly name = "CliError";
  readonly exitCode: number;
  constructor(message: string, exitCode: number = exitCodes.failed) {
    super(message);
    this.exitCode = exitCode;
  }
}

export function natsUrlList(value: string): string[] {
  const urls = value.split(",").map((s) => s.trim()).filter(Boolean);
  if (urls.length === 0) throw new InvalidArgumentError("expected NATS URL[,URL…]");
  return urls;
}

/** A decimal integer option (not `0x10` or `1e3`, which Number() would also take). */
export function integer(min: number, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (!/^\s*-?\d+\s*$/.test(value) || !Number.isSafeInteger(n)) throw new InvalidArgumentError("must be an integer");
    if (n < min || n > max) throw new InvalidArgumentError(`must be between ${min} and ${max}`);
    return n;
  };
}

/** Parses an option value as JSON, requiring an object (filters, tokens). */
export function jsonObject(value: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (err) {
    throw new InvalidArgumentError(`not valid JSON: ${errorMessage(err)}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new InvalidArgumentError("must be a JSON object");
  }
  return parsed as Record<string, unknown>;
}

export function choice<T extends string>(flags: string, description: string, values: readonly T[], defaultValue?: T): Option {
  const option = new Option(flags, description).choices(values);
  return defaultValue === undefined ? option : option.default(defaultValue);
}

/** Adds `--nats`, the security options and `--json` to a client command. */
export function withClientOptions(command: Command): Command {
  const fromEnv = (process.env["JADE_NATS_URL"] ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  return withSecurityOptions(command)
    .addOption(
      new Option("--nats <urls>", "NATS URL[,URL…]")
        .argParser(natsUrlList)
        .default(fromEnv.length > 0 ? fromEnv : [defaultNatsUrl], `$JADE_NATS_URL, else ${defaultNatsUrl}`),
    )
    .option("--json", "print the raw JSON result instead of a table");
}

const noNodeHint = "is a node running? Start one with `jade dev`, or pass --nats URL (or set JADE_NATS_URL)";

/**
 * Connects, runs `body`, closes (draining) and sets `process.exitCode` from
 * the outcome; never throws.
 */
export async function runWithClient(options: ClientOptions, body: (client: JadeClient) => Promise<void>): Promise<void> {
  let client: JadeClient;
  try {
    const auth = natsAuthOf(options);
    client = await JadeClient.connect({ servers: options.nats, name: "jade-cli", ...(auth ? { auth } : {}) });
  } catch (err) {
    if (err instanceof CliError || err instanceof CredentialsError) {
      process.exitCode = report(err);
      return;
    }
    printError(`cannot connect to NATS at ${options.nats.join(",")}: ${errorMessage(err)}`);
    process.stderr.write(`${noNodeHint}\n`);
    process.exitCode = exitCodes.noConnection;
    return;
  }
  try {
    await body(client);
  } catch (err) {
    process.exitCode = report(err);
  } finally {
    await client.close();
  }
}

/** Prints an error; returns the exit code it deserves. */
export function report(err: unknown): number {
  if (err instanceof JadeError) {
    printError(`${err.code}: ${err.message}`);
    if (transportFailure(err) === "no_responders") {
      process.stderr.write(`${noNodeHint}\n`);
      return exitCodes.noConnection;
    }
    const issues = (err.details as { issues?: { path: string; message: string }[] } | undefined)?.issues;
    if (Array.isArray(issues) && issues.length > 1) {
      for (const i of issues.slice(1)) process.stderr.write(`  ${i.path || "request"}: ${i.message}\n`);
    }
    return exitCodes.failed;
  }
  if (err instanceof CliError) {
    printError(err.message);
    return err.exitCode;
  }
  if (err instanceof CredentialsError) {
    printError(err.message);
    return exitCodes.failed;
  }
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e === "object" && typeof e.code === "string" && typeof e.path === "string") {
    printError(`cannot read ${e.path}: ${e.code === "ENOENT" ? "no such file" : e.message}`);
    return exitCodes.failed;
  }
  printError(errorMessage(err));
  return exitCodes.failed;
}

/** Throws the reply's error as a JadeError, or returns its result. */
export function unwrap<T>(reply: { ok: true; result: unknown } | { ok: false; error: Parameters<typeof JadeError.fromWire>[0] }): T {
  if (!reply.ok) throw JadeError.fromWire(reply.error);
  return reply.result as T;
}
