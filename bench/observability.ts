/**
 * `npm run bench -- --suite observability`: what the metrics cost on the hot path. One
 * Fashion-MNIST collection, searched through NATS by a node (a child process) restarted
 * in each variant in turn (ABBA…, so the VM's drift and any order effect fall on both): metrics off, and
 * metrics on while /metrics is scraped every second (Prometheus scrapes every 15 s: this
 * is fifteen times harsher), and metrics with tracing of every request, its spans sent over
 * OTLP/HTTP to a sink in this process. Search latency at concurrency 1 and QPS at 8, with
 * raw usearch on the same data from the same run beside them. Target (issue 12): metrics
 * cost under 5 %.
 */
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { JadeClient } from "../src/client/client.ts";
import { startEmbeddedNats } from "../src/nats/embedded.ts";
import {
  fmt,
  groundTruth,
  index,
  ingest,
  kv,
  loadDataset,
  log,
  machineInfo,
  mean,
  onCleanup,
  rawUsearch,
  round,
  searchApi,
  searchBodies,
  searchConcurrency,
  section,
  snapshot,
  startNode,
  table,
  waitServing,
  warmupQueries,
  writeResults,
} from "./common.ts";

const collection = "obs";
/** How often the metrics variant is scraped. */
const scrapeIntervalMs = 1_000;

type Variant = "metrics off" | "metrics on" | "tracing 100 %";
const variants: readonly Variant[] = ["metrics off", "metrics on", "tracing 100 %"];

interface Measurement {
  variant: Variant;
  round: number;
  p50Ms: number;
  p95Ms: number;
  qpsC1: number;
  qpsC8: number;
  scrapes: number;
}

export interface ObservabilityOptions {
  limit: number;
  queries: number;
  rounds: number;
}

export async function runObservability(opts: ObservabilityOptions): Promise<void> {
  const startedAt = new Date();
  section("What metrics cost on the search path");
  kv("machine", JSON.stringify(machineInfo()));
  const { train, queries } = await loadDataset(opts.limit, opts.queries);
  kv("dataset", `fashion-mnist ${fmt(train.count)} × ${train.dimension}, ${fmt(queries.count)} queries, k 10, 1 shard`);
  kv("variants", `${variants.join(", ")} (scraped every ${scrapeIntervalMs} ms), ${opts.rounds} rounds, alternating`);
  const bodies = searchBodies(queries);

  const tmp = await mkdtemp(path.join(os.tmpdir(), "jade-bench-obs-"));
  onCleanup(() => rm(tmp, { recursive: true, force: true }));
  const nats = await startEmbeddedNats({ dataDir: path.join(tmp, "nats"), serverName: "jade-bench-obs" });
  onCleanup(() => nats.stop());
  const dataDir = path.join(tmp, "node");
  await mkdir(dataDir, { recursive: true });
  const client = await JadeClient.connect({ servers: nats.url, name: "jade-bench-obs", timeoutMs: 120_000 });
  onCleanup(() => client.close());

  const sink = await startOtlpSink();
  onCleanup(() => sink.close());
  const measurements: Measurement[] = [];
  for (let r = 1; r <= opts.rounds; r++) {
    // ABC CBA: whichever runs first or last in a round does not always belong to the same variant.
    for (const variant of r % 2 === 1 ? variants : [...variants].reverse()) {
      // The same node id and data directory: a restart loads its checkpoint, not the log.
      const node = await startNode("child", nats.url, dataDir, ["--node-id", "obs", "--http-port", "0", ...variantArgs(variant, sink.url)]);
      try {
        if (measurements.length === 0) {
          await client.createCollection({ name: collection, dimension: train.dimension, metric: "l2", shards: 1, index, snapshot });
          await waitServing(client, collection, 30_000);
          await ingest(client, train, { collection, batch: 1000, concurrency: 4, consistency: "log" });
        }
        await waitServing(client, collection, 120_000);
        measurements.push(await measure(client, node.httpUrl, variant, r, bodies));
      } finally {
        await node.stop();
      }
      const m = measurements.at(-1)!;
      log(`  round ${r} ${variant}: c=1 p50 ${fmt(m.p50Ms, 2)} ms p95 ${fmt(m.p95Ms, 2)} ms ${fmt(m.qpsC1)} q/s; c=${searchConcurrency} ${fmt(m.qpsC8)} q/s; ${m.scrapes} scrapes`);
    }
  }

  section("raw usearch, same data, this process");
  const raw = await rawUsearch(train, queries, "f32", groundTruth(train, queries), os.availableParallelism());
  kv("raw usearch", `c=1 p50 ${fmt(raw.latencies.p50, 3)} ms p95 ${fmt(raw.latencies.p95, 3)} ms, ${fmt(raw.qps)} q/s one at a time`);

  section("summary (mean over rounds)");
  const summary = variants.map((variant) => {
    const ms = measurements.filter((m) => m.variant === variant);
    return { variant, p50Ms: mean(ms.map((m) => m.p50Ms)), p95Ms: mean(ms.map((m) => m.p95Ms)), qpsC1: mean(ms.map((m) => m.qpsC1)), qpsC8: mean(ms.map((m) => m.qpsC8)) };
  });
  const [off, on, traced] = summary as [(typeof summary)[number], (typeof summary)[number], (typeof summary)[number]];
  const costOf = (v: (typeof summary)[number]) => ({ p95Pct: (v.p95Ms / off.p95Ms - 1) * 100, qpsC1Pct: (1 - v.qpsC1 / off.qpsC1) * 100, qpsC8Pct: (1 - v.qpsC8 / off.qpsC8) * 100 });
  const cost = costOf(on);
  const tracingCost = costOf(traced);
  table(
    ["variant", "p50 ms", "p95 ms", "QPS c=1", `QPS c=${searchConcurrency}`],
    [
      ...summary.map((s) => [s.variant, fmt(s.p50Ms, 3), fmt(s.p95Ms, 3), fmt(s.qpsC1), fmt(s.qpsC8)]),
      ["raw usearch", fmt(raw.latencies.p50, 3), fmt(raw.latencies.p95, 3), fmt(raw.qps), "—"],
    ],
  );
  kv("metrics cost", `p95 ${fmt(cost.p95Pct, 1)} %, QPS c=1 ${fmt(cost.qpsC1Pct, 1)} %, QPS c=${searchConcurrency} ${fmt(cost.qpsC8Pct, 1)} % (target < 5 %)`);
  kv("tracing cost", `p95 ${fmt(tracingCost.p95Pct, 1)} %, QPS c=1 ${fmt(tracingCost.qpsC1Pct, 1)} %, QPS c=${searchConcurrency} ${fmt(tracingCost.qpsC8Pct, 1)} % (metrics and every request traced; ${fmt(sink.requests)} OTLP posts, ${fmt(sink.bytes / 1e6, 1)} MB)`);
  const files = await writeResults("observability", startedAt, {
    startedAt: startedAt.toISOString(),
    machine: machineInfo(),
    dataset: { name: "fashion-mnist", n: train.count, queries: queries.count },
    scrapeIntervalMs,
    measurements,
    summary,
    cost: { p95Pct: round(cost.p95Pct, 2), qpsC1Pct: round(cost.qpsC1Pct, 2), qpsC8Pct: round(cost.qpsC8Pct, 2) },
    tracingCost: { p95Pct: round(tracingCost.p95Pct, 2), qpsC1Pct: round(tracingCost.qpsC1Pct, 2), qpsC8Pct: round(tracingCost.qpsC8Pct, 2) },
    otlp: { posts: sink.requests, bytes: sink.bytes },
    raw: { p50Ms: raw.latencies.p50, p95Ms: raw.latencies.p95, qps: raw.qps },
  });
  kv("results", files.join(", "));
}

