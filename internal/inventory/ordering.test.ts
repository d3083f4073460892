// Issue 16, the consumer's half: an order's events take effect in their order, whatever order
// they arrive in. OrderCancelled gives the reservation back once; an early one is deferred and
// leaves no trace; a stale one is a duplicate. Both consumer modes, and a property over random
// interleavings with duplicates, which the control consumer (no position check) fails.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import fc from 'fast-check';
import { isAppError } from '../errors/errors.ts';
import { createMemoryLogger, createSilentLogger } from '../log/logger.ts';
import { placeOrder } from '../orders/orders.ts';
import { ORDER_CANCELLED, ORDER_CREATED } from '../outbox/outbox.ts';
import { createTestDatabase, emptyPipelineTables, type TestDatabase } from '../testkit/database.ts';
import { createBatchConsumer } from './batch-consumer.ts';
import { createInventoryConsumer, type Delivery, type DeliveryResult, type InventoryConsumer } from './consumer.ts';
import { positionOf } from './positions.ts';
import { setStock, stockOf } from './stock.ts';

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase(import.meta.filename);
});
after(() => db.drop());
beforeEach(async () => {
  await emptyPipelineTables(db.pool);
  await setStock(db.pool, { widget: 100, gadget: 100 });
});

interface OrderEvents {
  orderId: string;
  productId: string;
  quantity: number;
  created: Delivery;
  cancelled: Delivery;
}

/** A placed order, its OrderCreated as the relay hands it over, and an OrderCancelled (sequence 2). */
async function order(quantity: number, productId = 'widget'): Promise<OrderEvents> {
  const { order: placed, messageId } = await placeOrder(db.pool, { productId, quantity });
  const payload = { orderId: placed.id, productId, quantity, userId: null };
  return {
    orderId: placed.id, productId, quantity,
    created: { messageId, eventType: ORDER_CREATED, payload },
    cancelled: { messageId: randomUUID(), eventType: ORDER_CANCELLED, payload, sequence: 2 },
  };
}

/** What the order service's cancel does to the order row (h1's API; here by hand). */
async function markCancelled(orderId: string): Promise<void> {
  await db.pool.query(`UPDATE orders SET status = 'CANCELLED', cancelled_at = now(), event_seq = 2 WHERE id = $1`, [orderId]);
}

async function rows(sql: string, params: unknown[] = []) {
  return (await db.pool.query(sql, params)).rows;
}

const outcome = (promise: Promise<DeliveryResult>) =>
  promise.then(
    (value) => value as string,
    (error: unknown) => (isAppError(error, 'DEFERRED') ? 'deferred' : isAppError(error, 'POISON_MESSAGE') ? 'poison' : `error: ${String(error)}`),
  );

