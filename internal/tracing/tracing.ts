// One tracer provider per process, built from config (OTEL_EXPORTER_OTLP_ENDPOINT,
// OTEL_SERVICE_NAME). It is handed to whoever makes spans; nothing here registers a global
// provider or context manager: contexts are passed explicitly (see context.ts), so two
// services in one test process keep their own providers.
//
// Without an endpoint nothing would ever read a span, so none is recorded (AlwaysOff sampler):
// the spans are non-recording but still get real ids, so the log lines and GET /orders/:id show
// the trace id and the headers carry it on. No attributes, events or links are kept: the cost is
// the ids and the header. `npm run bench -- --only tracing` measures it against no tracing.
import { ProxyTracerProvider, type Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AlwaysOffSampler, BasicTracerProvider, BatchSpanProcessor, SimpleSpanProcessor, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';

export const TRACER_NAME = 'outbox-demo';

export interface TracingConfig {
  /** OTEL_EXPORTER_OTLP_ENDPOINT, e.g. http://127.0.0.1:4318 (traces go to <endpoint>/v1/traces). Unset: no export. */
  otlpEndpoint: string | undefined;
  /** OTEL_SERVICE_NAME; each service has its own default ("outbox-demo-orders", "outbox-demo-inventory"). */
  serviceName: string | undefined;
}

export interface Tracing {
  tracer: Tracer;
  /** "OTLP to http://…", "ids only (no exporter)", "off": for start-up banners. */
  describe: string;
  /** Exports what is still buffered, then stops. */
  shutdown(): Promise<void>;
}

export interface TracingOptions {
  /** The service's name when OTEL_SERVICE_NAME is unset. */
  defaultServiceName: string;
  /** Spans go here (synchronously, as each ends) instead of OTLP: tests pass an InMemorySpanExporter. */
  exporter?: SpanExporter;
}

export function createTracing(config: TracingConfig, options: TracingOptions): Tracing {
  const serviceName = config.serviceName ?? options.defaultServiceName;
  const processors: SpanProcessor[] = [];
  let describe = 'ids only (no exporter)';
  if (options.exporter) {
    processors.push(new SimpleSpanProcessor(options.exporter));
    describe = 'to a test exporter';
  } else if (config.otlpEndpoint) {
    const url = `${config.otlpEndpoint.replace(/\/+$/, '')}/v1/traces`;
    processors.push(new BatchSpanProcessor(new OTLPTraceExporter({ url })));
    describe = `OTLP to ${url} as "${serviceName}"`;
  }
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: serviceName }),
    spanProcessors: processors,
    ...(processors.length === 0 ? { sampler: new AlwaysOffSampler() } : {}),
  });
  return {
    tracer: provider.getTracer(TRACER_NAME),
    describe,
    shutdown: () => provider.shutdown(),
  };
}

/**
 * No tracing at all: the API's no-op tracer. Its spans have no ids, so nothing is carried on
 * and no trace id is logged. The benchmark's baseline; also what tools that trace nothing use.
 */
export function noTracing(): Tracing {
  return { tracer: new ProxyTracerProvider().getTracer(TRACER_NAME), describe: 'off', shutdown: async () => {} };
}
