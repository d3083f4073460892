// One order, one trace across two services over NATS JetStream: the order service's API span,
// the event's creation and its publish to ORDERS; the inventory's process span (linked to the
// publish), its reply's publish to INVENTORY; the order service's settle span. A copy the
// relay publishes again is dropped by the broker, and one that gets past the broker (a new
// Nats-Msg-Id) is skipped by the inbox: both show up in the original trace.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { jetstream } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { SpanKind } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { findProcessed } from '../inventory/processed.ts';
import { createMemoryLogger, createSilentLogger } from '../log/logger.ts';
import { enqueueAgain } from '../outbox/outbox.ts';
import { connectNats } from '../transport/nats.ts';
import { createTestDatabase, type TestDatabase } from '../testkit/database.ts';
import { eventually } from '../testkit/eventually.ts';
import { natsAvailable, skipUnlessNats, startTestNatsServer, type TestNatsServer } from '../testkit/nats.ts';
import { startTestServices, type TestServices } from '../testkit/services.ts';
import { assertChildOf, assertLinkedTo, createTestTracing, type TestTracing } from '../testkit/tracing.ts';

let orderDb: TestDatabase;
let inventoryDb: TestDatabase;
let nats: TestNatsServer | undefined;
let services: TestServices | undefined;
let tracing: TestTracing;
const logger = createMemoryLogger('info');

