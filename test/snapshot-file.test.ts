/**
 * The snapshot metadata is packed in slices (a large shard's took 59 ms in one call): the
 * slices must unpack to exactly what one pack would, for every array header size, and the
 * packing must give the event loop its turns.
 */
import { Packr } from "msgpackr";
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { packInSlices, packUtf8Strings } from "../src/actors/vector-index/snapshot-file.ts";
import { LiveRows } from "../src/actors/vector-index/shard-snapshot.ts";
import { TimeSlicer } from "../src/runtime/async.ts";

const packr = new Packr({ useRecords: false, moreTypes: false });

/** How many event-loop turns ran while `work` did: work that never yields lets none run. */
async function turnsDuring(work: () => Promise<unknown>): Promise<number> {
  let turns = 0;
  let working = true;
  const count = (): void => {
    turns++;
    if (working) setImmediate(count);
  };
  setImmediate(count);
  await work();
  working = false;
  return turns;
}

describe("packInSlices", () => {
  it("unpacks to the same map as one pack, for short, 16-bit and 32-bit long arrays", async () => {
    const ids = Array.from({ length: 70_000 }, (_, i) => `id-${i}-${"é".repeat(i % 3)}`);
    const meta = {
      appliedSeq: 1234,
      metric: "l2",
      empty: [],
      short: [1, 2, 3],
      slots: Array.from({ length: 20_000 }, (_, i) => i * 7),
      ids,
      payloads: ids.map((_, i) => (i % 5 === 0 ? null : { n: i, tag: `t${i % 11}`, nested: { ok: i % 2 === 0 } })),
      versions: new Uint8Array(new Float64Array([1, 2.5, 2 ** 40]).buffer),
    };
    const sliced = await packInSlices(meta, new TimeSlicer(4));
    expect(packr.unpack(sliced)).toEqual(packr.unpack(packr.pack(meta)));
    expect(packr.unpack(sliced)).toEqual({ ...meta, versions: Buffer.from(meta.versions) });
  });

  it("yields to the event loop between slices", async () => {
    const turns = await turnsDuring(() => packInSlices({ ids: Array.from({ length: 100_000 }, (_, i) => `p${i}`) }, new TimeSlicer(0)));
    expect(turns).toBeGreaterThanOrEqual(5);
  });
});

describe("packUtf8Strings", () => {
  it("packs strings from their UTF-8 bytes that unpack to those strings, whatever their length (fixstr, str8, str16)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.string({ unit: "grapheme", maxLength: 400 }), { maxLength: 40 }), async (strings) => {
        const bytes = strings.map((s) => Buffer.from(s, "utf8"));
        const ids = await packUtf8Strings(strings.length, { length: (i) => bytes[i]!.byteLength, copy: (i, into, at) => bytes[i]!.copy(into, at) }, new TimeSlicer(4));
        const packed = await packInSlices({ seq: 7, ids, after: [1] }, new TimeSlicer(4));
        expect(packr.unpack(packed)).toEqual({ seq: 7, ids: strings, after: [1] });
      }),
      { numRuns: 200 },
    );
  });

  it("yields to the event loop between slices", async () => {
    const id = Buffer.from("p-12345");
    const turns = await turnsDuring(() => packUtf8Strings(100_000, { length: () => id.byteLength, copy: (_, into, at) => id.copy(into, at) }, new TimeSlicer(0)));
    expect(turns).toBeGreaterThanOrEqual(5);
  });
});

describe("LiveRows", () => {
  it("maps any byte range of the live rows onto the vector file, byte for byte", () => {
    const arbitrary = fc
      .record({ slots: fc.uniqueArray(fc.nat({ max: 200 }), { minLength: 1, maxLength: 60 }), rowBytes: fc.integer({ min: 1, max: 24 }) })
      .chain(({ slots, rowBytes }) => {
        const sorted = slots.sort((a, b) => a - b);
        const total = sorted.length * rowBytes;
        return fc.record({ slots: fc.constant(sorted), rowBytes: fc.constant(rowBytes), from: fc.nat({ max: total - 1 }), length: fc.integer({ min: 1, max: total }) });
      });
    fc.assert(
      fc.property(arbitrary, ({ slots, rowBytes, from, length }) => {
        const rows = new LiveRows(slots, rowBytes);
        const size = Math.min(length, rows.byteLength - from);
        const mapped = new Array<number>(size).fill(-1);
        rows.each(from, size, (at, filePosition, n) => {
          for (let i = 0; i < n; i++) mapped[at + i] = filePosition + i;
        });
        // Byte b of the section is byte (b mod rowBytes) of row slots[b / rowBytes] in the file.
        const expected = Array.from({ length: size }, (_, i) => slots[Math.floor((from + i) / rowBytes)]! * rowBytes + ((from + i) % rowBytes));
        expect(mapped).toEqual(expected);
      }),
    );
  });
});