function variantArgs(variant: Variant, otlpUrl: string): string[] {
  switch (variant) {
    case "metrics off":
      return ["--no-metrics"];
    case "metrics on":
      return [];
    case "tracing 100 %":
      return ["--otlp-endpoint", otlpUrl, "--trace-sample-ratio", "1"];
  }
}

/** An OTLP/HTTP endpoint that takes every export and keeps only counts (a collector's front door). */
async function startOtlpSink(): Promise<{ url: string; requests: number; bytes: number; close(): Promise<void> }> {
  const sink = { url: "", requests: 0, bytes: 0, close: () => new Promise<void>((r) => server.close(() => r())) };
  const server = createServer((req, res) => {
    req.on("data", (chunk: Buffer) => (sink.bytes += chunk.byteLength));
    req.on("end", () => {
      sink.requests++;
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  sink.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`;
  return sink;
}

async function measure(client: JadeClient, httpUrl: string | undefined, variant: Variant, roundNo: number, bodies: Uint8Array[]): Promise<Measurement> {
  let scrapes = 0;
  let scraping = variant !== "metrics off";
  const scraper = (async () => {
    while (scraping) {
      const res = await fetch(`${httpUrl}/metrics`);
      if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
      await res.text();
      scrapes++;
      await new Promise((r) => setTimeout(r, scrapeIntervalMs));
    }
  })();
  try {
    await searchApi(client, collection, bodies.slice(0, warmupQueries * 10), 1, "warm-up");
    const c1 = await searchApi(client, collection, bodies, 1, `${variant} c=1`);
    const c8 = await searchApi(client, collection, [...bodies, ...bodies, ...bodies], searchConcurrency, `${variant} c=${searchConcurrency}`);
    return { variant, round: roundNo, p50Ms: c1.latencies.p50, p95Ms: c1.latencies.p95, qpsC1: c1.qps, qpsC8: c8.qps, scrapes };
  } finally {
    scraping = false;
    await scraper;
  }
}
