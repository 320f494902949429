/**
 * OpenTelemetry traces, exported over OTLP/HTTP (JSON) only when OTEL_EXPORTER_OTLP_ENDPOINT is
 * set. Off, nothing of the SDK is even loaded: the hooks in the dispatcher, the worker and the
 * agent loop ask getTracer(), get undefined and do nothing more (one module-variable read a call).
 *
 * The trace context of a call travels in its job data (`trace` in the contract, W3C traceparent),
 * so a worker's spans are children of the coordinator's call span whatever process runs them.
 */
import {
  type Attributes,
  type Context,
  context,
  ROOT_CONTEXT,
  type Span,
  SpanStatusCode,
  type Tracer,
  trace,
} from '@opentelemetry/api';

export type { Attributes, Span, Tracer } from '@opentelemetry/api';

/** What a job carries of its caller's trace (W3C Trace Context). */
export interface TraceCarrier {
  traceparent: string;
  tracestate?: string;
}

export const TRACEPARENT_PATTERN = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

let tracer: Tracer | undefined;

export interface Tracing {
  /** Exports what is buffered and stops; call it before the process exits. */
  shutdown(): Promise<void>;
}

/**
 * Starts the SDK: a tracer provider with a batching OTLP/HTTP exporter to `<endpoint>/v1/traces`
 * and AsyncLocalStorage context, so spans started inside another's callback become its children.
 */
export async function startTracing(options: {
  serviceName: string;
  /** The OTLP/HTTP base URL (OTEL_EXPORTER_OTLP_ENDPOINT), e.g. http://collector:4318. */
  endpoint: string;
  attributes?: Attributes;
}): Promise<Tracing> {
  const [
    { BasicTracerProvider, BatchSpanProcessor },
    { OTLPTraceExporter },
    { resourceFromAttributes },
    hooks,
  ] = await Promise.all([
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/context-async-hooks'),
  ]);
  const exporter = new OTLPTraceExporter({ url: `${options.endpoint.replace(/\/+$/, '')}/v1/traces` });
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': options.serviceName, ...options.attributes }),
    // Reads OTEL_BSP_SCHEDULE_DELAY and friends; default: an export every 5 s.
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
  const contextManager = new hooks.AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  trace.setGlobalTracerProvider(provider);
  tracer = provider.getTracer('toolq');
  return {
    shutdown: async () => {
      tracer = undefined;
      await provider.shutdown();
      contextManager.disable();
    },
  };
}

/** The tracer, or undefined when tracing is off (the hooks' fast path). */
export function getTracer(): Tracer | undefined {
  return tracer;
}

/** A span started now or at `startTime`, child of `parent` (default: the active span); undefined when off. */
export function startSpan(
  name: string,
  options: { startTime?: number; attributes?: Attributes },
  parent?: Span,
): Span | undefined {
  if (!tracer) return undefined;
  return tracer.startSpan(name, options, parent ? trace.setSpan(context.active(), parent) : context.active());
}

/** A span's context as a job carries it. */
export function carrierOf(span: Span): TraceCarrier {
  const { traceId, spanId, traceFlags, traceState } = span.spanContext();
  const carrier: TraceCarrier = {
    traceparent: `00-${traceId}-${spanId}-${traceFlags.toString(16).padStart(2, '0')}`,
  };
  const state = traceState?.serialize();
  if (state) carrier.tracestate = state;
  return carrier;
}

/** The remote parent a job carries, as a context for the worker's spans (root when absent or malformed). */
export function contextFrom(carrier: TraceCarrier | undefined): Context {
  const m =
    carrier && TRACEPARENT_PATTERN.test(carrier.traceparent) ? carrier.traceparent.split('-') : undefined;
  if (!m?.[1] || !m[2] || !m[3]) return ROOT_CONTEXT;
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: m[1],
    spanId: m[2],
    traceFlags: Number.parseInt(m[3], 16),
    isRemote: true,
  });
}

/** A child of `parent` (default: the active span) with the given times, ended at once. */
export function recordSpan(input: {
  name: string;
  start: number;
  end: number;
  attributes: Attributes;
  parent?: Context;
  error?: string;
}): void {
  if (!tracer) return;
  const span = tracer.startSpan(
    input.name,
    { startTime: input.start, attributes: input.attributes },
    input.parent ?? context.active(),
  );
  if (input.error) span.setStatus({ code: SpanStatusCode.ERROR, message: input.error });
  span.end(Math.max(input.start, input.end));
}

/**
 * Runs `fn` inside a span (active for everything `fn` starts); `after` adds attributes from the
 * result. Off, it is `fn()`.
 */
export async function inSpan<T>(
  name: string,
  attributes: Attributes,
  fn: () => Promise<T>,
  after?: (result: T) => Attributes,
): Promise<T> {
  if (!tracer) return fn();
  return tracer.startActiveSpan(name, { attributes }, async (span) => {
    try {
      const result = await fn();
      if (after) span.setAttributes(after(result));
      return result;
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      throw err;
    } finally {
      span.end();
    }
  });
}

/** Marks a span failed with a message (for outcomes that are not exceptions). */
export function markError(span: Span, message: string): void {
  span.setStatus({ code: SpanStatusCode.ERROR, message });
}
