/** The router's k-way merge of sorted shard lists equals sorting everything, for any lists and k. */
import fc from "fast-check";
import { expect, it } from "vitest";
import { compareHits, mergeTopK } from "../src/actors/read/merge.ts";
import type { Hit } from "../src/runtime/schemas.ts";

const hit = fc.record({ id: fc.string({ minLength: 1, maxLength: 3 }), distance: fc.integer({ min: 0, max: 20 }).map((d) => d / 4) });
const sortedList = fc.array(hit, { maxLength: 12 }).map((hits) => hits.sort(compareHits));

it("merges sorted lists into the first k of their sorted union", () => {
  fc.assert(
    fc.property(fc.array(sortedList, { maxLength: 6 }), fc.integer({ min: 1, max: 30 }), (lists, k) => {
      const expected = lists.flat().sort(compareHits).slice(0, k);
      expect(mergeTopK(lists, k)).toEqual(expected);
    }),
    { seed: 7, numRuns: 500 },
  );
});

it("keeps equal distances in id order, as every replica does", () => {
  const a: Hit[] = [{ id: "b", distance: 1 }];
  const b: Hit[] = [{ id: "a", distance: 1 }, { id: "c", distance: 1 }];
  expect(mergeTopK([a, b], 3).map((h) => h.id)).toEqual(["a", "b", "c"]);
});
