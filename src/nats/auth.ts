/**
 * How a connection to NATS proves who it is and keeps its traffic private: TLS (the CA that
 * signed the servers' certificates, and a client certificate where the servers ask for one)
 * and one identity — a credentials file holding an nkey seed (the servers' configuration holds
 * only its public key, so nothing secret lives there), or a user and password. One value for
 * every connection a process opens (the node's, its bulk connection, its backup threads', the
 * CLI's), so none of them is left in plaintext or anonymous.
 */
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { nkeyAuthenticator, nkeys, type ConnectionOptions } from "@nats-io/nats-core";
import { z } from "zod";
import { errorMessage } from "../runtime/errors.ts";

/** Files are read when a connection opens: a rotated certificate or key is picked up by the next one. */
export const NatsTls = z
  .object({
    /** The CA that signed the servers' certificates (else the system's CAs). */
    caFile: z.string().min(1).optional(),
    /** A client certificate and its key, for servers that verify clients (`verify: true`). */
    certFile: z.string().min(1).optional(),
    keyFile: z.string().min(1).optional(),
  })
  .strict()
  .refine((t) => (t.certFile === undefined) === (t.keyFile === undefined), "a client certificate needs its key, and a key its certificate");
export type NatsTls = z.infer<typeof NatsTls>;

export const NatsAuth = z
  .object({
    /** Connect over TLS only (a server without it is refused). */
    tls: NatsTls.optional(),
    /** A credentials file (`jade auth` writes them): the user's name, nkey seed and inbox prefix. */
    credsFile: z.string().min(1).optional(),
    user: z.string().min(1).optional(),
    password: z.string().optional(),
  })
  .strict()
  .refine((a) => a.credsFile === undefined || a.user === undefined, "give a credentials file or a user, not both")
  .refine((a) => (a.user === undefined) === (a.password === undefined), "a user needs a password, and a password a user");
export type NatsAuth = z.infer<typeof NatsAuth>;

/** Inboxes of a user with limited subscribe permissions: only its own (the permission layout allows `<prefix>.>`). */
export const inboxPrefixPattern = /^_INBOX(_[a-zA-Z0-9_-]{1,64})?$/;

/** A credentials file: who the holder is, its secret seed, and where its replies arrive. Kept mode 0600. */
export const Credentials = z
  .object({
    user: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/),
    seed: z.string().refine((s) => {
      try {
        return nkeys.fromSeed(new TextEncoder().encode(s)).getPublicKey().startsWith("U");
      } catch {
        return false;
      }
    }, "not a user nkey seed"),
    inboxPrefix: z.string().regex(inboxPrefixPattern),
  })
  .strict();
export type Credentials = z.infer<typeof Credentials>;

/** The credentials file's holder and public key. */
export function publicKeyOf(credentials: Credentials): string {
  return nkeys.fromSeed(new TextEncoder().encode(credentials.seed)).getPublicKey();
}

/** A credentials file that is missing, unreadable or malformed: said before any connection is tried. */
export class CredentialsError extends Error {
  override readonly name = "CredentialsError";
  readonly code = "credentials_invalid";
  constructor(file: string, cause: unknown) {
    super(`credentials file ${file}: ${errorMessage(cause)}`, { cause });
  }
}

export async function readCredentials(file: string): Promise<Credentials> {
  try {
    return Credentials.parse(JSON.parse(await readFile(file, "utf8")));
  } catch (err) {
    throw new CredentialsError(file, err instanceof z.ZodError ? z.prettifyError(err) : err);
  }
}

/** The nats.js connection options that carry `auth` (none for an open server). */
export async function connectionOptions(auth: NatsAuth | undefined): Promise<Partial<ConnectionOptions>> {
  if (!auth) return {};
  const options: Partial<ConnectionOptions> = {};
  if (auth.tls) options.tls = { ...auth.tls };
  if (auth.user !== undefined) Object.assign(options, { user: auth.user, pass: auth.password });
  if (auth.credsFile !== undefined) {
    const file = auth.credsFile;
    const credentials = await readCredentials(file);
    // Read again at every (re)connect: rotated credentials (`jade auth rotate`, the file replaced)
    // are used from the next reconnect on, without a restart. A file that does not read keeps the last seed.
    let seed = credentials.seed;
    options.authenticator = nkeyAuthenticator(() => {
      const now = Credentials.safeParse(safeJson(() => readFileSync(file, "utf8")));
      if (now.success && now.data.inboxPrefix === credentials.inboxPrefix) seed = now.data.seed;
      return new TextEncoder().encode(seed);
    });
    options.inboxPrefix = credentials.inboxPrefix;
  }
  return options;
}

function safeJson(read: () => string): unknown {
  try {
    return JSON.parse(read());
  } catch {
    return undefined;
  }
}
