/**
 * Errors are values at the API boundary: every reply is `{ok:true,result}` or
 * `{ok:false,error:{code,message,retryable,details?}}`. Inside the process a
 * `JadeError` carries the same fields so a handler can throw it and the gateway
 * turns it into a reply; anything else that escapes a handler is a bug and is
 * reported as `internal`.
 */
import { NoRespondersError, RequestError, TimeoutError } from "@nats-io/nats-core";

export const ErrorCode = {
  InvalidArgument: "invalid_argument",
  NotFound: "not_found",
  AlreadyExists: "already_exists",
  DimensionMismatch: "dimension_mismatch",
  PayloadTooLarge: "payload_too_large",
  Unavailable: "unavailable",
  Timeout: "timeout",
  Conflict: "conflict",
  Unauthorized: "unauthorized",
  /** Known, but not allowed this (a NATS user's permissions, an API key's scope). */
  Forbidden: "forbidden",
  RateLimited: "rate_limited",
  /** A change-feed position whose entries were purged (below the shard's purge floor). */
  OutOfRange: "out_of_range",
  /** Stored data failed its check (a backup file whose checksum or content digest differs). */
  Corrupt: "corrupt",
  Internal: "internal",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const retryableCodes: ReadonlySet<ErrorCode> = new Set([
  ErrorCode.Unavailable,
  ErrorCode.Timeout,
  ErrorCode.RateLimited,
]);

export interface WireError {
  code: ErrorCode;
  message: string;
  retryable: boolean;
  details?: unknown;
}

export type Reply<T> = { ok: true; result: T } | { ok: false; error: WireError };

export class JadeError extends Error {
  override readonly name = "JadeError";
  readonly code: ErrorCode;
  readonly details: unknown;
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, options: { details?: unknown; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.code = code;
    this.details = options.details;
    this.retryable = retryableCodes.has(code);
  }

  toWire(): WireError {
    const wire: WireError = { code: this.code, message: this.message, retryable: this.retryable };
    if (this.details !== undefined) wire.details = this.details;
    return wire;
  }

  static fromWire(error: WireError): JadeError {
    return new JadeError(error.code, error.message, { details: error.details });
  }
}

/** Over a rate: retryable, and says when (`details.retryAfterMs`; HTTP's Retry-After). */
export function rateLimited(message: string, retryAfterMs: number): JadeError {
  return new JadeError(ErrorCode.RateLimited, message, { details: { retryAfterMs: Math.ceil(retryAfterMs) } });
}

export function invalidArgument(message: string, details?: unknown): JadeError {
  return new JadeError(ErrorCode.InvalidArgument, message, { details });
}

export function notFound(message: string): JadeError {
  return new JadeError(ErrorCode.NotFound, message);
}

export function unavailable(message: string, cause?: unknown): JadeError {
  return new JadeError(ErrorCode.Unavailable, message, { cause });
}

/** The text of any thrown value: an Error's message, a string as it is, anything else as JSON where it can be. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === "string") return err;
  try {
    return JSON.stringify(err) ?? String(err);
  } catch {
    return String(err);
  }
}

/**
 * Any thrown value as a wire error; non-Jade errors are internal (their text is kept for
 * operators), except NATS not answering a handler's own request (a JetStream API call, a KV
 * read): the cluster is degraded, the request may be retried, and nothing is wrong with it.
 * Seen with one of three nats-servers down: a migrations listing timed out after 5 s.
 */
export function toWireError(err: unknown): WireError {
  if (err instanceof JadeError) return err.toWire();
  if (isNatsUnanswered(err)) return { code: ErrorCode.Unavailable, message: `NATS did not answer in time: ${errorMessage(err)}`, retryable: true };
  return { code: ErrorCode.Internal, message: errorMessage(err), retryable: false };
}

/** NATS did not answer a request in time, or nobody serves its subject: the cluster is degraded or busy, the same request may succeed next time. */
export function isNatsUnanswered(err: unknown): boolean {
  if (err instanceof TimeoutError || err instanceof NoRespondersError) return true;
  return err instanceof RequestError && (err.cause instanceof TimeoutError || err.cause instanceof NoRespondersError);
}

export function ok<T>(result: T): Reply<T> {
  return { ok: true, result };
}

export function fail(err: unknown): Reply<never> {
  return { ok: false, error: toWireError(err) };
}
