import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { isAppError } from '../errors/errors.ts';
import { createMemoryLogger, createSilentLogger } from '../log/logger.ts';
import { placeOrder } from '../orders/orders.ts';
import { createOutboxStore } from '../outbox/outbox.ts';
import { Relay } from '../relay/relay.ts';
import { createTestDatabase, emptyPipelineTables, type TestDatabase } from '../testkit/database.ts';
import { createInventoryConsumer, type Delivery } from './consumer.ts';
import { setStock, stockOf } from './stock.ts';

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase(import.meta.filename);
});
after(() => db.drop());
beforeEach(async () => {
  await emptyPipelineTables(db.pool);
  await setStock(db.pool, { widget: 100 });
});

/** Places an order and returns its OrderCreated delivery, as the relay would hand it over. */
async function orderCreated(quantity: number): Promise<Delivery & { orderId: string }> {
  const { order } = await placeOrder(db.pool, { productId: 'widget', quantity });
  const { rows } = await db.pool.query(`SELECT message_id, event_type, payload FROM outbox WHERE aggregate_id = $1`, [order.id]);
  return { messageId: rows[0].message_id, eventType: rows[0].event_type, payload: rows[0].payload, orderId: order.id };
}

describe('the Inventory consumer', () => {
  it('applies an order once: stock down, order CONFIRMED, message recorded', async () => {
    const logger = createMemoryLogger();
    const consumer = createInventoryConsumer({ pool: db.pool, logger });
    const delivery = await orderCreated(3);

    assert.equal(await consumer.handle(delivery, 'Worker-1'), 'applied');
    assert.equal(await consumer.handle(delivery, 'Worker-2'), 'duplicate');

    assert.equal(await stockOf(db.pool, 'widget'), 97);
    const order = await db.pool.query(`SELECT status FROM orders WHERE id = $1`, [delivery.orderId]);
    assert.equal(order.rows[0].status, 'CONFIRMED');
    const processed = await db.pool.query(`SELECT outcome, handled_by FROM processed_messages`);
    assert.deepEqual(processed.rows, [{ outcome: 'applied', handled_by: 'Worker-1' }]);
    assert.ok(
      logger.records.some((r) => r.speaker === 'Inventory' && r.message.startsWith(`SKIPPING duplicate message ${delivery.messageId}`)),
    );
  });

  it('the same message from 10 connections at once: stock decremented once, nine skips, no unique violation', async () => {
    const delivery = await orderCreated(5);
    // Ten consumers on ten separate pools, released together.
    const consumers = Array.from({ length: 10 }, () =>
      createInventoryConsumer({ pool: db.newPool(1), logger: createSilentLogger() }),
    );
    const results = await Promise.allSettled(consumers.map((c, i) => c.handle(delivery, `Worker-${i + 1}`)));

    const rejected = results.filter((r) => r.status === 'rejected');
    assert.deepEqual(rejected, [], 'a delivery failed (e.g. a unique violation escaped)');
    const outcomes = results.map((r) => (r as PromiseFulfilledResult<string>).value).sort();
    assert.deepEqual(outcomes, ['applied', ...Array(9).fill('duplicate')]);
    assert.equal(await stockOf(db.pool, 'widget'), 95);
    const skipped = await db.pool.query(`SELECT count(*)::int AS n FROM skipped_duplicates`);
    assert.equal(skipped.rows[0].n, 9);
  });

  it('rejects an order when stock is short, without retrying it', async () => {
    await setStock(db.pool, { widget: 2 });
    const consumer = createInventoryConsumer({ pool: db.pool, logger: createSilentLogger() });
    const delivery = await orderCreated(3);

    assert.equal(await consumer.handle(delivery, 'Worker-1'), 'rejected');
    assert.equal(await consumer.handle(delivery, 'Worker-1'), 'duplicate');
    assert.equal(await stockOf(db.pool, 'widget'), 2);
    const { rows } = await db.pool.query(
      `SELECT o.status, o.reject_reason, p.outcome FROM orders o, processed_messages p WHERE o.id = $1`,
      [delivery.orderId],
    );
    assert.equal(rows[0].status, 'REJECTED');
    assert.equal(rows[0].outcome, 'rejected');
    assert.match(rows[0].reject_reason, /insufficient stock/);
  });

  it('treats a malformed payload or unknown event type as poison and writes nothing', async () => {
    const consumer = createInventoryConsumer({ pool: db.pool, logger: createSilentLogger() });
    const base = await orderCreated(1);
    for (const bad of [
      { ...base, payload: { orderId: base.orderId } },
      { ...base, payload: 'nope' },
      { ...base, eventType: 'OrderShipped' },
    ]) {
      await assert.rejects(consumer.handle(bad, 'Worker-1'), (e) => isAppError(e, 'POISON_MESSAGE'));
    }
    const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM processed_messages`);
    assert.equal(rows[0].n, 0);
    assert.equal(await stockOf(db.pool, 'widget'), 100);
  });
});

describe('no overselling', () => {
  it('50 concurrent orders against stock 10 → 10 confirmed, 40 rejected, stock 0', async () => {
    await setStock(db.pool, { widget: 10 });
    await Promise.all(Array.from({ length: 50 }, () => placeOrder(db.pool, { productId: 'widget', quantity: 1 })));

    const consumer = createInventoryConsumer({ pool: db.pool, logger: createSilentLogger() });
    const relay = new Relay(
      {
        store: createOutboxStore(db.pool, { batchSize: 3, leaseMs: 30_000 }),
        deliver: (event, worker) => consumer.handle(event, worker),
        logger: createSilentLogger(),
      },
      { workers: 5, pollIntervalMs: 20 },
    );
    relay.start();
    try {
      const deadline = Date.now() + 30_000;
      while ((await db.pool.query('SELECT 1 FROM outbox')).rowCount! > 0) {
        assert.ok(Date.now() < deadline, 'outbox did not drain');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    } finally {
      await relay.stop();
    }

    const { rows } = await db.pool.query(`SELECT status, count(*)::int AS n FROM orders GROUP BY status ORDER BY status`);
    assert.deepEqual(rows, [
      { status: 'CONFIRMED', n: 10 },
      { status: 'REJECTED', n: 40 },
    ]);
    assert.equal(await stockOf(db.pool, 'widget'), 0);
  });
});
