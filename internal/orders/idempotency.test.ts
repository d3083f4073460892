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

describe('Idempotency-Key after IDEMPOTENCY_KEY_TTL', () => {
  const age = (key: string, hours: number) =>
    db.pool.query(`UPDATE idempotency_keys SET created_at = now() - make_interval(hours => $2) WHERE key = $1`, [key, hours]);

  it('an expired key is reusable even before the janitor ran: same key, new body → a new order', async () => {
    const first = await placeOrder(db.pool, { productId: 'widget', quantity: 2 }, { idempotencyKey: 'k-ttl' });
    await age('k-ttl', 25); // the default TTL is 24 h
    const reused = await placeOrder(db.pool, { productId: 'gadget', quantity: 5 }, { idempotencyKey: 'k-ttl' });
    assert.equal(reused.replayed, false);
    assert.notEqual(reused.order.id, first.order.id);
    assert.equal(reused.order.productId, 'gadget');
    // The key now belongs to the new order: a retry of the new request gets it back.
    const retry = await placeOrder(db.pool, { productId: 'gadget', quantity: 5 }, { idempotencyKey: 'k-ttl' });
    assert.equal(retry.replayed, true);
    assert.equal(retry.order.id, reused.order.id);
    assert.deepEqual(await counts(), { orders: 2, events: 2, keys: 1 });
  });

  it('a key younger than the TTL still refuses a different body', async () => {
    await placeOrder(db.pool, { productId: 'widget', quantity: 2 }, { idempotencyKey: 'k-young' });
    await age('k-young', 23);
    await assert.rejects(
      placeOrder(db.pool, { productId: 'widget', quantity: 3 }, { idempotencyKey: 'k-young' }),
      (error) => isAppError(error, 'IDEMPOTENCY_KEY_REUSED'),
    );
  });

  it('the TTL is a setting: with 1 hour, a key 2 hours old is free again', async () => {
    await placeOrder(db.pool, { productId: 'widget', quantity: 2 }, { idempotencyKey: 'k-1h' });
    await age('k-1h', 2);
    const reused = await placeOrder(db.pool, { productId: 'widget', quantity: 3 }, { idempotencyKey: 'k-1h', idempotencyKeyTtlMs: 3_600_000 });
    assert.equal(reused.replayed, false);
  });

  it('ten concurrent requests reusing one expired key create one new order, and all ten get it', async () => {
    await placeOrder(db.pool, { productId: 'widget', quantity: 2 }, { idempotencyKey: 'k-race' });
    await age('k-race', 48);
    const input = { productId: 'doohickey', quantity: 1 };
    const results = await Promise.all(Array.from({ length: 10 }, () => placeOrder(db.pool, input, { idempotencyKey: 'k-race' })));
    assert.equal(new Set(results.map((r) => r.order.id)).size, 1);
    assert.equal(results.filter((r) => !r.replayed).length, 1);
    assert.deepEqual(await counts(), { orders: 2, events: 2, keys: 1 });
  });
});
