import { describe, expect, it } from "vitest";
import { MessageChannel } from "node:worker_threads";
import { Backoff, deferred, TurnQueue, urgent, withDeadline } from "../src/runtime/async.ts";

describe("withDeadline", () => {
  it("passes the promise's value through when it settles in time", async () => {
    expect(await withDeadline(Promise.resolve(7), 1_000, () => new Error("late"))).toBe(7);
  });

  it("rejects with the deadline's error when the promise does not settle", async () => {
    const never = deferred<number>();
    await expect(withDeadline(never.promise, 5, () => new Error("late"))).rejects.toThrow("late");
  });
});

describe("Backoff", () => {
  it("doubles up to its cap and starts over on reset", async () => {
    const backoff = new Backoff({ initialMs: 1, maxMs: 4 });
    const seen: number[] = [];
    for (let i = 0; i < 5; i++) {
      seen.push(backoff.nextMs);
      await backoff.wait();
    }
    expect(seen).toEqual([1, 2, 4, 4, 4]);
    backoff.reset();
    expect(backoff.nextMs).toBe(1);
  });

  it("refuses settings where the first step exceeds the cap", () => {
    expect(() => new Backoff({ initialMs: 10, maxMs: 5 })).toThrow(/initialMs/);
  });
});

describe("TurnQueue", () => {
  it("lets one waiter go per turn, in order, with the I/O that arrived meanwhile handled between them", async () => {
    const queue = new TurnQueue();
    const seen: string[] = [];
    const { port1, port2 } = new MessageChannel();
    port2.on("message", (m: string) => seen.push(m));
    const waiters = ["a", "b", "c"].map((name) =>
      queue.turn().then(() => {
        seen.push(name);
        // A message posted while "a" runs is delivered before "b" goes.
        if (name === "a") port1.postMessage("io");
      }),
    );
    await Promise.all(waiters);
    expect(seen).toEqual(["a", "io", "b", "c"]);
    port1.close();
  });

  it("lets urgent work of a turn go before the item released in that turn, even one scheduled earlier", async () => {
    const queue = new TurnQueue();
    const seen: string[] = [];
    const { port1, port2 } = new MessageChannel();
    port2.on("message", (m: string) => {
      seen.push(m);
      // What a search's request does when it arrives: its hand-off to the workers is urgent.
      urgent(() => seen.push(`urgent after ${m}`));
    });
    const waiters = ["a", "b"].map((name) =>
      queue.turn().then(() => {
        seen.push(name);
        // b's release is already scheduled when this message arrives in the next turn's I/O.
        if (name === "a") port1.postMessage("io");
      }),
    );
    await Promise.all(waiters);
    expect(seen).toEqual(["a", "io", "urgent after io", "b"]);
    port1.close();
  });

  it("runs urgent work on its own turn when no item is waiting", async () => {
    const done = deferred();
    urgent(done.resolve);
    await done.promise;
  });
});
