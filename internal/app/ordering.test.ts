// Issue 16, end to end in-process: the forced race. An order's OrderCreated fails its first
// delivery and backs off; the user cancels during that backoff. The real relay and the real
// Inventory consumer, in both consumer modes, must end with the stock the order started with
// (reserved, then given back). Each rule alone is enough on this path; without both (the
// test-only controls: a claim and a consumer that ignore order) the cancellation is applied
// first, gives nothing back, and the creation then keeps the stock: wrong stock.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { AppError } from '../errors/errors.ts';
import { createBatchConsumer } from '../inventory/batch-consumer.ts';
import { createInventoryConsumer } from '../inventory/consumer.ts';
import { setStock, stockOf } from '../inventory/stock.ts';
import { createSilentLogger } from '../log/logger.ts';
import { cancelOrder } from '../orders/cancel.ts';
import { getOrder, placeOrder } from '../orders/orders.ts';
import { purgeDeadLetters } from '../outbox/dead-letters.ts';
import { createOutboxStore, ORDER_CREATED, type OutboxEvent, type OutboxStore, type OutboxStoreOptions } from '../outbox/outbox.ts';
import { storeIgnoringOrder } from '../relay/ordering-control.ts';
import { Relay, type Deliver, type DeliverBatch } from '../relay/relay.ts';
import { createTestDatabase, emptyPipelineTables, type TestDatabase } from '../testkit/database.ts';

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase(import.meta.filename);
});
after(() => db.drop());
beforeEach(async () => {
  await emptyPipelineTables(db.pool);
  await setStock(db.pool, { widget: 10 });
});

// The backoff is ended by hand (endBackoff), never slept out: the race is forced, not timed.
const STORE: OutboxStoreOptions = { batchSize: 10, leaseMs: 30_000, retryBaseMs: 60_000, retryMaxMs: 60_000 };

type Mode = 'per-message' | 'batch';

/** The relay of a server in `mode`, whose first delivery of OrderCreated fails (a timeout). */
function relayFor(store: OutboxStore, mode: Mode, ordering: boolean) {
  const logger = createSilentLogger();
  const single = createInventoryConsumer({ pool: db.pool, logger, ordering });
  const batch = createBatchConsumer({ pool: db.pool, logger, single, ordering });
  let failedOnce = false;
  const failFirstCreation = (event: OutboxEvent) => {
    if (event.eventType !== ORDER_CREATED || failedOnce) return undefined;
    failedOnce = true;
    return new Error('inventory timed out (first delivery of OrderCreated)');
  };
  const toDelivery = (e: OutboxEvent) => ({ messageId: e.messageId, eventType: e.eventType, payload: e.payload, headers: e.headers, sequence: e.sequence });
  const deliver: Deliver = async (event, worker) => {
    const failure = failFirstCreation(event);
    if (failure) throw failure;
    return single.handle(toDelivery(event), worker);
  };
  const deliverBatch: DeliverBatch | undefined = mode === 'batch'
    ? async (events, worker, mayStart) => {
        const failing = events.map(failFirstCreation);
        const rest = events.filter((_, i) => !failing[i]);
        const results = await batch.handleBatch(rest.map(toDelivery), worker, mayStart);
        let next = 0;
        return events.map((_, i) => (failing[i] ? { status: 'rejected', reason: failing[i] } : results[next++]!));
      }
    : undefined;
  return new Relay({ store, deliver, deliverBatch, logger }, { workers: 1, pollIntervalMs: 20, maxAttempts: 5, deferRetryMs: 60_000 });
}

async function endBackoff(): Promise<void> {
  await db.pool.query(`UPDATE outbox SET available_at = now() WHERE available_at < 'infinity'`);
}

async function drain(relay: Relay): Promise<void> {
  for (let round = 0; round < 20; round++) {
    while ((await relay.runOnce('Worker-1')) > 0);
    if ((await db.pool.query('SELECT 1 FROM outbox')).rowCount === 0) return;
    await endBackoff();
  }
  assert.fail('the outbox did not drain');
}