describe('the consumer applies an order’s events in their order', () => {
  it('a cancellation gives the reservation back once; a duplicate cancellation is skipped', async () => {
    const logger = createMemoryLogger();
    const consumer = createInventoryConsumer({ pool: db.pool, logger });
    const o = await order(3);
    assert.equal(await consumer.handle(o.created, 'Worker-1'), 'applied');
    assert.equal(await stockOf(db.pool, 'widget'), 97);
    await markCancelled(o.orderId);
    assert.equal(await consumer.handle(o.cancelled, 'Worker-1'), 'released');
    assert.equal(await consumer.handle(o.cancelled, 'Worker-2'), 'duplicate');
    assert.equal(await stockOf(db.pool, 'widget'), 100);
    const [answer] = await rows(`SELECT outcome, product_id, quantity, released_at IS NOT NULL AS released FROM stock_answers WHERE order_id = $1`, [o.orderId]);
    assert.deepEqual(answer, { outcome: 'reserved', product_id: 'widget', quantity: 3, released: true });
    assert.equal(await positionOf(db.pool, o.orderId), 2);
    const copies = await rows(`SELECT event_type, aggregate_id, aggregate_seq FROM processed_messages ORDER BY aggregate_seq`);
    assert.deepEqual(copies, [
      { event_type: ORDER_CREATED, aggregate_id: o.orderId, aggregate_seq: 1 },
      { event_type: ORDER_CANCELLED, aggregate_id: o.orderId, aggregate_seq: 2 },
    ]);
    assert.ok(logger.records.some((r) => /cancelled: stock widget 97 → 100 \(reservation given back\)/.test(r.message)));
  });

  it('cancelling a rejected order gives nothing back', async () => {
    await setStock(db.pool, { widget: 2 });
    const consumer = createInventoryConsumer({ pool: db.pool, logger: createSilentLogger() });
    const o = await order(3);
    assert.equal(await consumer.handle(o.created, 'Worker-1'), 'rejected');
    assert.equal(await consumer.handle(o.cancelled, 'Worker-1'), 'cancelled');
    assert.equal(await stockOf(db.pool, 'widget'), 2);
    const [answer] = await rows(`SELECT outcome, released_at FROM stock_answers WHERE order_id = $1`, [o.orderId]);
    assert.deepEqual(answer, { outcome: 'rejected', released_at: null });
  });

  it('a cancellation before its creation is deferred and writes nothing; applied once the creation is', async () => {
    const consumer = createInventoryConsumer({ pool: db.pool, logger: createSilentLogger() });
    const o = await order(4);
    await markCancelled(o.orderId); // cancelled while PENDING: the creation arrives after
    await assert.rejects(consumer.handle(o.cancelled, 'Worker-1'), (e) => isAppError(e, 'DEFERRED') && /waiting for event 1 of order/.test(e.message));
    assert.deepEqual(await rows(`SELECT message_id FROM processed_messages`), [], 'no inbox row: it was not handled');
    assert.deepEqual(await rows(`SELECT aggregate_id FROM inbox_positions`), []);
    assert.deepEqual(await rows(`SELECT order_id FROM stock_answers`), []);
    assert.equal(await stockOf(db.pool, 'widget'), 100);

    // The creation of an order already CANCELLED: reserved all the same, the order stays CANCELLED.
    assert.equal(await consumer.handle(o.created, 'Worker-2'), 'applied');
    assert.deepEqual(await rows(`SELECT status FROM orders WHERE id = $1`, [o.orderId]), [{ status: 'CANCELLED' }]);
    assert.equal(await stockOf(db.pool, 'widget'), 96);
    // The deferred cancellation comes again and gives it back.
    assert.equal(await consumer.handle(o.cancelled, 'Worker-1'), 'released');
    assert.equal(await stockOf(db.pool, 'widget'), 100);
  });

  it('a stale event (its position already applied, by another message id) is skipped as a duplicate, never dead-lettered', async () => {
    const consumer = createInventoryConsumer({ pool: db.pool, logger: createSilentLogger() });
    const o = await order(1);
    await consumer.handle(o.created, 'Worker-1');
    await consumer.handle(o.cancelled, 'Worker-1');
    const copy = { ...o.cancelled, messageId: randomUUID() };
    // Each position has one message: a new id at an applied position can only be a copy. A
    // dead letter would park the order's later events behind an event that was applied.
    assert.equal(await consumer.handle(copy, 'Worker-1'), 'duplicate');
    assert.equal(await stockOf(db.pool, 'widget'), 100, 'given back once, not twice');
    assert.equal((await rows(`SELECT 1 FROM processed_messages WHERE message_id = $1`, [copy.messageId])).length, 0);
    assert.equal((await rows(`SELECT 1 FROM skipped_duplicates WHERE message_id = $1`, [copy.messageId])).length, 1);
  });

  it('an OrderCancelled without a position, or at position 1, is poison', async () => {
    const consumer = createInventoryConsumer({ pool: db.pool, logger: createSilentLogger() });
    const o = await order(1);
    const { sequence: _, ...unpositioned } = o.cancelled;
    await assert.rejects(consumer.handle(unpositioned, 'Worker-1'), (e) => isAppError(e, 'POISON_MESSAGE') && /without its position/.test(e.message));
    await assert.rejects(consumer.handle({ ...o.cancelled, sequence: 1 }, 'Worker-1'), (e) => isAppError(e, 'POISON_MESSAGE'));
    await assert.rejects(consumer.handle({ ...o.created, sequence: Number.NaN }, 'Worker-1'), (e) => isAppError(e, 'POISON_MESSAGE'));
  });

  it('the control consumer (ordering: false) applies an early cancellation, and the stock ends wrong', async () => {
    const control = createInventoryConsumer({ pool: db.pool, logger: createSilentLogger(), ordering: false });
    const o = await order(5);
    await markCancelled(o.orderId);
    assert.equal(await control.handle(o.cancelled, 'Worker-1'), 'cancelled', 'nothing to give back yet');
    assert.equal(await control.handle(o.created, 'Worker-1'), 'applied');
    assert.equal(await stockOf(db.pool, 'widget'), 95, 'a cancelled order keeps its stock: wrong');
  });
});

