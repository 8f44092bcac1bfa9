/** Wire errors: NATS not answering a handler's own request is `unavailable` (retryable), anything else unknown is `internal`. */
import { NoRespondersError, RequestError, TimeoutError } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { afterAll, describe, expect, it } from "vitest";
import { ErrorCode, JadeError, toWireError } from "../src/runtime/errors.ts";
import { Harness } from "./support/harness.ts";

const harness = new Harness();
afterAll(() => harness.close());

describe("wire errors", () => {
  it("NATS timeouts and missing responders are unavailable and retryable; a bug stays internal", () => {
    expect(toWireError(new TimeoutError())).toMatchObject({ code: ErrorCode.Unavailable, retryable: true, message: expect.stringMatching(/^NATS did not answer in time/) });
    expect(toWireError(new RequestError("no responders", { cause: new NoRespondersError("$JS.API.STREAM.INFO.x") }))).toMatchObject({ code: ErrorCode.Unavailable, retryable: true });
    expect(toWireError(new RequestError("connection closed"))).toMatchObject({ code: ErrorCode.Internal, retryable: false });
    expect(toWireError(new TypeError("x is undefined"))).toEqual({ code: ErrorCode.Internal, message: "x is undefined", retryable: false });
    expect(toWireError(new JadeError(ErrorCode.NotFound, "no such"))).toMatchObject({ code: ErrorCode.NotFound, retryable: false });
  });

  it("what a real nats-server answers to a request nobody serves, and to one nobody answers in time", async () => {
    const nats = await harness.nats();
    const nc = await connect({ servers: nats.url });
    try {
      const nobody = await nc.request("nobody.here", "", { timeout: 1_000 }).catch((e: unknown) => e);
      expect(toWireError(nobody)).toMatchObject({ code: ErrorCode.Unavailable, retryable: true });
      nc.subscribe("silent.here", { callback: () => undefined });
      const silent = await nc.request("silent.here", "", { timeout: 200 }).catch((e: unknown) => e);
      expect(toWireError(silent)).toMatchObject({ code: ErrorCode.Unavailable, retryable: true });
    } finally {
      await nc.close();
    }
  });
});
