// Batched consumption must end in exactly the state one-by-one consumption ends in, for the
// same deliveries: duplicates, rejections for short stock and a poison message included.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { isAppError } from '../errors/errors.ts';
import { createSilentLogger } from '../log/logger.ts';
import { placeOrdersInBulk } from '../orders/orders.ts';
import { createOutboxStore, enqueueEvent, ORDER_CREATED } from '../outbox/outbox.ts';
import { Relay } from '../relay/relay.ts';
import { createTestDatabase, emptyPipelineTables, type TestDatabase } from '../testkit/database.ts';
import { createBatchConsumer } from './batch-consumer.ts';
import { createInventoryConsumer, type Delivery } from './consumer.ts';
import { withTransaction } from '../db/transaction.ts';
import { placeOrder } from '../orders/orders.ts';
import { lockStock, setStock } from './stock.ts';

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase(import.meta.filename);
});
after(() => db.drop());
beforeEach(() => emptyPipelineTables(db.pool));

const STOCK = { widget: 5, gadget: 25 };

/** Orders whose deliveries, in this order, confirm some and reject others for short stock. */
async function deliveriesWithDuplicatesAndPoison(): Promise<Delivery[]> {
  const orders = await placeOrdersInBulk(db.pool, [
    { productId: 'widget', quantity: 2 },
    { productId: 'widget', quantity: 2 },
    { productId: 'gadget', quantity: 10 },
    { productId: 'widget', quantity: 2 }, // rejected: 1 left
    { productId: 'widget', quantity: 1 },
    { productId: 'gadget', quantity: 20 }, // rejected: 15 left
    { productId: 'widget', quantity: 3 }, // rejected: 0 left
    { productId: 'gadget', quantity: 15 },
  ]);
  const d = orders.map(({ order, messageId }) => ({
    messageId,
    eventType: ORDER_CREATED,
    payload: { orderId: order.id, productId: order.productId, quantity: order.quantity, userId: null },
  }));
  const poison: Delivery = { messageId: crypto.randomUUID(), eventType: ORDER_CREATED, payload: { orderId: 'x', quantity: -1 } };
  // In batches of 4: the poison one's batch falls back to one by one; the others stay batched
  // and hold a duplicate inside the batch (d[4] twice) and duplicates of earlier batches.
  return [d[0]!, d[1]!, poison, d[2]!, d[3]!, d[1]!, d[4]!, d[4]!, d[5]!, d[6]!, d[2]!, d[7]!, d[5]!];
}

async function finalState() {
  const q = async (sql: string) => (await db.pool.query(sql)).rows;
  return {
    products: await q(`SELECT id, stock FROM products ORDER BY id`),
    orders: await q(`SELECT id, status, reject_reason FROM orders ORDER BY id`),
    processed: await q(`SELECT message_id, outcome, handled_by FROM processed_messages ORDER BY message_id`),
    skipped: await q(`SELECT message_id, handled_by, count(*)::int AS n FROM skipped_duplicates GROUP BY 1, 2 ORDER BY 1`),
  };
}

async function reset(): Promise<void> {
  await db.pool.query(`TRUNCATE processed_messages, skipped_duplicates, inbox_positions, stock_answers`);
  await db.pool.query(`UPDATE orders SET status = 'PENDING', reject_reason = NULL`);
  await setStock(db.pool, STOCK);
}

type Outcome = string;
const describeResult = (r: PromiseSettledResult<string>): Outcome =>
  r.status === 'fulfilled' ? r.value : isAppError(r.reason, 'POISON_MESSAGE') ? 'poison' : `error: ${r.reason}`;

