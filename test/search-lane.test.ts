/**
 * The index workers' search lane (search-batch.ts), both ends in this thread over a real
 * MessageChannel: what the worker's end answers when a batch arrives, and what it answers
 * when the worker asks between the steps of long work.
 */
import { MessageChannel } from "node:worker_threads";
import { afterEach, describe, expect, it } from "vitest";
import type { ShardSearchItem, ShardSearchOutcome } from "../src/actors/vector-index/api.ts";
import { SearchLane, serveSearchLane } from "../src/actors/vector-index/search-batch.ts";

function item(shardKey: string, x: number): ShardSearchItem {
  return { shardKey, request: { vector: Float32Array.of(x), k: 1, withPayload: false, withVectors: false } };
}

/** Answers each item with one hit named after its shard and query. */
function answerer(calls: number[]): (items: ShardSearchItem[]) => ShardSearchOutcome[] {
  return (items) => {
    calls.push(items.length);
    return items.map(({ shardKey, request }) => ({ hits: [{ id: `${shardKey}:${request.vector[0]}`, distance: 0 }] }));
  };
}

const channels: MessageChannel[] = [];
afterEach(() => {
  for (const { port1, port2 } of channels.splice(0)) {
    port1.close();
    port2.close();
  }
});

function lane(calls: number[]): { lane: SearchLane; answerWaiting: () => void } {
  const channel = new MessageChannel();
  channels.push(channel);
  return { lane: new SearchLane(channel.port1), answerWaiting: serveSearchLane(channel.port2, answerer(calls)) };
}

const idsOf = (outcomes: ShardSearchOutcome[]) => outcomes.map((o) => ("hits" in o ? o.hits[0]!.id : o.error));

describe("search lane", () => {
  it("answers the batches queued behind the first together, each its own outcomes", async () => {
    const calls: number[] = [];
    const { lane: searches } = lane(calls);
    const a = searches.send([item("s0", 1)]);
    const b = searches.send([item("s1", 2), item("s1", 3)]);
    expect(idsOf(await a)).toEqual(["s0:1"]);
    expect(idsOf(await b)).toEqual(["s1:2", "s1:3"]);
    expect(calls).toEqual([3]);
  });

  it("answers what is queued at once when the worker asks, before the event loop turns", async () => {
    const calls: number[] = [];
    const { lane: searches, answerWaiting } = lane(calls);
    answerWaiting();
    expect(calls).toEqual([]);
    const a = searches.send([item("s0", 1)]);
    const b = searches.send([item("s2", 4)]);
    answerWaiting();
    // Answered in this turn: the port's own message event finds nothing left to answer.
    expect(calls).toEqual([2]);
    expect(idsOf(await a)).toEqual(["s0:1"]);
    expect(idsOf(await b)).toEqual(["s2:4"]);
    expect(calls).toEqual([2]);
  });
});
