import { describe, expect, it } from "vitest";
import { deferred } from "../src/runtime/async.ts";
import { KeyedMutex, Mutex } from "../src/runtime/mutex.ts";

describe("KeyedMutex", () => {
  it("runs the sections of one key one at a time, in call order", async () => {
    const mutex = new KeyedMutex();
    const events: string[] = [];
    const gate = deferred();
    const first = mutex.run("a", async () => {
      events.push("first:start");
      await gate.promise;
      events.push("first:end");
      return 1;
    });
    const second = mutex.run("a", async () => {
      events.push("second");
      return 2;
    });
    await Promise.resolve();
    expect(events).toEqual(["first:start"]);
    gate.resolve();
    expect(await Promise.all([first, second])).toEqual([1, 2]);
    expect(events).toEqual(["first:start", "first:end", "second"]);
  });

  it("does not hold one key's sections behind another's", async () => {
    const mutex = new KeyedMutex();
    const gate = deferred();
    const slow = mutex.run("a", () => gate.promise);
    expect(await mutex.run("b", async () => "b ran")).toBe("b ran");
    gate.resolve();
    await slow;
  });

  it("passes a failure to its caller and still runs the next section", async () => {
    const mutex = new KeyedMutex();
    const failed = mutex.run("a", async () => {
      throw new Error("boom");
    });
    const next = mutex.run("a", async () => "after");
    await expect(failed).rejects.toThrow("boom");
    expect(await next).toBe("after");
  });

  it("forgets a key once its last section has settled", async () => {
    const mutex = new KeyedMutex();
    const gate = deferred();
    const running = mutex.run("a", () => gate.promise);
    expect(mutex.busyKeys).toBe(1);
    gate.resolve();
    await running;
    await new Promise((r) => setImmediate(r));
    expect(mutex.busyKeys).toBe(0);
  });
});

describe("Mutex", () => {
  it("serializes every section", async () => {
    const mutex = new Mutex();
    let inside = 0;
    let most = 0;
    await Promise.all(
      Array.from({ length: 10 }, () =>
        mutex.run(async () => {
          most = Math.max(most, ++inside);
          await new Promise((r) => setImmediate(r));
          inside--;
        }),
      ),
    );
    expect(most).toBe(1);
  });
});
