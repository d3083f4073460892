// The messaging spans on their own: a redelivery is marked on the span (attribute + event), on
// both the relay's side (attempts > 1) and the subscriber's (deliveryCount > 1); a failure is
// recorded; a consumer without a context starts its own trace, unlinked.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { SpanStatusCode } from '@opentelemetry/api';
import { createTestTracing } from '../testkit/tracing.ts';
import { traceIdOf, traceTag, tracesTag } from './context.ts';
import { tracePublish, traceHandler } from './messaging.ts';
import { createTracing, noTracing } from './tracing.ts';

const tracing = createTestTracing();
const { tracer } = tracing.service('test');
const destination = { system: 'in-process' as const, name: 'inventory' };
const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

describe('messaging spans', () => {
  after(() => tracing.shutdown());

  it('the relay marks a second attempt as a redelivery and passes its own context on', async () => {
    let sent: Record<string, string> = {};
    await tracePublish(tracer, { messageId: 'm-1', eventType: 'OrderCreated', headers: { traceparent, other: 'kept' }, attempts: 2, lastError: 'boom' }, destination, async (headers) => {
      sent = headers;
      return 'applied';
    });
    const span = tracing.spansOf('4bf92f3577b34da6a3ce929d0e0e4736').find((s) => s.name === 'publish inventory')!;
    assert.equal(span.attributes['outbox.delivery_count'], 2);
    assert.ok(span.events.some((e) => e.name === 'redelivery' && e.attributes?.['outbox.last_error'] === 'boom'));
    assert.equal(sent.other, 'kept');
    assert.ok(sent.traceparent!.includes(span.spanContext().spanId), 'the publish span is what the consumer continues');
  });

  it('a subscriber marks a redelivered message and records a failure', async () => {
    const handler = traceHandler(tracer, async () => { throw new Error('database down'); }, { operation: 'process', destination: () => destination });
    await assert.rejects(handler({ messageId: 'm-2', eventType: 'OrderCreated', aggregateId: 'a', payload: {}, headers: { traceparent }, deliveryCount: 3 }, 'Inventory-1'), /database down/);
    const span = tracing.spansOf('4bf92f3577b34da6a3ce929d0e0e4736').find((s) => s.attributes['messaging.message.id'] === 'm-2')!;
    assert.equal(span.attributes['outbox.redelivered'], true);
    assert.equal(span.attributes['outbox.delivery_count'], 3);
    assert.ok(span.events.some((e) => e.name === 'redelivery'));
    assert.equal(span.status.code, SpanStatusCode.ERROR);
  });

  it('a message without a context starts a new trace, with no link', async () => {
    let seen: Record<string, string> | undefined;
    const handler = traceHandler(tracer, async (message) => { seen = message.headers; return 'applied'; }, { operation: 'process', destination: () => destination });
    await handler({ messageId: 'm-3', eventType: 'OrderCreated', aggregateId: 'a', payload: {}, headers: { traceparent: 'nonsense' }, deliveryCount: 1 }, 'Inventory-1');
    const traceId = traceIdOf(seen)!;
    const span = tracing.spansOf(traceId).find((s) => s.attributes['messaging.message.id'] === 'm-3')!;
    assert.equal(span.parentSpanContext, undefined);
    assert.equal(span.links.length, 0);
  });

  it('with tracing off nothing is carried and nothing is tagged', async () => {
    let sent: Record<string, string> = {};
    await tracePublish(noTracing().tracer, { messageId: 'm-4', eventType: 'OrderCreated', attempts: 1 }, destination, async (headers) => {
      sent = headers;
      return 'applied';
    });
    assert.deepEqual(sent, {});
    assert.equal(traceTag(sent), '');
    assert.equal(traceTag({ traceparent }), ' (trace 4bf92f35)');
    assert.equal(tracesTag([{ traceparent }, undefined, { traceparent }]), ' (trace 4bf92f35)');
  });

  it('without an exporter nothing is recorded, but the trace id still travels in the headers', async () => {
    const idsOnly = createTracing({ otlpEndpoint: undefined, serviceName: undefined }, { defaultServiceName: 'test' });
    let sent: Record<string, string> = {};
    await tracePublish(idsOnly.tracer, { messageId: 'm-3', eventType: 'OrderCreated', headers: { traceparent }, attempts: 1, lastError: null }, destination, async (headers) => {
      sent = headers;
      return 'applied';
    });
    assert.equal(traceIdOf(sent), '4bf92f3577b34da6a3ce929d0e0e4736', 'the same trace goes on');
    const root = idsOnly.tracer.startSpan('root');
    assert.equal(root.isRecording(), false);
    assert.match(root.spanContext().traceId, /^[0-9a-f]{32}$/);
    assert.notEqual(root.spanContext().traceId, '0'.repeat(32), 'a real id, for the logs and GET /orders/:id');
    root.end();
    await idsOnly.shutdown();
  });
});
