// POST /orders/:id/cancel: one transaction (order CANCELLED, event_seq + 1, OrderCancelled with
// that sequence), or nothing written at all: already cancelled, rejected, unknown, malformed,
// a repeated Idempotency-Key.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import { createSilentLogger } from '../log/logger.ts';
import { settleOrder } from '../orders/orders.ts';
import { createTestDatabase, emptyPipelineTables, type TestDatabase } from '../testkit/database.ts';
import { createHttpApp } from './app.ts';

let db: TestDatabase;
let server: Server;
let base: string;
let nudges = 0;

before(async () => {
  db = await createTestDatabase(import.meta.filename);
  const app = createHttpApp({ pool: db.pool, logger: createSilentLogger(), wakeup: { notifyInTransaction: false, committed: () => (nudges += 1) } });
  server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await db.drop();
});
beforeEach(() => emptyPipelineTables(db.pool));

async function place(key?: string): Promise<{ id: string }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (key) headers['idempotency-key'] = key;
  const res = await fetch(`${base}/orders`, { method: 'POST', headers, body: JSON.stringify({ productId: 'widget', quantity: 2, userId: 'u' }) });
  assert.equal(res.status, 201);
  return res.json() as Promise<{ id: string }>;
}

function cancel(id: string, options: { key?: string; body?: string; contentType?: string } = {}) {
  const headers: Record<string, string> = { 'content-type': options.contentType ?? 'application/json' };
  if (options.key) headers['idempotency-key'] = options.key;
  return fetch(`${base}/orders/${id}/cancel`, { method: 'POST', headers, body: options.body ?? '{}' });
}

/** Everything a cancellation may write, to compare before and after. */
async function snapshot() {
  const { rows } = await db.pool.query(
    `SELECT (SELECT coalesce(json_agg(json_build_object('status', status, 'seq', event_seq, 'cancelled', cancelled_at IS NOT NULL) ORDER BY id), '[]') FROM orders) AS orders,
            (SELECT coalesce(json_agg(json_build_object('type', event_type, 'seq', aggregate_seq) ORDER BY id), '[]') FROM outbox) AS outbox,
            (SELECT count(*)::int FROM idempotency_keys) AS keys`,
  );
  return rows[0] as { orders: unknown[]; outbox: unknown[]; keys: number };
}

