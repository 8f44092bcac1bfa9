/**
 * Write back-pressure (write/pace.ts) without NATS: the replicas' notices are recorded on the
 * tracker by hand, and the pace's clock is injected.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeAppliedNotice, parseAppliedNotice } from "../src/runtime/applied-notice.ts";
import { AppliedTracker, freshReportStaleMs } from "../src/actors/write/applied-tracker.ts";
import { observeAhead, paceMode, ShardBacklog, type PaceSettings } from "../src/actors/write/pace.ts";
import type { CollectionConfig } from "../src/runtime/schemas.ts";

const settings: PaceSettings = { sustainedBytesMax: 1_000, burstBytesMax: 5_000, sustainAfterMs: 100, burstAgainAfterMs: 50 };
const config = { name: "c", uid: "u1" } as CollectionConfig;

describe("observeAhead", () => {
  it("holds a burst to the burst bound, and a shard ahead for sustainAfterMs of writes to the sustained one", () => {
    const mode = paceMode();
    expect(observeAhead(mode, 4_000, 0, true, settings)).toBe(5_000);
    expect(observeAhead(mode, 4_500, 99, true, settings)).toBe(5_000);
    expect(observeAhead(mode, 4_500, 100, true, settings)).toBe(1_000);
    // Still sustained while the graph keeps it over half the bound…
    expect(observeAhead(mode, 600, 400, false, settings)).toBe(1_000);
    expect(observeAhead(mode, 400, 420, true, settings)).toBe(1_000);
    // …and a burst again once it stayed under half for burstAgainAfterMs.
    expect(observeAhead(mode, 400, 449, true, settings)).toBe(1_000);
    expect(observeAhead(mode, 0, 450, false, settings)).toBe(5_000);
  });

  it("does not count a break under the sustained bound toward it", () => {
    const mode = paceMode();
    observeAhead(mode, 2_000, 0, true, settings);
    observeAhead(mode, 900, 60, true, settings);
    expect(observeAhead(mode, 2_000, 120, true, settings)).toBe(5_000);
    expect(observeAhead(mode, 2_000, 219, true, settings)).toBe(5_000);
    expect(observeAhead(mode, 2_000, 220, true, settings)).toBe(1_000);
  });

  it("lets a burst that ended drain without calling it sustained, until more writes come", () => {
    const mode = paceMode();
    observeAhead(mode, 4_000, 0, true, settings);
    // The graph absorbs the burst for a long time: the replicas' notices alone change nothing.
    for (let t = 10; t <= 500; t += 10) expect(observeAhead(mode, 3_000, t, false, settings)).toBe(5_000);
    // A write finds the shard still over the bound after all that time: sustained at once.
    expect(observeAhead(mode, 3_000, 510, true, settings)).toBe(1_000);
  });
});

describe("ShardBacklog", () => {
  function setup() {
    let now = 0;
    const clock = () => now;
    const tracker = new AppliedTracker(clock);
    const backlog = new ShardBacklog(tracker, settings, clock);
    return { tracker, backlog, at: (ms: number) => (now = ms) };
  }
  const soon = () => performance.now() + 5_000;
  const past = () => performance.now() - 1;

  it("counts the leading replica's fresh buffer: a write waits until its graph makes room", async () => {
    const { tracker, backlog } = setup();
    tracker.record("c", 0, "n1", 0, 4_800);
    await expect(backlog.reserve(config, 0, 300, past())).rejects.toMatchObject({ code: "rate_limited" });
    const waiting = backlog.reserve(config, 0, 300, soon());
    let through = false;
    void waiting.then(() => (through = true));
    tracker.record("c", 0, "n1", 0, 4_750);
    await new Promise((resolve) => setImmediate(resolve));
    expect(through).toBe(false);
    tracker.record("c", 0, "n1", 0, 4_600);
    await waiting;
  });

  it("counts this node's entries until a replica applies them, and the fresh buffer after", async () => {
    const { tracker, backlog } = setup();
    const release = await backlog.reserve(config, 0, 3_000, past());
    release(7);
    await backlog.reserve(config, 0, 2_000, past()).then((r) => r(undefined));
    await expect(backlog.reserve(config, 0, 2_001, past())).rejects.toMatchObject({ code: "rate_limited" });
    // Applied: the entry left the log's backlog for the fresh buffer, and counts there.
    tracker.record("c", 0, "n1", 7, 3_000);
    await expect(backlog.reserve(config, 0, 2_001, past())).rejects.toMatchObject({ code: "rate_limited" });
    tracker.record("c", 0, "n1", 7, 1_000);
    await backlog.reserve(config, 0, 2_001, past());
  });

  it("paces on the leading replica, and forgets a report gone stale", async () => {
    const { tracker, backlog, at } = setup();
    tracker.record("c", 0, "gone", 9, 5_000);
    tracker.record("c", 0, "behind", 3, 0);
    expect(tracker.leading("c", 0)).toEqual({ seq: 9, freshBytes: 5_000 });
    await expect(backlog.reserve(config, 0, 100, past())).rejects.toMatchObject({ code: "rate_limited" });
    at(freshReportStaleMs + 1);
    expect(tracker.leading("c", 0)).toEqual({ seq: 9, freshBytes: 0 });
    await backlog.reserve(config, 0, 100, past());
  });

  it("holds a sustained import to the sustained bound, and lets one entry through when nothing is ahead", async () => {
    const { tracker, backlog, at } = setup();
    tracker.record("c", 0, "n1", 0, 2_000);
    (await backlog.reserve(config, 0, 100, past()))(undefined);
    at(100);
    await expect(backlog.reserve(config, 0, 100, past())).rejects.toMatchObject({ code: "rate_limited" });
    tracker.record("c", 0, "n1", 0, 850);
    (await backlog.reserve(config, 0, 100, past()))(undefined);
    await expect(backlog.reserve(config, 0, 151, past())).rejects.toMatchObject({ code: "rate_limited" });
    tracker.record("c", 0, "n1", 0, 0);
    await backlog.reserve(config, 0, 50_000, past());
  });
});

describe("applied notices", () => {
  it("parse what they were built from, and never throw on anything else", () => {
    const notice = { node: "node-1", seq: 12, freshBytes: 4096 };
    expect(parseAppliedNotice(new TextEncoder().encode(encodeAppliedNotice(notice)))).toEqual(notice);
    expect(parseAppliedNotice(new TextEncoder().encode('{"node":"n","seq":3}'))).toEqual({ node: "n", seq: 3 });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array(), fc.json().map((j) => new TextEncoder().encode(j))), (data) => {
        const parsed = parseAppliedNotice(data);
        if (parsed) expect(Number.isInteger(parsed.seq) && parsed.seq >= 0).toBe(true);
      }),
    );
    for (const bad of ['{"node":"n","seq":-1}', '{"node":"n","seq":1.5}', '{"node":"a.b","seq":1}', '{"node":"n","seq":1,"freshBytes":-2}', "[]", "null"]) {
      expect(parseAppliedNotice(new TextEncoder().encode(bad))).toBeUndefined();
    }
  });
});
