// Spans kept in memory for tests: a tracer provider per service, all ending in one exporter,
// and helpers to pick one trace's spans and check how they hang together.
import assert from 'node:assert/strict';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { createTracing, type Tracing } from '../tracing/tracing.ts';
import { eventually } from './eventually.ts';

export interface TestTracing {
  exporter: InMemorySpanExporter;
  /** A tracing for one service (its resource's service.name), exporting to `exporter`. */
  service(name: string): Tracing;
  /** The finished spans of one trace. */
  spansOf(traceId: string): ReadableSpan[];
  /** Waits until the trace has a finished span `name` (matching `where`), returns it. */
  waitForSpan(traceId: string, name: string, where?: (span: ReadableSpan) => boolean): Promise<ReadableSpan>;
  shutdown(): Promise<void>;
}

export function createTestTracing(): TestTracing {
  const exporter = new InMemorySpanExporter();
  const services: Tracing[] = [];
  const spansOf = (traceId: string) => exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
  return {
    exporter,
    service(name) {
      const tracing = createTracing({ otlpEndpoint: undefined, serviceName: name }, { defaultServiceName: name, exporter });
      services.push(tracing);
      return tracing;
    },
    spansOf,
    async waitForSpan(traceId, name, where = () => true) {
      let found: ReadableSpan | undefined;
      await eventually(`span "${name}" in trace ${traceId}`, () => {
        found = spansOf(traceId).find((s) => s.name === name && where(s));
        return found !== undefined;
      });
      return found!;
    },
    async shutdown() {
      for (const tracing of services) await tracing.shutdown();
    },
  };
}

/** Asserts that `child`'s parent is `parent` (same trace, parent span id). */
export function assertChildOf(child: ReadableSpan, parent: ReadableSpan): void {
  assert.equal(child.spanContext().traceId, parent.spanContext().traceId, `${child.name} is in ${parent.name}'s trace`);
  assert.equal(child.parentSpanContext?.spanId, parent.spanContext().spanId, `${child.name}'s parent is ${parent.name}`);
}

/** Asserts that `span` links to `to` (a consumer's link to its producer). */
export function assertLinkedTo(span: ReadableSpan, to: ReadableSpan): void {
  assert.ok(span.links.some((l) => l.context.spanId === to.spanContext().spanId && l.context.traceId === to.spanContext().traceId), `${span.name} links to ${to.name}`);
}
