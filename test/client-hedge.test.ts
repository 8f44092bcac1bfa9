/**
 * The client's hedged reads against a real nats-server: two nodes known by their heartbeats,
 * one that takes requests and never answers (a paused process), one that answers. Every read
 * is answered within a budget that waiting out the hung node's attempt would spend, and the
 * hung node was asked too (so the hedge, not luck, answered).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NatsConnection } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { JadeClient } from "../src/client/client.ts";
import { HedgeBudget } from "../src/runtime/hedge-budget.ts";
import { encodeBody, Encoding } from "../src/runtime/encoding.ts";
import { names, nodeApiSubject, subjects } from "../src/runtime/subjects.ts";
import { Harness, waitFor } from "./support/harness.ts";

const harness = new Harness();
let nc: NatsConnection;
let client: JadeClient;
let beating: NodeJS.Timeout;
const asked = { hung: 0, answering: 0 };

beforeAll(async () => {
  const nats = await harness.nats();
  nc = await harness.connect(nats.url);
  const nodes = await new Kvm(nc).create(names.nodesBucket, { history: 1 });
  const beat = () => Promise.all(["hung", "answering"].map((nodeId) => nodes.put(nodeId, JSON.stringify({ nodeId }))));
  await beat();
  beating = setInterval(() => void beat(), 500);
  const search = subjects.collection("c", "search");
  nc.subscribe(nodeApiSubject("hung", search), { callback: () => void asked.hung++ });
  nc.subscribe(nodeApiSubject("answering", search), {
    callback: (_err, msg) => {
      asked.answering++;
      msg.respond(encodeBody({ ok: true, result: { hits: [], partial: false, shards: { total: 1, answered: 1 } } }, Encoding.Msgpack));
    },
  });
  await nc.flush();
  // The client's whole budget is one attempt (search timeout + 1 s): without a hedge, a read sent to the hung node first fails.
  client = await JadeClient.connect({ servers: nats.url, timeoutMs: 1_500 });
  await waitFor(async () => {
    await client.search("c", { vector: [0], k: 1, timeoutMs: 500 });
    return asked.answering > 0;
  }, { what: "the client to know both nodes" });
});

afterAll(async () => {
  clearInterval(beating);
  await client?.close();
  await harness.close();
});

describe("hedged reads", () => {
  it("answer through the other node while one takes requests and never replies", async () => {
    const hungBefore = asked.hung;
    const statsBefore = client.readStats;
    const outcomes: string[] = [];
    // Reads go round the nodes; the hung one is skipped from its missed reply to its next heartbeat.
    await waitFor(async () => {
      const result = await client.search("c", { vector: [outcomes.length], k: 1, timeoutMs: 500 }).then(
        (r) => (r.partial ? "partial" : "answered"),
        (err: { code?: string }) => err.code ?? "error",
      );
      outcomes.push(result);
      return asked.hung >= hungBefore + 3;
    }, { what: "the hung node asked three more times", timeoutMs: 60_000, intervalMs: 1 });
    expect(outcomes.filter((o) => o !== "answered")).toEqual([]);
    // Every read the hung node took was hedged (the budget holds ten), and counted.
    const stats = client.readStats;
    expect(stats.attempts - statsBefore.attempts).toBeGreaterThanOrEqual(outcomes.length);
    expect(stats.hedged - statsBefore.hedged).toBeGreaterThanOrEqual(3);
    expect(stats.hedged - statsBefore.hedged).toBeLessThanOrEqual(asked.hung - hungBefore);
    expect(stats.hedgesRationed).toBe(0);
  });
});

describe("the hedge budget", () => {
  it("allows ten hedges saved up, then one per ten reads", () => {
    const budget = new HedgeBudget();
    for (let i = 0; i < 10; i++) expect(budget.take()).toBe(true);
    expect(budget.take()).toBe(false);
    for (let i = 0; i < 9; i++) budget.read();
    expect(budget.take()).toBe(false);
    budget.read();
    expect(budget.take()).toBe(true);
    expect(budget.take()).toBe(false);
  });
});