describe('batched consumption', () => {
  it('ends in the same state as one-by-one, with duplicates, rejections and a poison message', async () => {
    const deliveries = await deliveriesWithDuplicatesAndPoison();
    const single = createInventoryConsumer({ pool: db.pool, logger: createSilentLogger() });
    let fallbacks = 0;
    const counting = { handle: (d: Delivery, by: string) => ((fallbacks += 1), single.handle(d, by)) };
    const batch = createBatchConsumer({ pool: db.pool, logger: createSilentLogger(), single: counting });

    await reset();
    const oneByOne: Outcome[] = [];
    for (const delivery of deliveries) {
      oneByOne.push(describeResult(await single.handle(delivery, 'Worker-1').then(
        (value) => ({ status: 'fulfilled', value }) as const,
        (reason: unknown) => ({ status: 'rejected', reason }) as const,
      )));
    }
    const expected = await finalState();

    await reset();
    const batched: Outcome[] = [];
    for (let i = 0; i < deliveries.length; i += 4) {
      batched.push(...(await batch.handleBatch(deliveries.slice(i, i + 4), 'Worker-1')).map(describeResult));
    }
    const actual = await finalState();

    assert.deepEqual(batched, oneByOne);
    assert.deepEqual(actual, expected);
    assert.equal(fallbacks, 4, 'only the batch with the poison message fell back to one by one');
    // And the state is the one the story says it is.
    assert.deepEqual(oneByOne, [
      'applied', 'applied', 'poison', 'applied', 'rejected', 'duplicate', 'applied', 'duplicate',
      'rejected', 'rejected', 'duplicate', 'applied', 'duplicate',
    ]);
    assert.deepEqual(expected.products.map((p) => [p.id, p.stock]).filter(([id]) => id in STOCK), [['gadget', 0], ['widget', 0]]);
    assert.equal(expected.skipped.reduce((n, s) => n + s.n, 0), 4);
  });

  it('a batch without trouble is one transaction and needs no fallback', async () => {
    await reset();
    const orders = await placeOrdersInBulk(db.pool, [
      { productId: 'gadget', quantity: 1 },
      { productId: 'widget', quantity: 1 },
      { productId: 'gadget', quantity: 2 },
    ]);
    const single = createInventoryConsumer({ pool: db.pool, logger: createSilentLogger() });
    let fallbacks = 0;
    const counting = { handle: (d: Delivery, by: string) => ((fallbacks += 1), single.handle(d, by)) };
    const batch = createBatchConsumer({ pool: db.pool, logger: createSilentLogger(), single: counting });
    const deliveries = orders.map(({ order, messageId }) => ({
      messageId,
      eventType: ORDER_CREATED,
      payload: { orderId: order.id, productId: order.productId, quantity: order.quantity, userId: null },
    }));
    const results = await batch.handleBatch(deliveries, 'Worker-2');
    assert.deepEqual(results.map(describeResult), ['applied', 'applied', 'applied']);
    assert.equal(fallbacks, 0);
    const { rows } = await db.pool.query(`SELECT id, stock FROM products WHERE id IN ('gadget', 'widget') ORDER BY id`);
    assert.deepEqual(rows, [{ id: 'gadget', stock: 22 }, { id: 'widget', stock: 4 }]);
  });

  it('falls back one by one only while there is lease left: the rest fail with a plain error, never as poison', async () => {
    await reset();
    const orders = await placeOrdersInBulk(db.pool, Array.from({ length: 3 }, () => ({ productId: 'gadget', quantity: 1 })));
    const poison: Delivery = { messageId: crypto.randomUUID(), eventType: ORDER_CREATED, payload: { orderId: 'x', quantity: -1 } };
    const deliveries = [
      poison,
      ...orders.map(({ order, messageId }) => ({
        messageId,
        eventType: ORDER_CREATED,
        payload: { orderId: order.id, productId: order.productId, quantity: order.quantity, userId: null },
      })),
    ];
    const single = createInventoryConsumer({ pool: db.pool, logger: createSilentLogger() });
    const batch = createBatchConsumer({ pool: db.pool, logger: createSilentLogger(), single });
    let answers = 3; // "yes" to the fallback and to its first two steps, then the lease runs out
    const results = await batch.handleBatch(deliveries, 'Worker-1', () => answers-- > 0);

    assert.deepEqual(results.slice(0, 2).map(describeResult), ['poison', 'applied']);
    for (const result of results.slice(2)) {
      assert.equal(result.status, 'rejected');
      assert.ok(!isAppError(result.status === 'rejected' && result.reason, 'POISON_MESSAGE'), 'not poison: never tried alone');
      assert.match(String((result as PromiseRejectedResult).reason), /rolled back .*not tried alone before the lease ran out/);
    }
    const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM processed_messages`);
    assert.equal(rows[0].n, 1, 'only the one that was tried alone was applied');

    const none = await batch.handleBatch(deliveries, 'Worker-1', () => false);
    assert.deepEqual(none.map((r) => r.status), ['rejected', 'rejected', 'rejected', 'rejected']);
    assert.ok(none.every((r) => r.status === 'rejected' && !isAppError(r.reason, 'POISON_MESSAGE')));
  });

  it('through the relay: the poison event alone is dead-lettered, the rest of its batch is delivered and deleted', async () => {
    await reset();
    await placeOrdersInBulk(db.pool, Array.from({ length: 5 }, () => ({ productId: 'gadget', quantity: 1 })));
    await enqueueEvent(db.pool, { messageId: crypto.randomUUID(), eventType: ORDER_CREATED, aggregateId: crypto.randomUUID(), payload: { nonsense: true } });
    const single = createInventoryConsumer({ pool: db.pool, logger: createSilentLogger() });
    const batch = createBatchConsumer({ pool: db.pool, logger: createSilentLogger(), single });
    const relay = new Relay(
      {
        store: createOutboxStore(db.pool, { batchSize: 10, leaseMs: 30_000 }),
        deliver: (event, worker) => single.handle(event, worker),
        deliverBatch: (events, worker, mayStart) => batch.handleBatch(events, worker, mayStart),
        logger: createSilentLogger(),
      },
      { workers: 1, pollIntervalMs: 20 },
    );

    assert.equal(await relay.runOnce('Worker-1'), 6, 'all six in one claim');
    assert.equal((await db.pool.query(`SELECT 1 FROM outbox`)).rowCount, 0);
    const dead = await db.pool.query(`SELECT payload, last_error FROM dead_letters`);
    assert.deepEqual(dead.rows, [{ payload: { nonsense: true }, last_error: 'poison message: malformed OrderCreated payload' }]);
    const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM processed_messages WHERE outcome = 'applied'`);
    assert.equal(rows[0].n, 5);
    assert.equal((await db.pool.query(`SELECT stock FROM products WHERE id = 'gadget'`)).rows[0].stock, 20);
  });

  it('a batch holding a product row does not hold up new orders for that product', async () => {
    await reset();
    // The foreign key check of orders.product_id takes FOR KEY SHARE on the product row: a
    // batch's lock must not conflict with it, or every POST /orders for that product waits
    // for the batch to commit.
    await withTransaction(db.pool, async (tx) => {
      await lockStock(tx, ['widget']);
      const placed = placeOrder(db.pool, { productId: 'widget', quantity: 1 }).then(() => 'placed' as const);
      let timer: NodeJS.Timeout | undefined;
      const blocked = new Promise<'blocked'>((resolve) => (timer = setTimeout(() => resolve('blocked'), 5_000)));
      const outcome = await Promise.race([placed, blocked]);
      clearTimeout(timer);
      assert.equal(outcome, 'placed', 'the order waited for the batch holding its product row');
    });
  });
});