describe('the batch consumer applies them in order too', () => {
  it('an early cancellation in a batch is handed back DEFERRED, the rest commit in one transaction', async () => {
    const single = createInventoryConsumer({ pool: db.pool, logger: createSilentLogger() });
    let fallbacks = 0;
    const counting = { handle: (d: Delivery, by: string) => ((fallbacks += 1), single.handle(d, by)) };
    const batch = createBatchConsumer({ pool: db.pool, logger: createSilentLogger(), single: counting });
    const [a, b, c] = [await order(2), await order(3), await order(4, 'gadget')];
    await single.handle(a.created, 'Worker-1');
    await markCancelled(a.orderId);
    await markCancelled(b.orderId);
    // b's cancellation before its creation, and b's creation later in the same batch: the
    // cancellation is early (deferred); a's cancellation and c's creation apply, and b's
    // creation too, though b is CANCELLED already (it stays so, as one by one).
    const results = await batch.handleBatch([b.cancelled, a.cancelled, c.created, b.created], 'Worker-2');
    const words = results.map((r) => (r.status === 'fulfilled' ? r.value : isAppError(r.reason, 'DEFERRED') ? 'deferred' : String(r.reason)));
    assert.deepEqual(words, ['deferred', 'released', 'applied', 'applied']);
    assert.equal(fallbacks, 0, 'no fallback to one by one');
    assert.equal((await rows(`SELECT 1 FROM processed_messages WHERE message_id = $1`, [b.cancelled.messageId])).length, 0);
    assert.deepEqual(await rows(`SELECT status FROM orders WHERE id = $1`, [b.orderId]), [{ status: 'CANCELLED' }]);
    // Handed back, it comes again in a later batch.
    const again = await batch.handleBatch([b.cancelled], 'Worker-1');
    assert.deepEqual(again.map((r) => r.status === 'fulfilled' && r.value), ['released']);
    assert.equal(await stockOf(db.pool, 'widget'), 100);
    assert.equal(await stockOf(db.pool, 'gadget'), 96);
    const counts = await rows(`SELECT outcome, sum(n)::int AS n FROM consumer_counts GROUP BY outcome ORDER BY outcome`);
    // 3 creations and 2 cancellations, each once: a deferral leaves no count behind, and a
    // cancellation is not counted as a confirmation.
    assert.deepEqual(counts, [{ outcome: 'applied', n: 3 }, { outcome: 'cancelled', n: 2 }], 'a deferral leaves no count behind');
  });

  it('a creation and its cancellation in one batch: the cancellation waits for the creation to commit', async () => {
    const single = createInventoryConsumer({ pool: db.pool, logger: createSilentLogger() });
    const batch = createBatchConsumer({ pool: db.pool, logger: createSilentLogger(), single });
    const o = await order(6);
    const first = await batch.handleBatch([o.created, o.cancelled], 'Worker-1');
    assert.deepEqual(first.map((r) => (r.status === 'fulfilled' ? r.value : isAppError(r.reason, 'DEFERRED') && 'deferred')), ['applied', 'deferred']);
    const second = await batch.handleBatch([o.cancelled, o.created], 'Worker-1');
    assert.deepEqual(second.map((r) => r.status === 'fulfilled' && r.value), ['released', 'duplicate']);
    assert.equal(await stockOf(db.pool, 'widget'), 100);
  });
});

// ── The property ──────────────────────────────────────────────────────────────────────────
// Random orders, some cancelled; their events delivered in a random order with random
// duplicates, straight into the consumer; a deferred one goes to the back of the queue and
// comes again, as a broker would redeliver it. At the end: the stock taken is the sum of the
// reserved orders that were not cancelled, and every reserved-then-cancelled order was given
// back exactly once.

interface Scenario {
  orders: Array<{ quantity: number; cancelled: boolean }>;
  /** A permutation key per delivery, and how many extra copies each event gets. */
  shuffle: number[];
  copies: number[];
  batchSizes: number[];
}

const scenario = fc.record({
  orders: fc.array(fc.record({ quantity: fc.integer({ min: 1, max: 4 }), cancelled: fc.boolean() }), { minLength: 1, maxLength: 6 }),
  shuffle: fc.array(fc.integer(), { minLength: 12, maxLength: 12 }),
  copies: fc.array(fc.integer({ min: 0, max: 1 }), { minLength: 12, maxLength: 12 }),
  batchSizes: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 12, maxLength: 12 }),
});

const STOCK = 10; // small: some orders are rejected, so "reserved" depends on arrival order

