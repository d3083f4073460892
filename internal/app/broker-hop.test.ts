// TRANSPORT=nats, the numbers: the order service's /stats, /metrics and dashboard feed show the
// broker hop (streams, and the two durable consumers' pending / ack-pending / redelivered) and
// the inventory service's stock; the inventory service's own /metrics counts what it handled.
// With the inventory service stopped, OrderCreated waits in the ORDERS stream (num_pending > 0)
// and drains when it is back; a stopped broker or inventory service shows as unreachable and
// never fails the page.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setStock, stockOf } from '../inventory/stock.ts';
import { createSilentLogger } from '../log/logger.ts';
import type { BrokerStats, ConsumerNumbers } from '../stats/broker.ts';
import type { Stats } from '../stats/stats.ts';
import { createTestDatabase, type TestDatabase } from '../testkit/database.ts';
import { eventually } from '../testkit/eventually.ts';
import { natsAvailable, skipUnlessNats, startTestNatsServer, type TestNatsServer } from '../testkit/nats.ts';
import { parsePrometheusText, sampleValue, type Family } from '../testkit/prometheus.ts';
import { natsTestConfig, startTestServices, type TestServices } from '../testkit/services.ts';
import { openSse } from '../testkit/sse.ts';
import { startInventoryService, type RunningInventoryService } from './inventory-service.ts';

let orderDb: TestDatabase;
let inventoryDb: TestDatabase;
let nats: TestNatsServer | undefined;
let services: TestServices | undefined;
/** The inventory service once this file restarted it (services.inventory is then closed). */
let restarted: RunningInventoryService | undefined;

async function post(url: string, body: unknown): Promise<{ id: string }> {
  const res = await fetch(`${url}/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal(res.status, 201);
  return (await res.json()) as { id: string };
}

async function stats(): Promise<Stats> {
  const res = await fetch(`${services!.orders.url}/stats?fresh=1`);
  assert.equal(res.status, 200);
  return (await res.json()) as Stats;
}

async function scrape(url: string): Promise<Map<string, Family>> {
  const res = await fetch(`${url}/metrics`);
  assert.equal(res.status, 200);
  return parsePrometheusText(await res.text());
}

function consumer(broker: BrokerStats | undefined, name: string): ConsumerNumbers {
  assert.ok(broker?.reachable, `broker: ${JSON.stringify(broker)}`);
  const found = broker.consumers.find((c) => c.name === name);
  assert.ok(found, `consumer ${name}: ${JSON.stringify(broker.consumers)}`);
  return found;
}

async function settled(ids: string[]): Promise<boolean> {
  const { rows } = await orderDb.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM orders WHERE id = ANY($1::uuid[]) AND status <> 'PENDING'`, [ids]);
  return rows[0]!.n === ids.length;
}

