/**
 * Who may use the HTTP port: with API keys required (`--http-api-keys`, and `jade dev --auth`),
 * every request but health, readiness, the OpenAPI document and the dashboard's own files
 * presents `Authorization: Bearer <key>`; a missing, unknown or revoked key is `unauthorized`
 * (401), a key without the scope the operation needs `forbidden` (403). Without keys required,
 * every request passes (the port listens on loopback by default). The key is read from the
 * header and nowhere else, and never logged. Each key has its own rate (`--http-key-rate`,
 * per node): over it, `rate_limited` (429) with the time to wait in `Retry-After`.
 */
import { ErrorCode, JadeError, rateLimited } from "../../runtime/errors.ts";
import type { KeyedRateLimits } from "../../runtime/rate-limit.ts";
import { quote } from "../../runtime/text.ts";
import type { ApiRoute } from "../../runtime/subjects.ts";
import type { KeyRecord } from "../keys/schemas.ts";
import { allows, needOf, visibleTo, type Need } from "../keys/scopes.ts";
import type { KeyStore } from "../keys/store.ts";

export class HttpAccess {
  readonly #keys: KeyStore | undefined;
  readonly #rates: KeyedRateLimits | undefined;
  readonly #onThrottled: () => void;

  /** `keys`: the store keys are checked against; undefined lets every request pass. `rates`: each key's. */
  constructor(keys: KeyStore | undefined, rates?: KeyedRateLimits, onThrottled: () => void = () => undefined) {
    this.#keys = keys;
    this.#rates = rates;
    this.#onThrottled = onThrottled;
  }

  /** The key presented, when keys are required and it meets `need`; throws `unauthorized` or `forbidden` otherwise. */
  async check(authorization: string | undefined, need: Need | "any"): Promise<KeyRecord | undefined> {
    if (!this.#keys) return undefined;
    const key = await this.#keys.authenticate(authorization);
    if (!allows(key.scopes, need)) {
      const what = need === "any" ? "this" : `${need.access} access to ${need.collection === "*" ? "the cluster" : `collection ${quote(need.collection)}`}`;
      throw new JadeError(ErrorCode.Forbidden, `API key ${key.id} (${quote(key.name)}) has no ${what}`);
    }
    const waitMs = this.#rates?.admit(key.id) ?? 0;
    if (waitMs > 0) {
      this.#onThrottled();
      throw rateLimited(`API key ${key.id} is over its rate: retry in ${Math.ceil(waitMs)} ms`, waitMs);
    }
    return key;
  }

  /** An API operation: checked, then its answer narrowed to what the key may see. */
  async api<T>(authorization: string | undefined, route: ApiRoute, name: string | undefined, run: () => Promise<T>): Promise<T> {
    const key = await this.check(authorization, needOf(route, name));
    const result = await run();
    if (!key || route.kind !== "catalog" || route.op !== "list") return result;
    // A listing names only the collections the key holds a scope on.
    const { collections } = result as { collections: { name: string }[] };
    const visible = new Set(visibleTo(key.scopes, collections.map((c) => c.name)));
    return { ...result, collections: collections.filter((c) => visible.has(c.name)) };
  }
}