type Handle = (deliveries: Delivery[]) => Promise<Array<'deferred' | 'ok'>>;

async function runScenario(s: Scenario, handle: Handle): Promise<string | undefined> {
  await emptyPipelineTables(db.pool);
  await setStock(db.pool, { widget: STOCK });
  const placed = [];
  for (const o of s.orders) {
    const events = await order(o.quantity);
    if (o.cancelled) await markCancelled(events.orderId);
    placed.push({ ...events, wasCancelled: o.cancelled });
  }
  const deliveries = placed.flatMap((o) => (o.wasCancelled ? [o.created, o.cancelled] : [o.created]));
  const withCopies = deliveries.flatMap((d, i) => Array.from({ length: 1 + (s.copies[i % s.copies.length] ?? 0) }, () => d));
  let queue = withCopies
    .map((d, i) => ({ d, key: s.shuffle[i % s.shuffle.length]! * 31 + i }))
    .sort((x, y) => x.key - y.key)
    .map((x) => x.d);
  for (let round = 0; queue.length > 0; round++) {
    if (round > 200) return 'did not drain';
    const size = s.batchSizes[round % s.batchSizes.length]!;
    const taken = queue.slice(0, size);
    queue = queue.slice(size);
    const results = await handle(taken);
    queue.push(...taken.filter((_, i) => results[i] === 'deferred'));
  }
  const answers = await rows(`SELECT order_id, outcome, released_at IS NOT NULL AS released FROM stock_answers`);
  const byOrder = new Map(answers.map((a) => [a.order_id as string, a]));
  let expectedTaken = 0;
  for (const o of placed) {
    const answer = byOrder.get(o.orderId);
    if (!answer) return `order ${o.orderId} never answered`;
    if (!o.wasCancelled && answer.outcome === 'reserved') expectedTaken += o.quantity;
    if (o.wasCancelled && answer.outcome === 'reserved' && !answer.released) return `cancelled order ${o.orderId} kept its reservation`;
  }
  const taken = STOCK - (await stockOf(db.pool, 'widget'))!;
  if (taken !== expectedTaken) return `stock taken ${taken}, expected ${expectedTaken}`;
  return undefined;
}

/** One delivery at a time through the per-message consumer. */
const perMessage = (consumer: InventoryConsumer): Handle => async (deliveries) => {
  const out: Array<'deferred' | 'ok'> = [];
  for (const d of deliveries) {
    const word = await outcome(consumer.handle(d, 'Worker-1'));
    if (word.startsWith('error') || word === 'poison') throw new Error(`unexpected ${word}`);
    out.push(word === 'deferred' ? 'deferred' : 'ok');
  }
  return out;
};

/** A random-sized batch at a time through the batch consumer. */
const batched = (consumer: InventoryConsumer, ordering: boolean): Handle => {
  const batch = createBatchConsumer({ pool: db.pool, logger: createSilentLogger(), single: consumer, ordering });
  return async (deliveries) =>
    (await batch.handleBatch(deliveries, 'Worker-1')).map((r) => {
      if (r.status === 'fulfilled') return 'ok';
      if (isAppError(r.reason, 'DEFERRED')) return 'deferred';
      throw new Error(`unexpected ${String(r.reason)}`);
    });
};

describe('property: random interleavings with duplicates end with the right stock', () => {
  const params = { numRuns: 30, seed: 16 };

  it('per-message consumer', async () => {
    const consumer = createInventoryConsumer({ pool: db.pool, logger: createSilentLogger() });
    await fc.assert(fc.asyncProperty(scenario, async (s) => assert.equal(await runScenario(s, perMessage(consumer)), undefined)), params);
  });

  it('batch consumer', async () => {
    const consumer = createInventoryConsumer({ pool: db.pool, logger: createSilentLogger() });
    await fc.assert(fc.asyncProperty(scenario, async (s) => assert.equal(await runScenario(s, batched(consumer, true)), undefined)), params);
  });

  it('the control consumer without the position check fails it, in both modes', async () => {
    const control = createInventoryConsumer({ pool: db.pool, logger: createSilentLogger(), ordering: false });
    for (const handle of [perMessage(control), batched(control, false)]) {
      const result = await fc.check(fc.asyncProperty(scenario, async (s) => assert.equal(await runScenario(s, handle), undefined)), params);
      assert.ok(result.failed, 'the control found no counterexample: the property would not catch a missing order check');
      assert.match(String(result.errorInstance), /kept its reservation|stock taken/);
    }
  });
});
