/** One schema per message of the API keys (`admin.keys.*`) and their stored record; types derived from them. */
import { z } from "zod";
import { limits } from "../../runtime/limits.ts";
import { Scope } from "./scopes.ts";

const keyIdPattern = /^[a-z0-9]{12}$/;
export const KeyId = z.string().regex(keyIdPattern, "must be a key id (12 lowercase letters and digits)");

export const KeyRecord = z
  .object({
    id: KeyId,
    name: z.string().min(1).max(64),
    /** sha256 of the secret, hex: the secret itself is never stored. */
    secretSha256: z.string().regex(/^[0-9a-f]{64}$/),
    scopes: z.array(Scope).min(1).max(limits.keyScopesMax),
    createdAt: z.iso.datetime(),
  })
  .strict();
export type KeyRecord = z.infer<typeof KeyRecord>;

export const KeyCreateRequest = z.object({ name: z.string().min(1).max(64), scopes: z.array(Scope).min(1).max(limits.keyScopesMax) }).strict();
export const KeyRevokeRequest = z.object({ id: KeyId }).strict();

/** What a listing shows of a key: everything but the hash. */
export type KeyView = Omit<KeyRecord, "secretSha256">;