describe('POST /orders/:id/cancel', () => {
  it('cancels a PENDING order: 200, CANCELLED, event_seq 2, OrderCancelled #2 in the outbox, workers nudged', async () => {
    const { id } = await place();
    const nudgesBefore = nudges;
    const res = await cancel(id);
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.status, 'CANCELLED');
    assert.ok(body.cancelledAt);
    assert.ok(nudges > nudgesBefore);

    const { rows } = await db.pool.query(
      `SELECT event_type, aggregate_id, aggregate_seq, payload FROM outbox ORDER BY id`,
    );
    assert.deepEqual(rows, [
      { event_type: 'OrderCreated', aggregate_id: id, aggregate_seq: 1, payload: { orderId: id, productId: 'widget', quantity: 2, userId: 'u' } },
      { event_type: 'OrderCancelled', aggregate_id: id, aggregate_seq: 2, payload: { orderId: id, productId: 'widget', quantity: 2, userId: 'u' } },
    ]);
    const order = await db.pool.query(`SELECT status, event_seq FROM orders WHERE id = $1`, [id]);
    assert.deepEqual(order.rows, [{ status: 'CANCELLED', event_seq: 2 }]);
    assert.equal((await (await fetch(`${base}/orders/${id}`)).json()).status, 'CANCELLED');
  });

  it('cancels a CONFIRMED order the same way', async () => {
    const { id } = await place();
    await db.pool.query('DELETE FROM outbox'); // as if delivered
    assert.ok(await settleOrder(db.pool, id, 'CONFIRMED'));
    const res = await cancel(id);
    assert.equal(res.status, 200);
    assert.deepEqual(await snapshot(), { orders: [{ status: 'CANCELLED', seq: 2, cancelled: true }], outbox: [{ type: 'OrderCancelled', seq: 2 }], keys: 0 });
  });

  it('answers 200 with the order for an order already CANCELLED, and writes nothing', async () => {
    const { id } = await place();
    assert.equal((await cancel(id)).status, 200);
    const before = await snapshot();
    const again = await cancel(id);
    assert.equal(again.status, 200);
    assert.equal((await again.json()).status, 'CANCELLED');
    assert.deepEqual(await snapshot(), before);
  });

  it('refuses a REJECTED order: 409 ORDER_NOT_CANCELLABLE, nothing written', async () => {
    const { id } = await place();
    await db.pool.query('DELETE FROM outbox');
    assert.ok(await settleOrder(db.pool, id, 'REJECTED', 'insufficient stock'));
    const before = await snapshot();
    const res = await cancel(id, { key: 'k-rejected' });
    assert.equal(res.status, 409);
    const body = await res.json();
    assert.equal(body.error.code, 'ORDER_NOT_CANCELLABLE');
    assert.match(body.error.message, /was rejected: there is nothing to cancel/);
    assert.deepEqual(await snapshot(), before);
  });

  it('404 for an unknown order, 400 for a malformed id, 400 for a body, 415 without JSON: nothing written', async () => {
    await place();
    const before = await snapshot();
    const unknown = await cancel(randomUUID(), { key: 'k-unknown' });
    assert.equal(unknown.status, 404);
    assert.equal((await unknown.json()).error.code, 'NOT_FOUND');
    const malformed = await cancel('not-a-uuid');
    assert.equal(malformed.status, 400);
    assert.equal((await malformed.json()).error.code, 'VALIDATION_FAILED');
    const { id } = (await db.pool.query<{ id: string }>('SELECT id FROM orders')).rows[0]!;
    const withBody = await cancel(id, { body: '{"reason":"x"}' });
    assert.equal(withBody.status, 400);
    const notJson = await cancel(id, { contentType: 'text/plain', body: '' });
    assert.equal(notJson.status, 415);
    const get = await fetch(`${base}/orders/${id}/cancel`);
    assert.equal(get.status, 405);
    assert.deepEqual(await snapshot(), before);
  });

  it('refuses a page from another site (Origin), like every POST', async () => {
    const { id } = await place();
    const before = await snapshot();
    const res = await fetch(`${base}/orders/${id}/cancel`, {
      method: 'POST', headers: { 'content-type': 'application/json', origin: 'https://evil.example' }, body: '{}',
    });
    assert.equal(res.status, 403);
    assert.deepEqual(await snapshot(), before);
  });

  it('honours Idempotency-Key: the same key again answers the same, nothing written; a create key reused for a cancel is 422', async () => {
    const { id } = await place('create-key');
    const first = await cancel(id, { key: 'cancel-key' });
    assert.equal(first.status, 200);
    const afterFirst = await snapshot();
    assert.equal(afterFirst.keys, 2);

    const repeat = await cancel(id, { key: 'cancel-key' });
    assert.equal(repeat.status, 200);
    assert.equal(repeat.headers.get('idempotent-replayed'), 'true');
    assert.equal((await repeat.json()).status, 'CANCELLED');
    assert.deepEqual(await snapshot(), afterFirst);

    const other = await place();
    const reusedCreate = await cancel(other.id, { key: 'create-key' });
    assert.equal(reusedCreate.status, 422);
    assert.equal((await reusedCreate.json()).error.code, 'IDEMPOTENCY_KEY_REUSED');
    const reusedCancel = await cancel(other.id, { key: 'cancel-key' }); // the key of another order's cancel
    assert.equal(reusedCancel.status, 422);
    const createWithCancelKey = await fetch(`${base}/orders`, {
      method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': 'cancel-key' }, body: JSON.stringify({ productId: 'widget', quantity: 2, userId: 'u' }),
    });
    assert.equal(createWithCancelKey.status, 422);
    const { rows } = await db.pool.query(`SELECT status FROM orders WHERE id = $1`, [other.id]);
    assert.deepEqual(rows, [{ status: 'PENDING' }]);
  });

  it('two concurrent cancels of one order: one event, one sequence 2', async () => {
    const { id } = await place();
    const answers = await Promise.all([cancel(id), cancel(id), cancel(id)]);
    assert.deepEqual(answers.map((r) => r.status), [200, 200, 200]);
    assert.deepEqual(await snapshot(), {
      orders: [{ status: 'CANCELLED', seq: 2, cancelled: true }],
      outbox: [{ type: 'OrderCreated', seq: 1 }, { type: 'OrderCancelled', seq: 2 }],
      keys: 0,
    });
  });
});
