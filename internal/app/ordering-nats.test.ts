// Issue 16 over the broker, end to end: two services, two databases, a real nats-server. The
// inventory fails every delivery while an order is placed and then cancelled, so its
// OrderCreated is in backoff (nak with delay) when the OrderCancelled arrives; once the
// inventory recovers, the two come back in whatever order their delays give. Whatever that
// order, the stock ends where it started (reserved, then given back), the order CANCELLED,
// every message applied once, nothing dead-lettered.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createApiClient } from '../client/api-client.ts';
import { setStock, stockOf } from '../inventory/stock.ts';
import { createTestDatabase, type TestDatabase } from '../testkit/database.ts';
import { eventually } from '../testkit/eventually.ts';
import { natsAvailable, skipUnlessNats, startTestNatsServer, type TestNatsServer } from '../testkit/nats.ts';
import { startTestServices, type TestServices } from '../testkit/services.ts';

let orderDb: TestDatabase;
let inventoryDb: TestDatabase;
let nats: TestNatsServer | undefined;
let services: TestServices | undefined;

describe('the forced race over NATS JetStream', () => {
  before(async () => {
    orderDb = await createTestDatabase(import.meta.filename);
    inventoryDb = await createTestDatabase(`${import.meta.filename}-inventory`);
    await setStock(inventoryDb.pool, { widget: 10 });
    if (!(await natsAvailable())) return;
    nats = await startTestNatsServer();
    // Short nak delays so the recovery is quick; plenty of attempts so none is dead-lettered.
    services = await startTestServices(orderDb, inventoryDb, nats.url, { retryBaseMs: 100, retryMaxMs: 400, maxAttempts: 20 });
  });
  after(async () => {
    await services?.close();
    await nats?.stop();
    await orderDb.drop();
    await inventoryDb.drop();
  });

  const rows = async (db: TestDatabase, sql: string, params: unknown[] = []) => (await db.pool.query(sql, params)).rows;

  it('an order cancelled while its OrderCreated backs off: stock back to 10, order CANCELLED, each event applied once', async (t) => {
    if (!services) return void (await skipUnlessNats(t));
    const client = createApiClient(services.orders.url);
    services.inventory.faults.setFailRate(1);
    const placed = await client.placeOrder({ productId: 'widget', quantity: 3 });
    assert.equal(placed.status, 201);
    const orderId = placed.order!.id;
    // The creation left the order service (published) and the inventory refused it at least once.
    await eventually('OrderCreated published', async () => (await rows(orderDb, 'SELECT 1 FROM outbox')).length === 0, 30_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const cancelled = await client.cancelOrder(orderId);
    assert.equal(cancelled.status, 200);
    assert.equal(cancelled.order!.status, 'CANCELLED');
    await eventually('OrderCancelled published', async () => (await rows(orderDb, 'SELECT 1 FROM outbox')).length === 0, 30_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    services.inventory.faults.setFailRate(0);

    await eventually('both events applied by the inventory', async () => (await rows(inventoryDb, 'SELECT last_seq FROM inbox_positions WHERE aggregate_id = $1', [orderId]))[0]?.last_seq === 2, 60_000);
    assert.equal(await stockOf(inventoryDb.pool, 'widget'), 10, 'reserved, then given back');
    assert.deepEqual(
      await rows(inventoryDb, 'SELECT outcome, released_at IS NOT NULL AS released FROM stock_answers WHERE order_id = $1', [orderId]),
      [{ outcome: 'reserved', released: true }],
    );
    assert.deepEqual(
      await rows(inventoryDb, `SELECT event_type, outcome FROM processed_messages WHERE aggregate_id = $1 ORDER BY aggregate_seq`, [orderId]),
      [{ event_type: 'OrderCreated', outcome: 'applied' }, { event_type: 'OrderCancelled', outcome: 'cancelled' }],
    );
    assert.deepEqual(await rows(inventoryDb, 'SELECT message_id FROM dead_letters'), []);
    // The order service: the StockReserved reply found the order CANCELLED and left it so.
    await eventually('the reply settled', async () => (await rows(orderDb, 'SELECT 1 FROM processed_messages')).length === 1, 30_000);
    assert.deepEqual(await rows(orderDb, 'SELECT status FROM orders WHERE id = $1', [orderId]), [{ status: 'CANCELLED' }]);
    assert.deepEqual(await rows(orderDb, 'SELECT message_id FROM dead_letters'), []);
    // Which way the race went this time (the outcome above must not depend on it).
    const metrics = await (await fetch(`${services.inventory.url}/metrics`)).text();
    t.diagnostic(metrics.split('\n').filter((line) => /^inventory_messages_handled_total\{/.test(line)).join('; '));
  });
});