async function post(headers: Record<string, string> = {}) {
  const res = await fetch(`${services!.orders.url}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ productId: 'gadget', quantity: 1 }),
  });
  return { status: res.status, body: (await res.json()) as { id: string; traceId: string | null } };
}

async function settled(id: string): Promise<{ status: string; traceId: string | null }> {
  let order = { status: 'PENDING', traceId: null as string | null };
  await eventually(`order ${id} settled`, async () => {
    order = (await (await fetch(`${services!.orders.url}/orders/${id}`)).json()) as typeof order;
    return order.status !== 'PENDING';
  });
  return order;
}

const serviceOf = (span: ReadableSpan) => span.resource.attributes['service.name'];

describe('tracing, NATS transport (two services)', () => {
  before(async () => {
    orderDb = await createTestDatabase(import.meta.filename);
    inventoryDb = await createTestDatabase(`${import.meta.filename}-inventory`);
    tracing = createTestTracing();
    if (!(await natsAvailable())) return;
    nats = await startTestNatsServer();
    services = await startTestServices(orderDb, inventoryDb, nats.url, { logLevel: 'info' }, logger, {
      orders: tracing.service('orders'),
      inventory: tracing.service('inventory'),
    });
  });
  after(async () => {
    await services?.close();
    await tracing.shutdown();
    await nats?.stop();
    await orderDb.drop();
    await inventoryDb.drop();
  });

  it('one order is one trace through both services: API → create → publish → process → reply publish → settle', async (t) => {
    if (!services) return void (await skipUnlessNats(t));
    const placed = await post();
    assert.equal(placed.status, 201);
    const traceId = placed.body.traceId!;
    const order = await settled(placed.body.id);
    assert.equal(order.status, 'CONFIRMED');
    assert.equal(order.traceId, traceId);

    const api = await tracing.waitForSpan(traceId, 'POST /orders');
    const create = await tracing.waitForSpan(traceId, 'create OrderCreated');
    const publish = await tracing.waitForSpan(traceId, 'publish orders.created');
    const process = await tracing.waitForSpan(traceId, 'process orders.created');
    const reply = await tracing.waitForSpan(traceId, 'publish inventory.stock-reserved');
    const settle = await tracing.waitForSpan(traceId, 'settle inventory.stock-reserved');
    assert.equal(api.parentSpanContext, undefined);
    assertChildOf(create, api);
    assertChildOf(publish, create);
    assertChildOf(process, publish);
    assertLinkedTo(process, publish);
    assertChildOf(reply, process);
    assertChildOf(settle, reply);
    assertLinkedTo(settle, reply);
    assert.deepEqual([api, create, publish, process, reply, settle].map(serviceOf), ['orders', 'orders', 'orders', 'inventory', 'inventory', 'orders']);
    assert.deepEqual([publish, process, reply, settle].map((s) => s.kind), [SpanKind.PRODUCER, SpanKind.CONSUMER, SpanKind.PRODUCER, SpanKind.CONSUMER]);
    for (const span of [publish, process, reply, settle]) assert.equal(span.attributes['messaging.system'], 'nats', span.name);
    assert.equal(process.attributes['messaging.destination.name'], 'orders.created');
    assert.equal(settle.attributes['messaging.destination.name'], 'inventory.stock-reserved');
    assert.equal(publish.attributes['outbox.outcome'], 'published');
    assert.equal(process.attributes['messaging.message.id'], publish.attributes['messaging.message.id']);
    assert.equal(settle.attributes['messaging.message.id'], reply.attributes['messaging.message.id']);

    // Every service's lines about this order carry the same short trace id.
    const tag = `trace ${traceId.slice(0, 8)}`;
    await eventually('the reply handler logged the settlement', () => logger.records.some((r) => r.speaker.startsWith('Replies-') && r.message.includes(tag)));
    await eventually('both relays logged their deletions', () => {
      const speakers = new Set(logger.records.filter((r) => r.message.includes(tag)).map((r) => r.speaker.replace(/\d+$/, 'N')));
      return ['API', 'Worker-N', 'Inventory', 'inventory/Worker-N', 'Replies-N'].every((s) => speakers.has(s));
    });
  });

  it('copies published again show up in the original trace: dropped by the broker, skipped by the inbox', async (t) => {
    if (!services) return void (await skipUnlessNats(t));
    const placed = await post();
    const traceId = placed.body.traceId!;
    await settled(placed.body.id);
    await tracing.waitForSpan(traceId, 'settle inventory.stock-reserved');
    const { rows } = await inventoryDb.pool.query<{ message_id: string }>(`SELECT message_id FROM processed_messages WHERE payload->>'orderId' = $1`, [placed.body.id]);
    const [processed] = await findProcessed(inventoryDb.pool, [rows[0]!.message_id]);
    const copy = processed!.copy!;
    assert.ok(copy.headers?.traceparent, 'the inbox kept the trace context it arrived with');

    // The order service's relay publishes it again (a replay): same Nats-Msg-Id, the broker drops it.
    assert.ok(await enqueueAgain(orderDb.pool, { ...copy, aggregateId: placed.body.id }));
    const dropped = await tracing.waitForSpan(traceId, 'publish orders.created', (s) => s.attributes['outbox.duplicate'] === true);
    assert.equal(dropped.attributes['outbox.outcome'], 'duplicate');
    assert.ok(dropped.events.some((e) => e.name === 'duplicate skipped'));

    // Past the broker's window (here: a new Nats-Msg-Id), the inventory's inbox skips it.
    const nc = await connectNats(nats!.url, 'test-republisher', createSilentLogger());
    try {
      const h = natsHeaders();
      h.set('Outbox-Message-Id', copy.messageId);
      h.set('Event-Type', copy.eventType);
      h.set('Aggregate-Id', placed.body.id);
      for (const [key, value] of Object.entries(copy.headers ?? {})) h.set(key, value);
      await jetstream(nc).publish('orders.created', JSON.stringify(copy.payload), { msgID: randomUUID(), headers: h });
    } finally {
      await nc.close();
    }
    const skip = await tracing.waitForSpan(traceId, 'process orders.created', (s) => s.attributes['outbox.duplicate'] === true);
    assert.equal(skip.attributes['outbox.outcome'], 'duplicate');
    assert.ok(skip.events.some((e) => e.name === 'duplicate skipped'));
    assert.equal(serviceOf(skip), 'inventory');
  });

  it("a client's traceparent is continued into the other service; a malformed one starts a new trace", async (t) => {
    if (!services) return void (await skipUnlessNats(t));
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    const placed = await post({ traceparent: `00-${traceId}-b7ad6b7169203331-01` });
    assert.equal(placed.body.traceId, traceId);
    await settled(placed.body.id);
    const settle = await tracing.waitForSpan(traceId, 'settle inventory.stock-reserved');
    assert.equal(settle.spanContext().traceId, traceId);

    const bad = await post({ traceparent: '00-0af7651916cd43dd8448eb211c80319c-xx-01' });
    assert.equal(bad.status, 201);
    assert.notEqual(bad.body.traceId, traceId);
    assert.equal((await settled(bad.body.id)).status, 'CONFIRMED');
    const api = await tracing.waitForSpan(bad.body.traceId!, 'POST /orders');
    assert.equal(api.parentSpanContext, undefined);
  });
});
