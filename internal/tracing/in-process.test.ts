// One order, one trace (TRANSPORT=in-process): the API span, the event's creation, the relay's
// publish and the consumer's process span, each the child of the one before, the consumer
// linked to the producer. A replayed copy shows up in the same trace as a skip; a client's
// traceparent is continued; a malformed one starts a new trace and is never an error. The
// log lines about the order carry its short trace id.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SpanKind } from '@opentelemetry/api';
import type { RunningServer } from '../app/wiring.ts';
import { findProcessed } from '../inventory/processed.ts';
import { createMemoryLogger } from '../log/logger.ts';
import { enqueueAgain } from '../outbox/outbox.ts';
import { createTestDatabase, type TestDatabase } from '../testkit/database.ts';
import { eventually } from '../testkit/eventually.ts';
import { startTestServer } from '../testkit/server.ts';
import { assertChildOf, assertLinkedTo, createTestTracing, type TestTracing } from '../testkit/tracing.ts';

let db: TestDatabase;
let server: RunningServer;
let tracing: TestTracing;
const logger = createMemoryLogger('info');

interface Placed {
  status: number;
  body: { id: string; status: string; traceId: string | null };
}

async function post(headers: Record<string, string> = {}): Promise<Placed> {
  const res = await fetch(`${server.url}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ productId: 'gadget', quantity: 1 }),
  });
  return { status: res.status, body: (await res.json()) as Placed['body'] };
}

async function settled(id: string): Promise<{ status: string; traceId: string | null }> {
  let order = { status: 'PENDING', traceId: null as string | null };
  await eventually(`order ${id} settled`, async () => {
    order = (await (await fetch(`${server.url}/orders/${id}`)).json()) as typeof order;
    return order.status !== 'PENDING';
  });
  return order;
}

describe('tracing, in-process transport', () => {
  before(async () => {
    db = await createTestDatabase(import.meta.filename);
    tracing = createTestTracing();
    server = await startTestServer(db, { logLevel: 'info' }, { tracing: tracing.service('orders') }, logger);
  });
  after(async () => {
    await server?.close();
    await tracing?.shutdown();
    await db?.drop();
  });

  it('one order is one trace: POST → create → publish → process, parented and linked', async () => {
    const placed = await post();
    assert.equal(placed.status, 201);
    const traceId = placed.body.traceId!;
    assert.match(traceId, /^[0-9a-f]{32}$/);
    const order = await settled(placed.body.id);
    assert.equal(order.status, 'CONFIRMED');
    assert.equal(order.traceId, traceId, 'GET /orders/:id answers with the trace id kept on the order');

    const api = await tracing.waitForSpan(traceId, 'POST /orders');
    const create = await tracing.waitForSpan(traceId, 'create OrderCreated');
    const publish = await tracing.waitForSpan(traceId, 'publish inventory');
    const process = await tracing.waitForSpan(traceId, 'process inventory');
    assert.equal(api.kind, SpanKind.SERVER);
    assert.equal(api.parentSpanContext, undefined, 'a request without traceparent starts a trace');
    assert.equal(api.attributes['http.response.status_code'], 201);
    assert.equal(create.kind, SpanKind.PRODUCER);
    assertChildOf(create, api);
    assert.equal(publish.kind, SpanKind.PRODUCER);
    assertChildOf(publish, create);
    assert.equal(process.kind, SpanKind.CONSUMER);
    assertChildOf(process, publish);
    assertLinkedTo(process, publish);

    const { rows } = await db.pool.query<{ message_id: string }>(`SELECT message_id FROM processed_messages WHERE payload->>'orderId' = $1`, [placed.body.id]);
    const messageId = rows[0]!.message_id;
    for (const span of [create, publish, process]) assert.equal(span.attributes['messaging.message.id'], messageId, span.name);
    for (const span of [publish, process]) {
      assert.equal(span.attributes['messaging.system'], 'in-process');
      assert.equal(span.attributes['messaging.destination.name'], 'inventory');
    }
    assert.equal(publish.attributes['messaging.operation.type'], 'send');
    assert.equal(process.attributes['messaging.operation.type'], 'process');
    assert.equal(process.attributes['outbox.outcome'], 'applied');
    assert.equal(process.attributes['outbox.duplicate'], undefined);

    // One grep of the short trace id shows the journey: the API, the worker, the inventory.
    const tag = `trace ${traceId.slice(0, 8)}`;
    await eventually('the worker logged the deletion', () => logger.records.some((r) => /Worker-/.test(r.speaker) && r.message.includes(tag)));
    const speakers = new Set(logger.records.filter((r) => r.message.includes(tag)).map((r) => r.speaker.replace(/\d+$/, 'N')));
    assert.deepEqual([...speakers].sort(), ['API', 'Inventory', 'Worker-N']);
  });

  it('a replayed copy appears in the original trace as a skipped duplicate', async () => {
    const placed = await post();
    const traceId = placed.body.traceId!;
    await settled(placed.body.id);
    const first = await tracing.waitForSpan(traceId, 'process inventory');
    const { rows } = await db.pool.query<{ message_id: string }>(`SELECT message_id FROM processed_messages WHERE payload->>'orderId' = $1`, [placed.body.id]);
    const [copy] = await findProcessed(db.pool, [rows[0]!.message_id]);
    // What `npm run replay` does while a server runs: the message goes back into the outbox.
    assert.ok(await enqueueAgain(db.pool, { ...copy!.copy!, aggregateId: placed.body.id }));
    const skip = await tracing.waitForSpan(traceId, 'process inventory', (s) => s.attributes['outbox.duplicate'] === true);
    assert.notEqual(skip.spanContext().spanId, first.spanContext().spanId);
    assert.equal(skip.attributes['outbox.outcome'], 'duplicate');
    assert.ok(skip.events.some((e) => e.name === 'duplicate skipped'));
    const republish = tracing.spansOf(traceId).find((s) => s.name === 'publish inventory' && s.spanContext().spanId === skip.parentSpanContext?.spanId);
    assert.ok(republish, 'the copy was published again within the same trace');
    assert.ok(logger.records.some((r) => r.message.startsWith('SKIPPING duplicate') && r.message.includes(`trace ${traceId.slice(0, 8)}`)));
  });

  it("a client's traceparent is continued", async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const parentSpanId = '00f067aa0ba902b7';
    const placed = await post({ traceparent: `00-${traceId}-${parentSpanId}-01`, tracestate: 'vendor=abc' });
    assert.equal(placed.status, 201);
    assert.equal(placed.body.traceId, traceId);
    const api = await tracing.waitForSpan(traceId, 'POST /orders');
    assert.equal(api.parentSpanContext?.spanId, parentSpanId);
    assert.equal(api.spanContext().traceState?.get('vendor'), 'abc');
    const process = await tracing.waitForSpan(traceId, 'process inventory');
    assert.equal(process.spanContext().traceId, traceId);
    const { rows } = await db.pool.query<{ trace_id: string }>(`SELECT trace_id FROM orders WHERE id = $1`, [placed.body.id]);
    assert.equal(rows[0]!.trace_id, traceId);
  });

  it('a malformed traceparent is ignored: a new trace, and the order is accepted', async () => {
    for (const bad of ['garbage', '00-00000000000000000000000000000000-00f067aa0ba902b7-01', '00-4bf92f3577b34da6a3ce929d0e0e4736-zz-01']) {
      const placed = await post({ traceparent: bad });
      assert.equal(placed.status, 201, bad);
      assert.match(placed.body.traceId!, /^[0-9a-f]{32}$/);
      assert.notEqual(placed.body.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
      const api = await tracing.waitForSpan(placed.body.traceId!, 'POST /orders');
      assert.equal(api.parentSpanContext, undefined, `${bad}: a new trace`);
      assert.equal((await settled(placed.body.id)).status, 'CONFIRMED');
    }
  });
});
