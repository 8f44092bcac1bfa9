/**
 * Tracing (OpenTelemetry API only; the SDK is set up once per process by `tracing-sdk.ts`).
 * Off by default: every helper checks one boolean first, so a node that does not trace
 * pays a branch per call, not a no-op span. A request is one trace across nodes: the W3C
 * `traceparent` of the active span rides in NATS headers (replica reads, shard-log
 * entries) and HTTP headers, and the receiving side continues it.
 */
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span } from "@opentelemetry/api";
import type { MsgHdrs } from "@nats-io/nats-core";

let enabled = false;

/** Called by the SDK setup; nothing else turns tracing on. */
export function setTracingEnabled(on: boolean): void {
  enabled = on;
}

export function tracingEnabled(): boolean {
  return enabled;
}

export { SpanKind };

const tracerName = "jadevectordb";

function endWithError(span: Span, err: unknown): void {
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
  if (err instanceof Error) span.recordException(err);
}

/**
 * Runs `fn` in a span named `name`, a child of `parent` (default: the active context), when
 * tracing is on; otherwise just runs it. The span ends when `fn` settles, with an error
 * status if it throws (the error is rethrown untouched).
 */
export async function traced<T>(name: string, attributes: Attributes, fn: () => Promise<T>, options: { kind?: SpanKind; parent?: Context } = {}): Promise<T> {
  if (!enabled) return fn();
  return trace.getTracer(tracerName).startActiveSpan(name, { kind: options.kind ?? SpanKind.INTERNAL, attributes }, options.parent ?? context.active(), async (span) => {
    try {
      return await fn();
    } catch (err) {
      endWithError(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}

/** A span for something that starts now and ends later elsewhere (an entry's apply); undefined when not tracing. */
export function startSpan(name: string, attributes: Attributes, parent: Context): Span | undefined {
  if (!enabled) return undefined;
  return trace.getTracer(tracerName).startSpan(name, { attributes }, parent);
}

/** Writes the active span's `traceparent` (and `tracestate`) into NATS headers; false when there is none to carry. */
export function injectTrace(headers: MsgHdrs): boolean {
  if (!enabled || trace.getSpan(context.active()) === undefined) return false;
  propagation.inject(context.active(), headers, { set: (carrier, key, value) => carrier.set(key, value) });
  return true;
}

/** The context a message's headers carry (the root context when they carry none). */
export function extractTrace(headers: MsgHdrs | undefined): Context {
  if (!enabled || !headers) return ROOT_CONTEXT;
  return propagation.extract(ROOT_CONTEXT, headers, {
    get: (carrier, key) => carrier.get(key) || undefined,
    keys: (carrier) => carrier.keys(),
  });
}

/** The context an HTTP request's headers carry. */
export function extractHttpTrace(headers: Record<string, string | string[] | undefined>): Context {
  if (!enabled) return ROOT_CONTEXT;
  return propagation.extract(ROOT_CONTEXT, headers, {
    get: (carrier, key) => carrier[key.toLowerCase()],
    keys: (carrier) => Object.keys(carrier),
  });
}

/** Whether `ctx` holds a span to continue (a traced entry, a traced request). */
export function hasSpan(ctx: Context): boolean {
  return trace.getSpan(ctx) !== undefined;
}
