/** The id table (id-table.ts) against a Map model: every lookup, both ways, after every operation. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { IdTable } from "../src/actors/vector-index/id-table.ts";

type Op = { kind: "set"; id: string } | { kind: "delete"; pick: number } | { kind: "look"; id: string };

/** Ids from a small pool (so sets meet ids already held and deletes hit), ASCII and not, up to 256 UTF-8 bytes. */
const id = fc.oneof(
  fc.integer({ min: 0, max: 300 }).map((n) => `id-${n}`),
  fc.constantFrom("", "é", "日本語", "🙂x", "a".repeat(256), "ü".repeat(128)),
  fc.string({ unit: "grapheme", maxLength: 20 }),
);
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: id.map((id) => ({ kind: "set" as const, id })) },
  { weight: 3, arbitrary: fc.nat().map((pick) => ({ kind: "delete" as const, pick })) },
  { weight: 1, arbitrary: id.map((id) => ({ kind: "look" as const, id })) },
);

function check(table: IdTable, model: Map<string, number>, slots: number): void {
  expect(table.size).toBe(model.size);
  for (const [id, slot] of model) {
    expect(table.slotOf(id)).toBe(slot);
    expect(table.idOf(slot)).toBe(id);
    // Its UTF-8 bytes, as snapshots pack them, between two others' so a wrong offset shows.
    const utf8 = Buffer.from(id, "utf8");
    expect(table.utf8Length(slot)).toBe(utf8.byteLength);
    const into = Buffer.alloc(utf8.byteLength + 2, 0xff);
    expect(table.copyUtf8(slot, into, 1)).toBe(utf8.byteLength);
    expect(into).toEqual(Buffer.concat([Buffer.of(0xff), utf8, Buffer.of(0xff)]));
  }
  const held = new Set(model.values());
  for (let slot = 0; slot < slots; slot++) {
    expect(table.has(slot)).toBe(held.has(slot));
    if (!held.has(slot)) expect(table.utf8Length(slot)).toBe(0);
  }
}

describe("IdTable", () => {
  it("agrees with a Map of id → slot through sets, deletes and lookups (its table rebuilt and its arena compacted on the way)", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 400 }), (ops) => {
        const table = new IdTable();
        const model = new Map<string, number>();
        const free: number[] = [];
        let next = 0;
        for (const o of ops) {
          if (o.kind === "set") {
            if (model.has(o.id)) continue;
            const slot = free.length > 0 ? free.pop()! : next++;
            table.reserve(next);
            table.set(o.id, slot);
            model.set(o.id, slot);
          } else if (o.kind === "delete") {
            const held = [...model];
            if (held.length === 0) continue;
            const [gone, slot] = held[o.pick % held.length]!;
            table.delete(slot);
            model.delete(gone);
            free.push(slot);
          } else {
            expect(table.slotOf(o.id)).toBe(model.get(o.id));
          }
        }
        check(table, model, next);
      }),
      { seed: 7, numRuns: 300 },
    );
  });

  it("holds a million ids, churned: what is deleted is gone, what is left is found, and its arrays stay near the live ids' size", () => {
    const table = new IdTable();
    const count = 1_000_000;
    table.reserve(count);
    for (let i = 0; i < count; i++) table.set(`id-${i}`, i);
    // Delete every other id and put new ones in their slots, twice: the arena fills with freed bytes and is compacted.
    for (let round = 1; round <= 2; round++) {
      for (let i = 0; i < count; i += 2) {
        table.delete(i);
        table.set(`id-${round}-${i}`, i);
      }
    }
    expect(table.size).toBe(count);
    for (let i = 0; i < count; i += 997) {
      expect(table.slotOf(`id-${i}`)).toBe(i % 2 === 0 ? undefined : i);
      expect(table.idOf(i)).toBe(i % 2 === 0 ? `id-2-${i}` : `id-${i}`);
      if (i % 2 === 0) expect(table.slotOf(`id-2-${i}`)).toBe(i);
    }
    // ~10 bytes of id (the arena at most 2 / 0.75 of them), 10 per slot (start, length, hash), the hash table's cells (at most 4 / 0.375).
    expect(table.bytes / count).toBeLessThan((2 / 0.75) * 11 + 10 + 4 / 0.375);
  });

  it("refuses to put an id in a slot that holds one, or was not reserved: bugs in its caller", () => {
    const table = new IdTable();
    table.reserve(2);
    table.set("a", 0);
    expect(() => table.set("b", 0)).toThrow(/already holds/);
    expect(() => table.set("b", 2)).toThrow(/not reserved/);
    expect(table.slotOf("b")).toBeUndefined();
    expect(table.idOf(0)).toBe("a");
  });
});
