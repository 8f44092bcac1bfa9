/**
 * The HTTP side of the fuzzer: an API request sent to the node's REST mirror instead of
 * NATS, found through the server's own route table (so a route the table gains is fuzzed
 * without a change here). The same properties hold for its reply, and its status must be
 * the one its code maps to.
 */
import { httpRoutes, type HttpMethod } from "../../src/actors/http/routes.ts";
import { isObject, type Json } from "./body.ts";
import type { FuzzRequest } from "./requests.ts";

export interface HttpTarget {
  method: HttpMethod;
  /** The path with its collection filled in (percent-encoded). */
  path: string;
}

const bySubject = new Map(httpRoutes.map((route) => [route.subject, route]));

function jsonOf(request: FuzzRequest): Json | undefined {
  return "json" in request.body ? request.body.json : undefined;
}

/** Where a request goes over HTTP, or undefined when HTTP cannot carry it as it is (then it goes over NATS). */
export function httpTargetOf(request: FuzzRequest): HttpTarget | undefined {
  if (request.transport !== "request") return undefined;
  const parts = request.subject.split(".");
  if (parts[0] !== "jade" || parts[1] !== "v1" || parts.length < 4) return undefined;
  const direct = bySubject.get(request.subject);
  const route = direct ?? (parts.length === 4 ? bySubject.get(`jade.v1.<collection>.${parts[3]}`) : undefined);
  if (!route) return undefined;
  const json = jsonOf(request);
  // fetch sends no body with GET: only a body that says nothing but the path can go that way.
  if (route.method === "GET") {
    const empty = isObject(json) && Object.keys(json).length === 0;
    const nameOnly = isObject(json) && Object.keys(json).length === 1 && typeof json["name"] === "string";
    if (!(route.path.includes("{name}") ? nameOnly : empty)) return undefined;
  }
  if (!route.path.includes("{name}")) return { method: route.method, path: route.path };
  // A collection operation names its collection in the subject; a catalog one in its body.
  const name = direct ? (isObject(json) && typeof json["name"] === "string" ? json["name"] : undefined) : parts[2];
  // A lone surrogate has no UTF-8 form, so no URL: such a name goes over NATS.
  if (name === undefined || name.length === 0 || !name.isWellFormed()) return undefined;
  return { method: route.method, path: route.path.replace("{name}", encodeURIComponent(name)) };
}
