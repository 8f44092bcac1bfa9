/**
 * Tracing across nodes: a 3-node cluster (in this process, spans to an in-memory exporter)
 * where every shard lives on one node, so a search fans out over NATS to the others. One
 * search is one connected trace, continued from the caller's traceparent, spanning nodes
 * through the traceparent in the replica requests' headers; one write is one trace down to
 * the apply on the node that holds its shard, through the shard-log entry's headers.
 */
import { context, propagation, SpanKind, trace } from "@opentelemetry/api";
import { headers } from "@nats-io/nats-core";
import { InMemorySpanExporter, type ReadableSpan } from "@opentelemetry/sdk-trace";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JadeClient } from "../src/client/client.ts";
import { startTracing, type Tracing } from "../src/runtime/tracing-sdk.ts";
import { Harness, randomPoints, waitFor } from "./support/harness.ts";

const harness = new Harness();
const exporter = new InMemorySpanExporter();
let tracing: Tracing;
let client: JadeClient;
const nodeIds = ["t1", "t2", "t3"];

beforeAll(async () => {
  tracing = startTracing({ exporter });
  const nats = await harness.nats();
  for (const nodeId of nodeIds) await harness.node([nats.url], { nodeId });
  client = await harness.client(nats.url);
  await client.createCollection({ name: "traced", dimension: 4, metric: "l2", shards: 3, replicas: 1 });
  // One shard per node: every search reads two shards on other nodes.
  await waitFor(async () => {
    const status = await client.clusterStatus();
    const shards = status.collections.find((c) => c.name === "traced")?.shards ?? [];
    const nodes = new Set(shards.flatMap((s) => s.replicas.filter((r) => r.state === "serving").map((r) => r.node)));
    return shards.length === 3 && nodes.size === 3;
  });
  await client.upsert("traced", { points: randomPoints(30, 4, 5).map((vector, i) => ({ id: `t${i}`, vector })), consistency: "all" });
});
afterAll(async () => {
  await harness.close();
  await tracing.shutdown();
});

/** Sends an API request under a root span of the test's own, as a traced caller would. */
async function tracedRequest(subject: string, body: unknown): Promise<{ traceId: string; rootSpanId: string; reply: { ok: boolean } }> {
  const root = trace.getTracer("test").startSpan("caller", { kind: SpanKind.CLIENT });
  const h = headers();
  propagation.inject(trace.setSpan(context.active(), root), h, { set: (c, k, v) => c.set(k, v) });
  const msg = await client.nc.request(subject, JSON.stringify(body), { timeout: 30_000, headers: h });
  root.end();
  return { traceId: root.spanContext().traceId, rootSpanId: root.spanContext().spanId, reply: msg.json() };
}

function spansOf(traceId: string): ReadableSpan[] {
  return exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
}

/** Every span's parent is the caller's root or another span of the trace: one tree. */
function expectConnected(spans: ReadableSpan[], rootSpanId: string): void {
  const ids = new Set([rootSpanId, ...spans.map((s) => s.spanContext().spanId)]);
  for (const s of spans.filter((s) => s.spanContext().spanId !== rootSpanId)) {
    expect(ids.has(s.parentSpanContext?.spanId ?? ""), `${s.name} has a parent outside the trace`).toBe(true);
  }
}

