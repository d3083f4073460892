import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { isAppError } from '../errors/errors.ts';
import { createTestDatabase, type TestDatabase } from '../testkit/database.ts';
import { getOrder, placeOrder } from './orders.ts';

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase(import.meta.filename);
});
after(() => db.drop());

async function rowCounts() {
  const { rows } = await db.pool.query<{ orders: number; outbox: number }>(
    `SELECT (SELECT count(*)::int FROM orders) AS orders, (SELECT count(*)::int FROM outbox) AS outbox`,
  );
  return rows[0]!;
}

describe('placeOrder', () => {
  beforeEach(async () => {
    await db.pool.query('TRUNCATE idempotency_keys, dead_letters, orders, outbox');
  });

  it('writes the order and its OrderCreated event together', async () => {
    const { order, messageId } = await placeOrder(db.pool, { productId: 'widget', quantity: 2, userId: 'u-1' });
    assert.equal(order.status, 'PENDING');
    const { rows } = await db.pool.query(`SELECT message_id, event_type, aggregate_id, aggregate_seq, payload FROM outbox`);
    assert.deepEqual(rows, [
      {
        message_id: messageId,
        event_type: 'OrderCreated',
        aggregate_id: order.id,
        aggregate_seq: 1, // an order's first event
        payload: { orderId: order.id, productId: 'widget', quantity: 2, userId: 'u-1' },
      },
    ]);
    assert.equal((await getOrder(db.pool, order.id)).quantity, 2);
  });

  it('leaves zero rows when the outbox insert fails after the order insert', async () => {
    // Inject the failure between the two inserts: the order row is already written in this
    // transaction when the outbox insert blows up.
    await db.pool.query(`
      CREATE FUNCTION fail_outbox() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'injected outbox failure'; END $$;
      CREATE TRIGGER fail_outbox BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION fail_outbox();`);
    try {
      await assert.rejects(placeOrder(db.pool, { productId: 'widget', quantity: 1 }), /injected outbox failure/);
      assert.deepEqual(await rowCounts(), { orders: 0, outbox: 0 });
    } finally {
      await db.pool.query(`DROP TRIGGER fail_outbox ON outbox; DROP FUNCTION fail_outbox()`);
    }
  });

  it('rejects an unknown product as UNKNOWN_PRODUCT and writes nothing', async () => {
    await assert.rejects(placeOrder(db.pool, { productId: 'no-such-thing', quantity: 1 }), (error) =>
      isAppError(error, 'UNKNOWN_PRODUCT'),
    );
    assert.deepEqual(await rowCounts(), { orders: 0, outbox: 0 });
  });
});

describe('getOrder', () => {
  it('is NOT_FOUND for an unknown or malformed id', async () => {
    await assert.rejects(getOrder(db.pool, '00000000-0000-4000-8000-000000000000'), (e) => isAppError(e, 'NOT_FOUND'));
    await assert.rejects(getOrder(db.pool, 'not-a-uuid'), (e) => isAppError(e, 'NOT_FOUND'));
  });
});
