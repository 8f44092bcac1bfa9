/**
 * The cluster's settings, pure: a change laid on a patch, a patch on a node's own settings,
 * the relations a change must keep, what differs between revisions, and the request schemas'
 * refusals; then the parts that follow a change live (rate limiters, the log threshold).
 */
import { describe, expect, it } from "vitest";
import { changed, diff, effective, relationIssue } from "../src/actors/config/patch.ts";
import { ClusterSettings, ConfigSetRequest, SettingsPatch, settingPaths } from "../src/actors/config/schemas.ts";
import { onLogLine, processLogLevel, rootLogger, setLogLevel } from "../src/runtime/log.ts";
import { KeyedRateLimits, RateLimiter, type RateLimitClock } from "../src/runtime/rate-limit.ts";

const own: ClusterSettings = {
  membership: { heartbeatIntervalMs: 1_000, failureTimeoutMs: 3_000 },
  replica: { transferBytesPerSecMax: 2 * 1024 * 1024 },
  migration: { concurrentMax: 2 },
  coordinator: { restartDelayMs: 60_000 },
  snapshot: { intervalMs: 30_000 },
  retention: { pointInTimeMs: 86_400_000 },
  rateLimits: { httpKey: { perSecond: 0, burst: 1 }, natsTenant: { perSecond: 0, burst: 1 } },
  log: { level: "info" },
};
const bounds = { nodeDeadAfterMs: 8_000 };

