/**
 * API keys for HTTP (`jade keys`, `admin.keys.*`): kept in KV `jade_keys` as a sha256 of their
 * secret (the secret itself is shown once, at creation), watched by every node, so a revoked
 * key stops working on every node as soon as the deletion reaches it (milliseconds; the issue
 * asks for under a second). A key is `jade_<id>_<secret>`: the id finds the record, the
 * secret proves it; 32 random bytes leave nothing to guess, so a fast hash is the right one.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { ListedKv } from "../../nats/kv-keys.ts";
import { z } from "zod";
import { KvView } from "../../nats/kv-view.ts";
import { parse } from "../../runtime/checks.ts";
import { ErrorCode, JadeError } from "../../runtime/errors.ts";
import { limits } from "../../runtime/limits.ts";
import type { Logger } from "../../runtime/log.ts";
import { EmptyRequest } from "../../runtime/schemas.ts";
import { AdminOp, type KeyOp } from "../../runtime/subjects.ts";
import { KeyCreateRequest, KeyRecord, KeyRevokeRequest, type KeyView } from "./schemas.ts";

const sha256 = (text: string) => createHash("sha256").update(text).digest();

/** `jade_<id>_<secret>` → its parts, or undefined for anything else. */
function parseKey(presented: string): { id: string; secret: string } | undefined {
  const match = /^jade_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$/.exec(presented);
  return match ? { id: match[1]!, secret: match[2]! } : undefined;
}

export class KeyStore {
  readonly #kv: ListedKv;
  readonly #view: KvView<KeyRecord>;
  #missReadsInFlight = 0;

  constructor(kv: ListedKv, log: Logger) {
    this.#kv = kv;
    this.#view = new KvView(kv, { decode: (entry) => KeyRecord.parse(entry.json()), log });
  }

  start(): Promise<void> {
    return this.#view.start();
  }

  stop(): Promise<void> {
    return this.#view.stop();
  }

  /**
   * The key an `Authorization: Bearer …` header presents, checked against its record; refused
   * as `unauthorized` (without saying which part was wrong) when missing, malformed, unknown,
   * revoked or wrong. A well-formed id this node's watch has not delivered is read from KV:
   * a key works on every node the moment `keys create` answers, not once the watch catches up
   * (CI on f6c4690: a key made through one node was refused by another a moment later). The
   * reads are bounded, so guessed ids cannot queue unbounded work on JetStream.
   */
  async authenticate(header: string | undefined): Promise<KeyRecord> {
    if (header === undefined) throw new JadeError(ErrorCode.Unauthorized, "an API key is required: Authorization: Bearer <key> (jade keys create)");
    const parsed = parseKey(header.replace(/^Bearer\s+/i, "").trim());
    const record = parsed && (this.#view.get(parsed.id)?.value ?? (await this.#readMissing(parsed.id)));
    if (!parsed || !record || !timingSafeEqual(sha256(parsed.secret), Buffer.from(record.secretSha256, "hex"))) {
      throw new JadeError(ErrorCode.Unauthorized, "the API key is not valid (unknown, revoked or mistyped)");
    }
    return record;
  }

  async #readMissing(id: string): Promise<KeyRecord | undefined> {
    if (this.#missReadsInFlight >= limits.keyMissReadsInFlightMax) return undefined;
    this.#missReadsInFlight++;
    try {
      return (await this.#view.read(id))?.value;
    } finally {
      this.#missReadsInFlight--;
    }
  }

  async handle(op: KeyOp, body: unknown): Promise<unknown> {
    switch (op) {
      case AdminOp.KeysCreate:
        return this.#create(parse(KeyCreateRequest, body));
      case AdminOp.KeysList:
        parse(EmptyRequest, body);
        return { keys: this.#view.values().map(({ secretSha256: _, ...view }): KeyView => view).sort((a, b) => (a.createdAt < b.createdAt ? -1 : 1)) };
      case AdminOp.KeysRevoke: {
        const { id } = parse(KeyRevokeRequest, body);
        if (!(await this.#kv.get(id))?.value.length) throw new JadeError(ErrorCode.NotFound, `no API key ${id}`);
        await this.#kv.delete(id);
        return { revoked: id };
      }
    }
  }

  async #create(request: z.infer<typeof KeyCreateRequest>): Promise<KeyView & { key: string }> {
    if (this.#view.values().length >= limits.keysMax) throw new JadeError(ErrorCode.Conflict, `at most ${limits.keysMax} API keys: revoke one first`);
    const id = randomBytes(9).toString("base64url").toLowerCase().replace(/[^a-z0-9]/g, "0").slice(0, 12);
    const secret = randomBytes(32).toString("base64url");
    const record: KeyRecord = { id, name: request.name, secretSha256: sha256(secret).toString("hex"), scopes: request.scopes, createdAt: new Date().toISOString() };
    // Create-only: two creations never share an id.
    await this.#kv.create(id, JSON.stringify(record));
    const { secretSha256: _, ...view } = record;
    return { ...view, key: `jade_${id}_${secret}` };
  }
}
