/**
 * The OpenTelemetry SDK for a process: a tracer provider with an OTLP/HTTP exporter (or one
 * given, e.g. in-memory in tests), W3C trace-context propagation, and AsyncLocalStorage so
 * the active span follows a request through awaits. Global, like the SDK itself: one per
 * process, however many nodes it runs (spans carry `jade.node`).
 */
import { context, propagation, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, ParentBasedSampler, SimpleSpanProcessor, TraceIdRatioBasedSampler, TracerProvider, type SpanExporter } from "@opentelemetry/sdk-trace";
import { setTracingEnabled } from "./tracing.ts";
import { jadeVersion } from "./version.ts";

export interface TracingOptions {
  /** OTLP/HTTP traces endpoint, e.g. `http://collector:4318/v1/traces`. */
  otlpUrl?: string;
  /** Instead of OTLP: spans go here as each ends (tests). */
  exporter?: SpanExporter;
  /** Share of new traces recorded (0 – 1); a request that arrives traced keeps its caller's decision. */
  sampleRatio?: number;
}

export interface Tracing {
  /** Exports what is buffered and stops tracing. */
  shutdown(): Promise<void>;
}

export function startTracing(options: TracingOptions): Tracing {
  const ratio = options.sampleRatio ?? 1;
  if (!(ratio >= 0 && ratio <= 1)) throw new Error(`trace sample ratio must be within 0 – 1, got ${ratio}`);
  const exporter = options.exporter ?? new OTLPTraceExporter({ url: options.otlpUrl });
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ "service.name": "jadevectordb", "service.version": jadeVersion }),
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) }),
    // In-memory exporters see each span as it ends; OTLP gets batches off the request path.
    spanProcessors: [options.exporter ? new SimpleSpanProcessor({ exporter }) : new BatchSpanProcessor({ exporter })],
  });
  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  setTracingEnabled(true);
  return {
    async shutdown() {
      setTracingEnabled(false);
      await provider.shutdown();
      trace.disable();
      propagation.disable();
      context.disable();
    },
  };
}