describe('the broker hop in /stats, /metrics and the dashboard (TRANSPORT=nats)', () => {
  before(async () => {
    orderDb = await createTestDatabase(import.meta.filename);
    inventoryDb = await createTestDatabase(`${import.meta.filename}-inventory`);
    if (!(await natsAvailable())) return;
    nats = await startTestNatsServer();
    services = await startTestServices(orderDb, inventoryDb, nats.url);
  });
  after(async () => {
    await nats?.restart().catch(() => undefined); // the last test stops it; closing needs it
    await services?.orders.close();
    await (restarted ?? services?.inventory)?.close();
    await nats?.stop();
    await orderDb.drop();
    await inventoryDb.drop();
  });

  it('orders flow: both streams hold them, both consumers drain to 0, the stock shown is the inventory service’s', async (t) => {
    if (!services) return void (await skipUnlessNats(t));
    const catalogBefore = await stockOf(orderDb.pool, 'gadget');
    const ids: string[] = [];
    for (let i = 0; i < 5; i += 1) ids.push((await post(services.orders.url, { productId: 'gadget', quantity: 2 })).id);
    await setStock(inventoryDb.pool, { gizmo: 1 });
    ids.push((await post(services.orders.url, { productId: 'gizmo', quantity: 5 })).id); // rejected: not enough stock
    await eventually('all settled', () => settled(ids));

    await eventually('both consumers drained', async () => {
      const s = await stats();
      const c1 = consumer(s.broker, 'inventory');
      const c2 = consumer(s.broker, 'order-service');
      return c1.pending === 0 && c1.ackPending === 0 && c2.pending === 0 && c2.ackPending === 0;
    });
    const s = await stats();
    assert.ok(s.broker?.reachable);
    const streams = Object.fromEntries(s.broker.streams.map((x) => [x.name, x.published]));
    assert.ok(streams.ORDERS! >= 6 && streams.INVENTORY! >= 6, JSON.stringify(streams));
    assert.equal(consumer(s.broker, 'inventory').stream, 'ORDERS');
    assert.equal(consumer(s.broker, 'order-service').stream, 'INVENTORY');

    // The stock is the inventory service's, labelled as such; the order database's is the catalog.
    const inventory = s.inventoryService;
    assert.ok(inventory?.reachable, JSON.stringify(inventory));
    assert.equal(inventory.from, `${services.inventory.url}/stats`);
    const gadget = inventory.products.find((p) => p.id === 'gadget')!;
    assert.equal(gadget.stock, await stockOf(inventoryDb.pool, 'gadget'));
    assert.equal(gadget.stock, catalogBefore! - 10);
    assert.equal(s.products.find((p) => p.id === 'gadget')!.stock, catalogBefore, 'the catalog does not move');
    assert.ok(inventory.consumed.processed.applied >= 5 && inventory.consumed.processed.rejected >= 1);
    // The reply inbox's totals: a StockRejected counts as REJECTED (it used to count as CONFIRMED).
    assert.ok(s.orders.CONFIRMED >= 5 && s.orders.REJECTED >= 1, JSON.stringify(s.orders));

    // The order service's /metrics: broker gauges, reply counters, broker acks; no stock of its own.
    const orders = await scrape(services.orders.url);
    assert.equal(sampleValue(orders, 'nats_broker_reachable'), 1);
    assert.equal(sampleValue(orders, 'inventory_service_reachable'), 1);
    assert.equal(sampleValue(orders, 'nats_consumer_pending_messages', { stream: 'ORDERS', consumer: 'inventory' }), 0);
    assert.equal(sampleValue(orders, 'nats_consumer_ack_pending_messages', { stream: 'INVENTORY', consumer: 'order-service' }), 0);
    assert.equal(sampleValue(orders, 'nats_consumer_redelivered_messages', { stream: 'ORDERS', consumer: 'inventory' }), 0);
    assert.ok(sampleValue(orders, 'nats_stream_messages', { stream: 'ORDERS' })! >= 6);
    assert.ok(sampleValue(orders, 'order_replies_settled_total', { outcome: 'confirmed' })! >= 5);
    assert.ok(sampleValue(orders, 'order_replies_settled_total', { outcome: 'rejected' })! >= 1);
    assert.equal(sampleValue(orders, 'order_replies_settled_total', { outcome: 'dead_lettered' }), 0);
    assert.ok(sampleValue(orders, 'outbox_broker_acks_total', { outcome: 'published' })! >= 6);
    assert.ok(sampleValue(orders, 'order_reply_handle_duration_seconds_count')! >= 6);
    assert.equal(orders.has('product_stock') && orders.get('product_stock')!.samples.length, 0, 'the stock is on the inventory service’s /metrics');
    assert.ok(!orders.has('inventory_messages_processed_total'), 'in-process consumer counters do not apply here');

    // The inventory service's /metrics: what its handlers did, its relay's publishes, its stock.
    const inv = await scrape(services.inventory.url);
    assert.ok(sampleValue(inv, 'inventory_messages_handled_total', { outcome: 'applied' })! >= 5);
    assert.ok(sampleValue(inv, 'inventory_messages_handled_total', { outcome: 'rejected' })! >= 1);
    assert.equal(sampleValue(inv, 'inventory_messages_handled_total', { outcome: 'dead_lettered' }), 0);
    assert.ok(sampleValue(inv, 'inventory_message_handle_duration_seconds_count')! >= 6);
    assert.ok(sampleValue(inv, 'outbox_broker_acks_total', { outcome: 'published' })! >= 6);
    assert.equal(sampleValue(inv, 'product_stock', { product: 'gadget' }), gadget.stock);
    assert.equal(sampleValue(inv, 'outbox_pending_events'), 0);
    assert.ok(sampleValue(inv, 'pipeline_messages_processed', { outcome: 'applied' })! >= 5);

    // The dashboard's feed carries the same numbers.
    const snapshot = await firstSnapshot(services.orders.url);
    assert.ok(snapshot.stats.broker?.reachable && snapshot.stats.inventoryService?.reachable, JSON.stringify(snapshot.stats.broker));
  });

  it('inventory service stopped: OrderCreated waits in ORDERS (num_pending), /stats says "inventory service unreachable"; back, it drains to 0', async (t) => {
    if (!services || !nats) return void (await skipUnlessNats(t));
    const port = services.inventory.port;
    await services.inventory.close();
    const ids: string[] = [];
    for (let i = 0; i < 3; i += 1) ids.push((await post(services.orders.url, { productId: 'widget', quantity: 1 })).id);
    await eventually('3 waiting in the broker', async () => consumer((await stats()).broker, 'inventory').pending === 3);
    const s = await stats();
    assert.ok(s.inventoryService && !s.inventoryService.reachable);
    assert.equal(s.inventoryService.error, 'inventory service unreachable');
    assert.equal(s.orders.PENDING, 3);
    const metrics = await scrape(services.orders.url);
    assert.equal(sampleValue(metrics, 'inventory_service_reachable'), 0);
    assert.equal(sampleValue(metrics, 'nats_consumer_pending_messages', { stream: 'ORDERS', consumer: 'inventory' }), 3);

    const config = natsTestConfig(orderDb, inventoryDb, nats.url);
    restarted = await startInventoryService({ ...config, broker: { ...config.broker, inventoryPort: port } }, createSilentLogger());
    await eventually('settled', () => settled(ids));
    await eventually('drained', async () => {
      const after = await stats();
      const c = consumer(after.broker, 'inventory');
      return c.pending === 0 && c.ackPending === 0 && after.inventoryService?.reachable === true;
    });
    const inv = await scrape(restarted.url);
    assert.equal(sampleValue(inv, 'inventory_messages_handled_total', { outcome: 'applied' }), 3, 'a new process counts from 0');
  });

  it('broker stopped: /stats, /metrics and the dashboard still answer, with "broker unreachable"', async (t) => {
    if (!services || !nats) return void (await skipUnlessNats(t));
    await nats.kill();
    await eventually('broker unreachable', async () => (await stats()).broker?.reachable === false);
    const s = await stats();
    assert.ok(s.broker && !s.broker.reachable);
    assert.equal(s.broker.error, 'broker unreachable');
    assert.ok(s.inventoryService?.reachable, 'the inventory service still answers over HTTP');
    const metrics = await scrape(services.orders.url);
    assert.equal(sampleValue(metrics, 'nats_broker_reachable'), 0);
    assert.equal(metrics.get('nats_consumer_pending_messages')?.samples.length ?? 0, 0, 'no stale broker numbers');
    const page = await fetch(`${services.orders.url}/`);
    assert.equal(page.status, 200);
    await page.body?.cancel();
    const snapshot = await firstSnapshot(services.orders.url);
    assert.equal(snapshot.stats.broker?.reachable, false);
  });
});

/** The first "snapshot" event of the dashboard's stream. */
async function firstSnapshot(url: string): Promise<{ stats: Stats }> {
  const stream = await openSse(`${url}/dashboard/events`);
  try {
    return (await stream.next((e) => e.event === 'snapshot', 30_000)).data as { stats: Stats };
  } finally {
    stream.close();
  }
}