describe("settings patches", () => {
  it("a change sets and unsets paths; the node's own settings show through where nothing is set", () => {
    const first = SettingsPatch.parse(changed({}, { "membership.heartbeatIntervalMs": 500, "log.level": "debug" }, []));
    expect(first).toEqual({ membership: { heartbeatIntervalMs: 500 }, log: { level: "debug" } });
    const second = SettingsPatch.parse(changed(first, { "rateLimits.httpKey": { perSecond: 5, burst: 10 } }, ["log.level"]));
    expect(second).toEqual({ membership: { heartbeatIntervalMs: 500 }, rateLimits: { httpKey: { perSecond: 5, burst: 10 } } });
    // The patch it came from is unchanged.
    expect(first).toEqual({ membership: { heartbeatIntervalMs: 500 }, log: { level: "debug" } });
    const runs = effective(own, second);
    expect(runs.membership).toEqual({ heartbeatIntervalMs: 500, failureTimeoutMs: 3_000 });
    expect(runs.rateLimits.httpKey).toEqual({ perSecond: 5, burst: 10 });
    expect(runs.log.level).toBe("info");
    expect(own.membership.heartbeatIntervalMs).toBe(1_000);
    expect(ClusterSettings.parse(runs)).toEqual(runs);
  });

  it("relations between settings are kept: two heartbeats per failure timeout, and a failure timeout below the dead-node timeout", () => {
    expect(relationIssue(own, bounds)).toBeUndefined();
    expect(relationIssue(effective(own, { membership: { failureTimeoutMs: 1_999 } }), bounds)).toMatch(/at least twice membership.heartbeatIntervalMs \(1000\)/);
    expect(relationIssue(effective(own, { membership: { heartbeatIntervalMs: 4_000 } }), bounds)).toMatch(/twice/);
    expect(relationIssue(effective(own, { membership: { failureTimeoutMs: 2_000 } }), bounds)).toBeUndefined();
    expect(relationIssue(effective(own, { membership: { failureTimeoutMs: 8_000 } }), bounds)).toMatch(/below the coordinator's dead-node timeout \(8000 ms/);
    expect(relationIssue(effective(own, { membership: { failureTimeoutMs: 8_000 } }), { nodeDeadAfterMs: 8_001 })).toBeUndefined();
  });

  it("diff names each setting that changed, from what to what (undefined: not set)", () => {
    const a: SettingsPatch = { membership: { heartbeatIntervalMs: 500 }, log: { level: "debug" } };
    const b: SettingsPatch = { membership: { heartbeatIntervalMs: 500 }, migration: { concurrentMax: 4 }, rateLimits: { httpKey: { perSecond: 1, burst: 2 } } };
    expect(diff(a, b)).toEqual([
      { path: "log.level", from: "debug", to: undefined },
      { path: "migration.concurrentMax", from: undefined, to: 4 },
      { path: "rateLimits.httpKey", from: undefined, to: { perSecond: 1, burst: 2 } },
    ]);
    expect(diff(b, b)).toEqual([]);
    expect(diff({}, {})).toEqual([]);
  });

  it("refuses unknown settings, values out of bounds or of the wrong type, and a change of nothing", () => {
    expect(settingPaths).toContain("membership.heartbeatIntervalMs");
    expect(settingPaths).toHaveLength(10);
    const unknown = ConfigSetRequest.safeParse({ set: { "bogus.x": 1 } });
    expect(unknown.success).toBe(false);
    expect(unknown.error?.issues[0]?.message).toMatch(/^bogus\.x is not a setting: one of membership\.heartbeatIntervalMs/);
    expect(ConfigSetRequest.safeParse({ unset: ["membership"] }).success).toBe(false);
    expect(ConfigSetRequest.safeParse({}).error?.issues[0]?.message).toMatch(/nothing to change/);
    expect(ConfigSetRequest.safeParse({ set: {}, unset: [] }).success).toBe(false);
    expect(ConfigSetRequest.safeParse({ set: { "log.level": "debug" }, revision: -1 }).success).toBe(false);
    for (const bad of [
      { migration: { concurrentMax: 0 } },
      { migration: { concurrentMax: 1.5 } },
      { membership: { heartbeatIntervalMs: 99 } },
      { snapshot: { intervalMs: "30s" } },
      { retention: { pointInTimeMs: -1 } },
      { rateLimits: { httpKey: { perSecond: 1 } } },
      { rateLimits: { httpKey: { perSecond: -1, burst: 1 } } },
      { log: { level: "loud" } },
      { log: { level: "info", colour: true } },
      { membership: null },
    ]) {
      expect(SettingsPatch.safeParse(bad).success, JSON.stringify(bad)).toBe(false);
    }
    expect(SettingsPatch.safeParse({ rateLimits: { natsTenant: { perSecond: 0.5, burst: 1 } } }).success).toBe(true);
  });
});

describe("parts that follow a change live", () => {
  function manualClock(): RateLimitClock & { advance(ms: number): void } {
    let now = 0;
    return { nowMs: () => now, sleep: async () => undefined, advance: (ms) => void (now += ms) };
  }

  it("a byte limiter paces at its new rate from the change on; 0 makes it unlimited", () => {
    const clock = manualClock();
    const limiter = new RateLimiter(1_000, 1_000, clock);
    expect(limiter.delayMs(1_000)).toBe(0);
    expect(limiter.delayMs(2_000)).toBe(1_000);
    limiter.setRate(4_000, 4_000);
    expect(limiter.delayMs(8_000)).toBe(1_000);
    limiter.setRate(0, 0);
    expect(limiter.unlimited).toBe(true);
    expect(limiter.delayMs(1e12)).toBe(0);
    limiter.setRate(1_000, 0);
    expect(limiter.delayMs(500)).toBe(500);
  });

  it("keyed limits take a new rate and burst for every identity; the same setting again changes nothing", () => {
    const clock = manualClock();
    const rates = new KeyedRateLimits({ perSecond: 0, burst: 1 }, clock);
    expect(rates.unlimited).toBe(true);
    expect(rates.admit("k")).toBe(0);
    rates.set({ perSecond: 1, burst: 2 });
    expect([rates.admit("k"), rates.admit("k")]).toEqual([0, 0]);
    expect(rates.admit("k")).toBe(1_000);
    rates.set({ perSecond: 1, burst: 2 });
    expect(rates.admit("k")).toBe(1_000);
    rates.set({ perSecond: 0, burst: 1 });
    expect(rates.admit("k")).toBe(0);
  });

  it("the log threshold holds for loggers made before it changed", () => {
    const child = rootLogger.child({ test: "config" });
    const lines: string[] = [];
    const off = onLogLine((line) => lines.push(line));
    try {
      setLogLevel("warn");
      child.info("quiet");
      child.warn("heard");
      setLogLevel("debug");
      child.debug("now heard");
      child.trace("still quiet");
    } finally {
      setLogLevel(processLogLevel);
      off();
    }
    expect(lines.map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual(["heard", "now heard"]);
  });
});