/** Places an order for 3 widgets, fails its creation once, cancels it during the backoff, drains. */
async function race(relay: Relay) {
  const { order } = await placeOrder(db.pool, { productId: 'widget', quantity: 3 });
  assert.equal(await relay.runOnce('Worker-1'), 1, 'OrderCreated claimed');
  const cancelled = await cancelOrder(db.pool, order.id);
  assert.equal(cancelled.outcome, 'cancelled');
  // During the backoff: whatever the relay takes now is the cancellation, or nothing.
  await relay.runOnce('Worker-1');
  await drain(relay);
  const answer = (await db.pool.query(`SELECT outcome, released_at IS NOT NULL AS released FROM stock_answers WHERE order_id = $1`, [order.id])).rows;
  return { stock: await stockOf(db.pool, 'widget'), status: (await getOrder(db.pool, order.id)).status, answer };
}

for (const mode of ['per-message', 'batch'] as const) {
  describe(`the forced race, ${mode} consumer`, () => {
    it('both rules (the product): stock reserved, then given back — 10 again, order CANCELLED', async () => {
      const result = await race(relayFor(createOutboxStore(db.pool, STORE), mode, true));
      assert.deepEqual(result, { stock: 10, status: 'CANCELLED', answer: [{ outcome: 'reserved', released: true }] });
    });

    it('the claim rule alone (consumer ignoring order) holds on this path: the cancellation waits in the outbox', async () => {
      const result = await race(relayFor(createOutboxStore(db.pool, STORE), mode, false));
      assert.deepEqual(result, { stock: 10, status: 'CANCELLED', answer: [{ outcome: 'reserved', released: true }] });
    });

    it('the consumer rule alone (claim ignoring order) holds too: the early cancellation is deferred', async () => {
      const result = await race(relayFor(storeIgnoringOrder(db.pool, STORE), mode, true));
      assert.deepEqual(result, { stock: 10, status: 'CANCELLED', answer: [{ outcome: 'reserved', released: true }] });
    });

    it('control — neither rule: the cancellation is applied first and gives nothing back; 3 widgets stay taken', async () => {
      const result = await race(relayFor(storeIgnoringOrder(db.pool, STORE), mode, false));
      assert.deepEqual(result, { stock: 7, status: 'CANCELLED', answer: [{ outcome: 'reserved', released: false }] });
    });
  });
}

describe('an order whose creation was given up (dead letter purged), then cancelled', () => {
  it('the cancellation is applied at once (nothing to give back), never deferred forever', async () => {
    const logger = createSilentLogger();
    const consumer = createInventoryConsumer({ pool: db.pool, logger });
    const store = createOutboxStore(db.pool, STORE);
    let poison = true;
    const deliver: Deliver = async (event, worker) => {
      if (poison && event.eventType === ORDER_CREATED) throw new AppError('POISON_MESSAGE', 'cannot parse (test)');
      return consumer.handle({ messageId: event.messageId, eventType: event.eventType, payload: event.payload, headers: event.headers, sequence: event.sequence }, worker);
    };
    const relay = new Relay({ store, deliver, logger }, { workers: 1, pollIntervalMs: 20, maxAttempts: 5, deferRetryMs: 60_000 });
    const { order } = await placeOrder(db.pool, { productId: 'widget', quantity: 3 });
    await relay.runOnce('Worker-1'); // dead-lettered at once
    poison = false;
    await db.pool.query(`UPDATE dead_letters SET dead_at = now() - interval '40 days'`);
    assert.equal((await purgeDeadLetters(db.pool, 30 * 86_400_000, 100)).length, 1);
    assert.equal((await cancelOrder(db.pool, order.id)).outcome, 'cancelled');
    assert.equal(await relay.runOnce('Worker-1'), 1);
    assert.deepEqual((await db.pool.query('SELECT count(*)::int AS n FROM outbox')).rows, [{ n: 0 }], 'applied, not deferred');
    assert.equal(await stockOf(db.pool, 'widget'), 10, 'nothing was reserved, nothing given back');
    assert.deepEqual((await db.pool.query('SELECT last_seq FROM inbox_positions WHERE aggregate_id = $1', [order.id])).rows, [{ last_seq: 2 }]);
  });
});
