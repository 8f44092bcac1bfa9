import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeFvecs, FvecsFormatError, fvecsInfo, readFvecs, readFvecsChunks } from "../src/cli/fvecs.ts";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "jade-fvecs-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function readAll(file: string, chunkBytes: number): Promise<{ row: number; vector: number[] }[]> {
  const rows: { row: number; vector: number[] }[] = [];
  for await (const { row, vector } of readFvecs(file, { chunkBytes })) rows.push({ row, vector: Array.from(vector) });
  return rows;
}

describe(".fvecs files", () => {
  it("reads back every row as written, whatever the chunk size splits", async () => {
    const float32 = fc.float({ noNaN: true, noDefaultInfinity: true }).map(Math.fround);
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 9 }).chain((dimension) => fc.array(fc.array(float32, { minLength: dimension, maxLength: dimension }), { minLength: 1, maxLength: 20 })),
        fc.integer({ min: 1, max: 97 }),
        async (vectors, chunkBytes) => {
          const file = path.join(dir, "rows.fvecs");
          await writeFile(file, encodeFvecs(vectors));
          const rows = await readAll(file, chunkBytes);
          expect(rows.map((r) => r.row)).toEqual(vectors.map((_, i) => i));
          // Object.is: -0 stays -0.
          rows.forEach((r, i) => r.vector.forEach((x, j) => expect(Object.is(x, vectors[i]![j])).toBe(true)));
          expect(await fvecsInfo(file)).toEqual({ dimension: vectors[0]!.length, rows: vectors.length, bytes: vectors.length * (4 + 4 * vectors[0]!.length) });
        },
      ),
      { numRuns: 60 },
    );
  });

  it("reads rows of another dimension as a chunk of their own, every row in order", async () => {
    const vectors = [[1, 2], [3, 4], [5, 6, 7], [8, 9, 10], [11, 12]];
    const file = path.join(dir, "mixed.fvecs");
    await writeFile(file, encodeFvecs(vectors));
    const chunks: { firstRow: number; rows: number; dimension: number; values: number[] }[] = [];
    for await (const c of readFvecsChunks(file)) chunks.push({ ...c, values: Array.from(c.values) });
    expect(chunks).toEqual([
      { firstRow: 0, rows: 2, dimension: 2, values: [1, 2, 3, 4] },
      { firstRow: 2, rows: 2, dimension: 3, values: [5, 6, 7, 8, 9, 10] },
      { firstRow: 4, rows: 1, dimension: 2, values: [11, 12] },
    ]);
    expect(await readAll(file, 7)).toEqual(vectors.map((vector, row) => ({ row, vector })));
  });

  it("refuses a truncated last row and a header that is no dimension", async () => {
    const whole = encodeFvecs([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    const truncated = path.join(dir, "truncated.fvecs");
    await writeFile(truncated, whole.subarray(0, whole.length - 2));
    await expect(readAll(truncated, 5)).rejects.toThrow(FvecsFormatError);
    await expect(readAll(truncated, 5)).rejects.toThrow(/14 trailing bytes after row 0/);
    const garbage = path.join(dir, "garbage.fvecs");
    await writeFile(garbage, Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4]));
    await expect(readAll(garbage, 64)).rejects.toThrow(/row 0 has dimension -1/);
  });
});
