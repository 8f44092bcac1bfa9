/** What an API key's scopes allow, without a server (test/security.e2e.test.ts checks it over HTTP). */
import { describe, expect, it } from "vitest";
import { allows, needOf, Scope, visibleTo } from "../src/actors/keys/scopes.ts";
import { AdminOp, CatalogOp, CollectionOp } from "../src/runtime/subjects.ts";

const docs = (op: CollectionOp) => needOf({ kind: "collection", collection: "docs", op }, undefined);

describe("API key scopes", () => {
  it("each operation needs the level it is for: reading, writing, or administering", () => {
    expect([CollectionOp.Search, CollectionOp.Get, CollectionOp.Count].map(docs)).toEqual(Array(3).fill({ collection: "docs", access: "read" }));
    expect([CollectionOp.Upsert, CollectionOp.Delete].map(docs)).toEqual(Array(2).fill({ collection: "docs", access: "write" }));
    expect(needOf({ kind: "catalog", op: CatalogOp.Get }, "docs")).toEqual({ collection: "docs", access: "read" });
    expect(needOf({ kind: "catalog", op: CatalogOp.Drop }, "docs")).toEqual({ collection: "docs", access: "admin" });
    expect(needOf({ kind: "catalog", op: CatalogOp.Update }, "docs")).toEqual({ collection: "docs", access: "admin" });
    expect(needOf({ kind: "catalog", op: CatalogOp.Create }, "new")).toEqual({ collection: "*", access: "admin" });
    expect(needOf({ kind: "catalog", op: CatalogOp.List }, undefined)).toBe("any");
    expect(needOf({ kind: "cluster", op: "status" }, undefined)).toEqual({ collection: "*", access: "read" });
    expect(needOf({ kind: "admin", op: AdminOp.KeysCreate }, undefined)).toEqual({ collection: "*", access: "admin" });
    // Transaction records are read like the status; aborting one is administration.
    expect(needOf({ kind: "admin", op: AdminOp.TxnsList }, undefined)).toEqual({ collection: "*", access: "read" });
    expect(needOf({ kind: "admin", op: AdminOp.TxnsGet }, undefined)).toEqual({ collection: "*", access: "read" });
    expect(needOf({ kind: "admin", op: AdminOp.TxnsAbort }, undefined)).toEqual({ collection: "*", access: "admin" });
    expect(needOf({ kind: "unknown", subject: "x" }, undefined)).toEqual({ collection: "*", access: "admin" });
  });

  it("a level includes those below it; * covers every collection; nothing else spills over", () => {
    const write: Scope[] = [{ collection: "docs", access: "write" }];
    expect(allows(write, { collection: "docs", access: "read" })).toBe(true);
    expect(allows(write, { collection: "docs", access: "write" })).toBe(true);
    expect(allows(write, { collection: "docs", access: "admin" })).toBe(false);
    expect(allows(write, { collection: "other", access: "read" })).toBe(false);
    expect(allows(write, { collection: "*", access: "read" })).toBe(false);
    expect(allows(write, "any")).toBe(true);
    const everythingRead: Scope[] = [{ collection: "*", access: "read" }];
    expect(allows(everythingRead, { collection: "anything", access: "read" })).toBe(true);
    expect(allows(everythingRead, { collection: "*", access: "read" })).toBe(true);
    expect(allows(everythingRead, { collection: "anything", access: "write" })).toBe(false);
  });

  it("a listing shows the collections a key holds a scope on, or all with *", () => {
    expect(visibleTo([{ collection: "b", access: "read" }], ["a", "b", "c"])).toEqual(["b"]);
    expect(visibleTo([{ collection: "*", access: "read" }], ["a", "b"])).toEqual(["a", "b"]);
    expect(Scope.safeParse({ collection: "a.b", access: "read" }).success).toBe(false);
    expect(Scope.safeParse({ collection: "*", access: "owner" }).success).toBe(false);
  });
});
