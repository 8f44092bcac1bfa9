/**
 * The request-serving loop against a real nats-server: replies and error replies,
 * the in-flight cap refusing the excess and serving again after, and stop draining
 * the requests in flight, heavy requests started one per turn behind the light ones.
 */
import { errors, type Msg, type NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { pino } from "pino";
import { afterAll, beforeAll, expect, it } from "vitest";
import { serve, type Serving } from "../src/nats/serve.ts";
import { deferred, type Deferred } from "../src/runtime/async.ts";
import { ErrorCode, JadeError, type Reply } from "../src/runtime/errors.ts";
import { Harness, waitFor } from "./support/harness.ts";

const harness = new Harness();
let nc: NatsConnection;
/** Requests on `test.block` wait for this gate; replaced by each test that uses it. */
let gate: Deferred<void> = deferred();
/** The subjects of the requests handled so far, in the order their handlers ran. */
const handled: string[] = [];

async function handle(msg: Msg): Promise<unknown> {
  handled.push(msg.subject);
  switch (msg.subject) {
    case "test.heavy": {
      // Holds the thread like the decoding of a bulk write.
      const until = performance.now() + 20;
      while (performance.now() < until);
      return "heavy";
    }
    case "test.echo":
      return msg.json();
    case "test.jade":
      throw new JadeError(ErrorCode.NotFound, "no such thing", { details: { what: "thing" } });
    case "test.bug":
      throw new TypeError("x is undefined");
    default:
      await gate.promise;
      return "released";
  }
}

function start(inflightMax = 2, oneByOne?: (msg: Msg) => boolean): Serving {
  return serve(nc, {
    oneByOne,
    subjects: [{ subject: "test.>", queue: "test-group" }],
    handle,
    encode: (reply) => JSON.stringify(reply),
    cap: { inflightMax, refusal: new JadeError(ErrorCode.RateLimited, "too busy") },
    log: pino({ level: "silent" }),
  });
}

async function ask(subject: string, body: unknown = {}): Promise<Reply<unknown>> {
  return (await nc.request(subject, JSON.stringify(body), { timeout: 10_000 })).json<Reply<unknown>>();
}

beforeAll(async () => {
  const server = await harness.nats();
  nc = await connect({ servers: server.url });
});
afterAll(async () => {
  await nc.close();
  await harness.close();
});

it("replies with the result, a JadeError as its wire error, anything else as internal", async () => {
  const serving = start();
  try {
    expect(await ask("test.echo", { a: [1, 2] })).toEqual({ ok: true, result: { a: [1, 2] } });
    expect(await ask("test.jade")).toEqual({
      ok: false,
      error: { code: "not_found", message: "no such thing", retryable: false, details: { what: "thing" } },
    });
    expect(await ask("test.bug")).toEqual({ ok: false, error: { code: "internal", message: "x is undefined", retryable: false } });
  } finally {
    await serving.stop();
  }
});

it("refuses requests past the in-flight cap with the structured error, and serves again after", async () => {
  gate = deferred();
  const serving = start(2);
  try {
    const blocked = [ask("test.block"), ask("test.block")];
    await waitFor(() => serving.inflight === 2, { timeoutMs: 10_000, what: "two handlers in flight" });
    expect(await ask("test.echo", 1)).toEqual({ ok: false, error: { code: "rate_limited", message: "too busy", retryable: true } });
    gate.resolve();
    expect(await Promise.all(blocked)).toEqual([
      { ok: true, result: "released" },
      { ok: true, result: "released" },
    ]);
    expect(serving.inflight).toBe(0);
    expect(await ask("test.echo", 2)).toEqual({ ok: true, result: 2 });
  } finally {
    gate.resolve();
    await serving.stop();
  }
});

it("stop takes no new requests and waits for those in flight, which still get their reply", async () => {
  gate = deferred();
  const serving = start();
  const blocked = ask("test.block");
  await waitFor(() => serving.inflight === 1, { timeoutMs: 10_000, what: "a handler in flight" });
  let stopped = false;
  const stopping = serving.stop().then(() => (stopped = true));
  // Once the subscription is gone the server has no responder for the subject.
  await waitFor(
    () =>
      nc.request("test.echo", "{}", { timeout: 1_000 }).then(
        () => false,
        (err: unknown) => err instanceof errors.RequestError && err.isNoResponders(),
      ),
    { timeoutMs: 10_000, what: "no responders after stop" },
  );
  // A round trip more: had stop not waited for the handler, it would have resolved by now.
  await nc.flush();
  expect(stopped).toBe(false);
  gate.resolve();
  await stopping;
  expect(await blocked).toEqual({ ok: true, result: "released" });
});

it("starts one-by-one requests one per turn: a light request that came with them is not handled after all of them", async () => {
  const serving = start(100, (msg) => msg.subject === "test.heavy");
  try {
    handled.length = 0;
    const heavy = Array.from({ length: 10 }, () => ask("test.heavy"));
    const light = ask("test.echo", 3);
    expect(await light).toEqual({ ok: true, result: 3 });
    expect(await Promise.all(heavy)).toEqual(Array.from({ length: 10 }, () => ({ ok: true, result: "heavy" })));
    // Published together; handled in arrival order they would put the light one last.
    expect(handled.indexOf("test.echo")).toBeLessThan(5);
  } finally {
    await serving.stop();
  }
});
