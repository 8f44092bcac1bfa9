/** The rolling-restart plan and readiness (pure), and the join check of format versions. */
import { describe, expect, it } from "vitest";
import { formatIssue, formatsToRaise, newClusterFormats } from "../src/runtime/formats.ts";
import { nodeReady, restartPlan } from "../src/runtime/restart-plan.ts";
import type { ClusterStatus, ReplicaStatus } from "../src/runtime/status.ts";

const replica = (node: string, state = "serving", lag = 0): ReplicaStatus => ({ node, state, appliedSeq: 10 - lag, lastSeq: 10, lag });

function status(overrides: Partial<ClusterStatus> = {}): ClusterStatus {
  const node = (id: string, live = true) => ({ id, self: false, live, drained: false, load: 0, rssBytes: 0, lastSeenMs: 0, configRevision: 0, version: "1" });
  return {
    nodes: [node("n1"), node("n2"), node("n3")],
    departed: [],
    configRevision: 0,
    coordinator: "n1",
    jobs: [],
    collections: [
      {
        name: "rf2",
        dimension: 2,
        metric: "l2",
        replicas: 2,
        epoch: 1,
        shards: [
          { shard: 0, replicas: [replica("n1"), replica("n2")], learners: [] },
          { shard: 1, replicas: [replica("n2"), replica("n3")], learners: [] },
          { shard: 2, replicas: [replica("n3"), replica("n1", "replaying", 4)], learners: [] },
        ],
      },
      { name: "rf1", dimension: 2, metric: "l2", replicas: 1, epoch: 1, shards: [{ shard: 0, replicas: [replica("n2")], learners: [] }] },
    ],
    ...overrides,
  } as ClusterStatus;
}

describe("restart plan", () => {
  it("restarts the coordinator last and names the shards that would have no serving replica", () => {
    const plan = restartPlan(status());
    expect(plan.steps.map((s) => s.node)).toEqual(["n2", "n3", "n1"]);
    expect(plan.steps.map((s) => s.replicas)).toEqual([3, 2, 2]);
    expect(plan.steps[2]).toMatchObject({ node: "n1", coordinator: true, alone: [] });
    // rf1 has one replica; rf2/2's other replica is still replaying on n1.
    expect(plan.steps[0]!.alone).toEqual(["rf1/0"]);
    expect(plan.steps[1]!.alone).toEqual(["rf2/2"]);
    expect(plan.down).toEqual([]);
  });

  it("leaves out a node that is down or away, and says so first", () => {
    const s = status({ departed: [{ node: "n3", at: "2026-12-05T00:00:00.000Z" }] });
    s.nodes[2]!.live = false;
    const plan = restartPlan(s);
    expect(plan.steps.map((x) => x.node)).toEqual(["n2", "n1"]);
    expect(plan.down).toEqual(["n3"]);
  });

  it("a node is ready once live, not away, and every replica it hosts serves with no lag", () => {
    expect(nodeReady(status(), "n2")).toBe(true);
    expect(nodeReady(status(), "n1")).toBe(false);
    expect(nodeReady(status(), "n9")).toBe(false);
    expect(nodeReady(status({ departed: [{ node: "n2", at: "2026-12-05T00:00:00.000Z" }] }), "n2")).toBe(false);
  });
});

describe("format versions", () => {
  it("a node joins a cluster writing formats it reads, and refuses one writing a newer or an older one", () => {
    const mine = { log: { min: 1, max: 2 }, message: { min: 1, max: 1 } };
    expect(formatIssue({ log: 1, message: 1 }, mine)).toBeUndefined();
    expect(formatIssue({ log: 2, message: 1 }, mine)).toBeUndefined();
    expect(formatIssue({ log: 3, message: 1 }, mine)).toMatch(/^the cluster writes log format 3; this node reads log formats 1–2/);
    expect(formatIssue({ log: 1, message: 2 }, mine)).toMatch(/message format 2/);
    expect(formatIssue({ log: 1, message: 1 }, { log: { min: 2, max: 2 }, message: { min: 1, max: 1 } })).toMatch(/log format 1/);
    expect(formatIssue(newClusterFormats())).toBeUndefined();
  });

  it("the cluster moves to a newer format once every node reads it, and never back", () => {
    const reads = (logMin: number, logMax: number) => ({ log: { min: logMin, max: logMax }, message: { min: 1, max: 1 } });
    const written = { log: 1, message: 1 };
    // One node still reads only format 1: nothing moves.
    expect(formatsToRaise(written, [reads(1, 2), reads(1, 1), reads(1, 3)])).toBeUndefined();
    // All read 2, one reads 3 too: the cluster writes 2.
    expect(formatsToRaise(written, [reads(1, 2), reads(1, 3)])).toEqual({ log: 2, message: 1 });
    // Never back, and never to a format some node has left behind.
    expect(formatsToRaise({ log: 3, message: 1 }, [reads(1, 2)])).toBeUndefined();
    expect(formatsToRaise(written, [reads(3, 3), reads(1, 3)])).toEqual({ log: 3, message: 1 });
    expect(formatsToRaise(written, [reads(3, 4), reads(1, 2)])).toBeUndefined();
    expect(formatsToRaise(written, [])).toBeUndefined();
  });
});
