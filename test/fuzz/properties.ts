/**
 * What every reply must be, whatever was asked: exactly one, within the request's
 * deadline, in the documented envelope, with a documented code that is never
 * `internal`; a valid request is never refused as invalid; a refused write is
 * refused; a request that breaks a documented rule is refused as invalid; and a
 * successful read has the documented shape (a hit's distance is a finite number,
 * hits are sorted, a count is a count).
 */
import { httpStatusOf } from "../../src/actors/http/status-codes.ts";
import { ErrorCode } from "../../src/runtime/errors.ts";
import { isObject, type Json } from "./body.ts";
import type { Outcome } from "./client.ts";
import type { FuzzRequest } from "./requests.ts";

/** The codes docs/api.md documents, with whether each is retryable. */
export const documentedCodes: ReadonlyMap<string, boolean> = new Map([
  [ErrorCode.InvalidArgument, false],
  [ErrorCode.NotFound, false],
  [ErrorCode.AlreadyExists, false],
  [ErrorCode.DimensionMismatch, false],
  [ErrorCode.PayloadTooLarge, false],
  [ErrorCode.Unavailable, true],
  [ErrorCode.Timeout, true],
  [ErrorCode.Conflict, false],
  [ErrorCode.RateLimited, true],
  [ErrorCode.OutOfRange, false],
  [ErrorCode.Corrupt, false],
]);

const refusedCodes: ReadonlySet<string> = new Set([ErrorCode.InvalidArgument, ErrorCode.DimensionMismatch]);

/** Longest error message a reply may carry: user input is quoted short. */
export const messageCharsMax = 2_000;

export function violation(request: FuzzRequest, outcome: Outcome): string | undefined {
  if (outcome.unsendable) return undefined;
  if (outcome.problem) return outcome.problem;
  // Only the leader serves jade.coordinator.*: under load its lease may lapse for a moment,
  // and NATS says so (the admin API then answers `unavailable`). Everything else has a queue group.
  if (outcome.noResponders) return request.subject.startsWith("jade.coordinator.") ? undefined : "no responders";
  if (outcome.replies === 0) return `no reply within ${outcome.deadlineMs} ms`;
  if (outcome.replies > 1) return `${outcome.replies} replies`;
  const envelope = envelopeIssue(outcome.reply);
  if (envelope) return envelope;
  const reply = outcome.reply as { ok: true; result: unknown } | { ok: false; error: { code: ErrorCode; message: string } };
  if (outcome.httpStatus !== undefined) {
    const status = reply.ok ? 200 : httpStatusOf[reply.error.code];
    if (outcome.httpStatus !== status) return `HTTP status ${outcome.httpStatus} for ${reply.ok ? "ok" : reply.error.code}, not ${status}`;
  }
  if (!reply.ok) {
    if (request.expect === "valid" && refusedCodes.has(reply.error.code)) return `a valid request was refused: ${reply.error.code}: ${reply.error.message}`;
    if (request.expect === "invalid" && reply.error.code !== ErrorCode.InvalidArgument && !documentedCodes.get(reply.error.code)) {
      return `a request that breaks a documented rule was answered ${reply.error.code}, not invalid_argument: ${reply.error.message}`;
    }
    return undefined;
  }
  if (request.expect === "refused") return "a write that must be refused was accepted";
  if (request.expect === "invalid") return "a request that breaks a documented rule was accepted";
  return resultIssue(request, reply.result);
}

function envelopeIssue(reply: unknown): string | undefined {
  if (!isObject(reply as Json)) return "the reply is not an object";
  const r = reply as Record<string, unknown>;
  if (r["ok"] === true) return "result" in r ? undefined : "an ok reply without result";
  if (r["ok"] !== false) return "the reply has no boolean ok";
  const error = r["error"] as Record<string, unknown> | undefined;
  if (!error || typeof error !== "object") return "a failed reply without error";
  const code = error["code"];
  if (code === ErrorCode.Internal) return `internal error: ${String(error["message"])}`;
  if (typeof code !== "string" || !documentedCodes.has(code)) return `undocumented code ${JSON.stringify(code)}`;
  if (typeof error["message"] !== "string" || error["message"].length === 0) return "an error without message";
  if (error["message"].length > messageCharsMax) return `an error message of ${error["message"].length} chars`;
  if (error["retryable"] !== documentedCodes.get(code)) return `${code} with retryable ${String(error["retryable"])}`;
  return undefined;
}

/** The documented shape of successful reads (only for API read subjects). */
function resultIssue(request: FuzzRequest, result: unknown): string | undefined {
  const parts = request.subject.split(".");
  const api = parts[1] === "n" ? parts.slice(4) : parts[1] === "v1" ? parts.slice(2) : undefined;
  if (api?.length !== 2 || ["collections", "cluster", "admin"].includes(api[0]!)) return undefined;
  const op = api[1];
  const r = result as Record<string, unknown>;
  switch (op) {
    case "search": {
      const hits = r["hits"];
      if (!Array.isArray(hits)) return "search result without hits";
      for (let i = 0; i < hits.length; i++) {
        const hit = hits[i] as Record<string, unknown>;
        if (typeof hit["id"] !== "string") return `hit ${i} has no id`;
        if (typeof hit["distance"] !== "number" || !Number.isFinite(hit["distance"])) return `hit ${i} has distance ${JSON.stringify(hit["distance"])}`;
        if (i > 0 && (hits[i - 1] as { distance: number }).distance > hit["distance"]) return "hits are not sorted by distance";
      }
      return coverageIssue(r);
    }
    case "count":
      if (typeof r["count"] !== "number" || !Number.isSafeInteger(r["count"]) || r["count"] < 0) return `count is ${JSON.stringify(r["count"])}`;
      return coverageIssue(r);
    case "get":
      if (!Array.isArray(r["points"]) || !r["points"].every((p) => typeof (p as { id?: unknown }).id === "string")) return "get result without points";
      return coverageIssue(r);
    default:
      return undefined;
  }
}

function coverageIssue(r: Record<string, unknown>): string | undefined {
  const shards = r["shards"] as { total?: unknown; answered?: unknown } | undefined;
  if (typeof r["partial"] !== "boolean" || typeof shards?.total !== "number" || typeof shards.answered !== "number") return "result without partial/shards";
  if (r["partial"] !== shards.answered < shards.total) return "partial does not match the shards that answered";
  return undefined;
}
