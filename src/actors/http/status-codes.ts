/**
 * The HTTP status of each error code. One table, exhaustive by type: a new code does not
 * compile until it has a status. The body is always the same envelope as over NATS.
 */
import { ErrorCode } from "../../runtime/errors.ts";

export const httpStatusOf: Readonly<Record<ErrorCode, number>> = {
  [ErrorCode.InvalidArgument]: 400,
  [ErrorCode.DimensionMismatch]: 400,
  // A change-feed position below the purge floor, or a restore target a backup cannot reach: the request, not the server.
  [ErrorCode.OutOfRange]: 400,
  [ErrorCode.Unauthorized]: 401,
  [ErrorCode.Forbidden]: 403,
  [ErrorCode.NotFound]: 404,
  [ErrorCode.AlreadyExists]: 409,
  [ErrorCode.Conflict]: 409,
  [ErrorCode.PayloadTooLarge]: 413,
  // Stored data that fails its check (a backup file): the request is well-formed, its target is not usable.
  [ErrorCode.Corrupt]: 422,
  [ErrorCode.RateLimited]: 429,
  [ErrorCode.Internal]: 500,
  [ErrorCode.Unavailable]: 503,
  [ErrorCode.Timeout]: 504,
};
