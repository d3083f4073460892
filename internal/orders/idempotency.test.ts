import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { isAppError } from '../errors/errors.ts';
import { createTestDatabase, type TestDatabase } from '../testkit/database.ts';
import { placeOrder } from './orders.ts';

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase(import.meta.filename);
});
after(() => db.drop());
beforeEach(() => db.pool.query('TRUNCATE idempotency_keys, orders, outbox'));

async function counts() {
  const { rows } = await db.pool.query(
    `SELECT (SELECT count(*)::int FROM orders) AS orders, (SELECT count(*)::int FROM outbox) AS events,
            (SELECT count(*)::int FROM idempotency_keys) AS keys`,
  );
  return rows[0] as { orders: number; events: number; keys: number };
}

describe('Idempotency-Key', () => {
  it('the same key and body returns the original order: no second order, no second event', async () => {
    const input = { productId: 'widget', quantity: 2, userId: 'bob' };
    const first = await placeOrder(db.pool, input, { idempotencyKey: 'k-1' });
    const again = await placeOrder(db.pool, input, { idempotencyKey: 'k-1' });
    assert.equal(first.replayed, false);
    assert.equal(again.replayed, true);
    assert.equal(again.order.id, first.order.id);
    assert.deepEqual(await counts(), { orders: 1, events: 1, keys: 1 });
  });

  it('the same key with a different body is refused and writes nothing', async () => {
    await placeOrder(db.pool, { productId: 'widget', quantity: 2 }, { idempotencyKey: 'k-2' });
    await assert.rejects(
      placeOrder(db.pool, { productId: 'widget', quantity: 3 }, { idempotencyKey: 'k-2' }),
      (error) => isAppError(error, 'IDEMPOTENCY_KEY_REUSED'),
    );
    assert.deepEqual(await counts(), { orders: 1, events: 1, keys: 1 });
  });

  it('ten concurrent requests with one key create one order, and all ten get it', async () => {
    const input = { productId: 'gadget', quantity: 1 };
    const results = await Promise.all(Array.from({ length: 10 }, () => placeOrder(db.pool, input, { idempotencyKey: 'k-3' })));
    assert.equal(new Set(results.map((r) => r.order.id)).size, 1);
    assert.equal(results.filter((r) => !r.replayed).length, 1);
    assert.deepEqual(await counts(), { orders: 1, events: 1, keys: 1 });
  });

  it('a failed order does not keep its key: the retry can succeed', async () => {
    await assert.rejects(placeOrder(db.pool, { productId: 'unobtainium', quantity: 1 }, { idempotencyKey: 'k-4' }));
    assert.deepEqual(await counts(), { orders: 0, events: 0, keys: 0 });
    const retry = await placeOrder(db.pool, { productId: 'unobtainium', quantity: 1 }, { idempotencyKey: 'k-4' }).catch((e) => e);
    assert.ok(isAppError(retry, 'UNKNOWN_PRODUCT'), 'the same bad request fails the same way, not as a key reuse');
  });
});
