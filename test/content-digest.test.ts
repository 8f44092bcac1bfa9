/**
 * A point's hash is part of every backup manifest (its shards' digests): it must not change
 * with how it is computed. Pinned values, and the definition (sha256 of the length-prefixed
 * fields, first 8 bytes little-endian) computed the plain way for any point.
 */
import { createHash } from "node:crypto";
import fc from "fast-check";
import { expect, it } from "vitest";
import { canonicalJson, digestOf, pointHash } from "../src/runtime/content-digest.ts";
import type { Payload } from "../src/runtime/schemas.ts";

function definition(id: string, payload: Payload | null, vector: Uint8Array): bigint {
  const hash = createHash("sha256");
  for (const field of [Buffer.from(id), Buffer.from(canonicalJson(payload)), vector]) {
    const length = Buffer.alloc(4);
    length.writeUInt32LE(field.byteLength);
    hash.update(length).update(field);
  }
  return hash.digest().readBigUInt64LE(0);
}

const vector = new Uint8Array(new Float32Array([1.5, -2, 0.25, 3e-7]).buffer);

it("keeps the hashes that backups already recorded", () => {
  expect(pointHash("p-1", null, vector).toString(16)).toBe("9172da0028bbc43c");
  expect(pointHash("ünï-✓", { z: [1, "a", { y: null, b: true }], a: 2.5 }, vector).toString(16)).toBe("bf0a2cba1deadeb4");
  expect(pointHash("", {}, new Uint8Array(0)).toString(16)).toBe("ebb0c85711675640");
});

it("hashes any point as its definition does, whatever the sizes of the points before it", () => {
  const payload: fc.Arbitrary<Payload | null> = fc.option(fc.dictionary(fc.string(), fc.jsonValue()) as fc.Arbitrary<Payload>, { nil: null });
  const point = fc.record({ id: fc.string({ unit: "grapheme", maxLength: 40 }), payload, vector: fc.uint8Array({ maxLength: 8192 }) });
  fc.assert(
    fc.property(fc.array(point, { minLength: 1, maxLength: 8 }), (points) => {
      for (const p of points) expect(pointHash(p.id, p.payload, p.vector)).toBe(definition(p.id, p.payload, p.vector));
    }),
    { seed: 11, numRuns: 300 },
  );
});

it("sums hashes in any order, modulo 2^64", () => {
  const hashes = [2n ** 64n - 1n, 5n, 2n ** 63n];
  expect(digestOf(hashes)).toEqual(digestOf([...hashes].reverse()));
  expect(digestOf(hashes)).toEqual({ count: 3, hash: (2n ** 63n + 4n).toString(16).padStart(16, "0") });
});