describe("one request, one trace", () => {
  it("a search spans the gateway's node and the nodes holding the other shards", async () => {
    const { traceId, rootSpanId, reply } = await tracedRequest("jade.v1.traced.search", { vector: [0.1, 0.2, 0.3, 0.4], k: 5 });
    expect(reply.ok).toBe(true);
    const spans = await waitFor(() => {
      const found = spansOf(traceId);
      return found.filter((s) => s.name === "jade.replica.search").length === 2 && found;
    });
    expectConnected(spans, rootSpanId);
    const api = spans.find((s) => s.name === "jade.api search")!;
    expect(api.kind).toBe(SpanKind.SERVER);
    expect(api.parentSpanContext?.spanId).toBe(rootSpanId);
    const gatewayNode = api.attributes["jade.node"];
    // Each remote read: a client span on the gateway's node, its server span on the replica's node, the index search under it.
    const servers = spans.filter((s) => s.name === "jade.replica.search");
    for (const server of servers) {
      const clientSpan = spans.find((s) => s.spanContext().spanId === server.parentSpanContext?.spanId)!;
      expect(clientSpan.name).toBe("jade.router.search remote");
      expect(clientSpan.kind).toBe(SpanKind.CLIENT);
      expect(clientSpan.attributes["jade.node"]).toBe(gatewayNode);
      expect(server.attributes["jade.node"]).toBe(clientSpan.attributes["jade.replica.node"]);
      expect(server.attributes["jade.node"]).not.toBe(gatewayNode);
      expect(spans.some((s) => s.name === "jade.index.search" && s.parentSpanContext?.spanId === server.spanContext().spanId)).toBe(true);
    }
    expect(spans.filter((s) => s.name === "jade.router.search local")).toHaveLength(1);
    const nodes = new Set(spans.map((s) => s.attributes["jade.node"]).filter((n) => n !== undefined));
    expect(nodes.size).toBe(3);
  });

  it("a write traces down to the apply on the node that holds its shard", async () => {
    const { traceId, rootSpanId, reply } = await tracedRequest("jade.v1.traced.upsert", { points: [{ id: "w1", vector: [1, 2, 3, 4] }], consistency: "all" });
    expect(reply.ok).toBe(true);
    const spans = await waitFor(() => {
      const found = spansOf(traceId);
      return found.some((s) => s.name === "jade.replica.apply") && found;
    });
    expectConnected(spans, rootSpanId);
    const publish = spans.find((s) => s.name === "jade.log.publish")!;
    const writer = spans.find((s) => s.name === "jade.writer.append")!;
    const api = spans.find((s) => s.name === "jade.api upsert")!;
    const apply = spans.find((s) => s.name === "jade.replica.apply")!;
    expect(publish.parentSpanContext?.spanId).toBe(writer.spanContext().spanId);
    expect(writer.parentSpanContext?.spanId).toBe(api.spanContext().spanId);
    expect(apply.parentSpanContext?.spanId).toBe(publish.spanContext().spanId);
    const status = await client.clusterStatus();
    const holder = status.collections.find((c) => c.name === "traced")!.shards[Number(apply.attributes["jade.shard"])]!.replicas[0]!.node;
    expect(apply.attributes["jade.node"]).toBe(holder);
  });

  it("a request without a traceparent starts its own trace", async () => {
    const before = new Set(exporter.getFinishedSpans().map((s) => s.spanContext().traceId));
    await client.count("traced");
    const fresh = await waitFor(() => {
      const roots = exporter.getFinishedSpans().filter((s) => s.name === "jade.api count" && !before.has(s.spanContext().traceId));
      return roots.length === 1 && roots[0];
    });
    expect(fresh.parentSpanContext).toBeUndefined();
    expect(spansOf(fresh.spanContext().traceId).length).toBeGreaterThan(3);
  });
});

describe("jade dev --otlp-endpoint", () => {
  it("exports its spans over OTLP/HTTP, the last ones when it stops", async () => {
    const received: { path: string; type: string; bytes: number }[] = [];
    const sink = createServer((req, res) => {
      let bytes = 0;
      req.on("data", (chunk: Buffer) => (bytes += chunk.byteLength));
      req.on("end", () => {
        received.push({ path: req.url ?? "", type: req.headers["content-type"] ?? "", bytes });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => sink.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = sink.address() as AddressInfo;
      const dev = await harness.spawnJade(["dev", "--data", await harness.tempDir(), "--nats-port", "0", "--http-port", "0", "--otlp-endpoint", `http://127.0.0.1:${port}/v1/traces`]);
      await fetch(`${dev.httpUrl}/v1/collections`, { method: "POST", body: JSON.stringify({ name: "otlp", dimension: 2, metric: "l2" }) });
      expect((await fetch(`${dev.httpUrl}/v1/collections/otlp/count`, { method: "POST" })).status).toBe(200);
      await dev.stop();
      expect(received.length).toBeGreaterThan(0);
      expect(received.every((r) => r.path === "/v1/traces" && r.bytes > 0)).toBe(true);
    } finally {
      sink.close();
    }
  });
});
