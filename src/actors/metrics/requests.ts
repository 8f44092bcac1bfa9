/**
 * Request metrics, observed on the hot path by the NATS gateway and the HTTP server: a
 * count per operation and outcome, and a latency histogram per operation. Labels are
 * bounded: the operation (never the collection or an id) and the outcome's code.
 * Children are cached per label set: prom-client hashes the label values on every
 * `labels()` call otherwise.
 */
import type { Counter, Histogram } from "prom-client";
import type { ApiRoute } from "../../runtime/subjects.ts";

export type Transport = "nats" | "http";

/** The `op` label of an API route: `search`, `collections.create`, `admin.backup.create`, … */
export function opLabel(route: ApiRoute): string {
  switch (route.kind) {
    case "catalog":
      return `collections.${route.op}`;
    case "collection":
      return route.op;
    case "cluster":
      return "cluster.status";
    case "admin":
      return `admin.${route.op}`;
    case "unknown":
      return "unknown";
  }
}

/** Seconds: from a cached sub-millisecond read to a backup verify's minute. */
export const requestSecondsBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class RequestMetrics {
  readonly #count: Counter<"transport" | "op" | "code">;
  readonly #seconds: Histogram<"transport" | "op">;
  readonly #counts = new Map<string, Counter.Internal>();
  readonly #latencies = new Map<string, Histogram.Internal<"transport" | "op">>();
  readonly #throttled: Counter<"transport">;

  constructor(count: Counter<"transport" | "op" | "code">, seconds: Histogram<"transport" | "op">, throttled: Counter<"transport">) {
    this.#count = count;
    this.#seconds = seconds;
    this.#throttled = throttled;
  }

  /** A request refused because its API key or NATS tenant was over its rate. */
  throttled(transport: Transport): void {
    this.#throttled.labels(transport).inc();
  }

  /** One answered request: `code` is `ok` or the error's code. */
  observe(transport: Transport, route: ApiRoute, code: string, seconds: number): void {
    const op = opLabel(route);
    const key = `${transport} ${op}`;
    let latency = this.#latencies.get(key);
    if (!latency) this.#latencies.set(key, (latency = this.#seconds.labels(transport, op)));
    latency.observe(seconds);
    const countKey = `${key} ${code}`;
    let count = this.#counts.get(countKey);
    if (!count) this.#counts.set(countKey, (count = this.#count.labels(transport, op, code)));
    count.inc();
  }
}
