import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { RunningServer } from '../app/wiring.ts';
import { createApiClient, ServerUnreachableError } from '../client/api-client.ts';
import { setStock } from '../inventory/stock.ts';
import { createTestDatabase, emptyPipelineTables, type TestDatabase } from '../testkit/database.ts';
import { freePort } from '../testkit/ports.ts';
import { startTestServer } from '../testkit/server.ts';
import { latencySummary, runStressTest, type StressOptions } from './stress.ts';

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase(import.meta.filename);
});
after(() => db.drop());
beforeEach(async () => {
  await emptyPipelineTables(db.pool);
  await setStock(db.pool, { widget: 100_000, gadget: 100_000, gizmo: 100_000, doohickey: 100_000 });
});

function serve(workers: number): Promise<RunningServer> {
  return startTestServer(db, { workers });
}

const options = (overrides: Partial<StressOptions> = {}): StressOptions => ({
  orders: 50,
  concurrency: 50,
  quantity: 1,
  productIds: [],
  wait: true,
  waitTimeoutMs: 30_000,
  userId: 'stress-test',
  ...overrides,
});

describe('the stress test against a running server', () => {
  it('50 concurrent orders: all accepted, drained, shared by the workers, invariant holds', async () => {
    const server = await serve(5);
    try {
      const result = await runStressTest(options(), { client: createApiClient(server.url) });
      assert.equal(result.accepted, 50);
      assert.equal(result.failed, 0);
      assert.ok(result.drain.drained);
      assert.equal(result.drain.confirmed, 50);
      assert.equal(Object.values(result.deliveriesByWorker).reduce((a, b) => a + b, 0), 50);
      assert.ok(Object.keys(result.deliveriesByWorker).length > 1, 'more than one worker delivered');
      assert.equal(result.duplicatesSkipped, 0);
      assert.ok(result.invariant.holds, result.invariant.problems.join('; '));
      assert.ok(result.ok);
      // And the database agrees.
      const { rows } = await db.pool.query(
        `SELECT (SELECT count(*)::int FROM orders WHERE user_id = 'stress-test' AND status = 'CONFIRMED') AS confirmed,
                (SELECT count(*)::int FROM outbox) AS outbox,
                (SELECT count(*)::int FROM processed_messages) AS processed,
                (SELECT sum(100000 - stock)::int FROM products) AS taken`,
      );
      assert.deepEqual(rows[0], { confirmed: 50, outbox: 0, processed: 50, taken: 50 });
    } finally {
      await server.close();
    }
  });

  it('--cancel-ratio 0.4: 20 of 50 orders cancelled (half racing their OrderCreated), stock moved only by the CONFIRMED ones', async () => {
    const server = await serve(5);
    try {
      const result = await runStressTest(options({ cancelRatio: 0.4 }), { client: createApiClient(server.url) });
      assert.equal(result.accepted, 50);
      assert.deepEqual(result.cancellations, { requested: 20, early: 10, afterSettling: 10, notCancellable: 0, failed: 0 });
      assert.ok(result.drain.drained);
      assert.equal(result.drain.cancelled, 20);
      assert.equal(result.drain.confirmed, 30);
      assert.ok(result.invariant.holds, result.invariant.problems.join('; '));
      assert.ok(result.ok);
      // The database: every cancellation applied once, after its order's creation, and the
      // stock taken is exactly the CONFIRMED orders' (each cancelled one reserved, then gave back).
      const { rows } = await db.pool.query(
        `SELECT (SELECT count(*)::int FROM orders WHERE user_id = 'stress-test' AND status = 'CANCELLED') AS cancelled,
                (SELECT count(*)::int FROM inbox_positions WHERE last_seq = 2) AS cancels_applied,
                (SELECT count(*)::int FROM stock_answers WHERE released_at IS NOT NULL) AS released,
                (SELECT count(*)::int FROM outbox) AS outbox,
                (SELECT count(*)::int FROM dead_letters) AS dead,
                (SELECT sum(100000 - stock)::int FROM products) AS taken`,
      );
      assert.deepEqual(rows[0], { cancelled: 20, cancels_applied: 20, released: 20, outbox: 0, dead: 0, taken: 30 });
    } finally {
      await server.close();
    }
  });

  it('measures "settled … after the last accept" on the database clock, not in steps of its poll', async () => {
    const server = await serve(5);
    try {
      const result = await runStressTest(options({ orders: 20, concurrency: 20 }), { client: createApiClient(server.url) });
      assert.ok(result.drain.drained);
      // The last order settled (its status change) minus the last order accepted (its insert).
      const { rows } = await db.pool.query(
        `SELECT extract(epoch FROM max(updated_at) - max(created_at))::float8 * 1000 AS ms FROM orders WHERE user_id = 'stress-test'`,
      );
      const measured = Math.max(0, rows[0].ms as number);
      // The API's timestamps carry milliseconds; the database keeps microseconds.
      assert.ok(Math.abs((result.drain.msAfterLastAccept ?? NaN) - measured) <= 1, `${result.drain.msAfterLastAccept} vs ${measured}`);
    } finally {
      await server.close();
    }
  });

  it('counts rejected orders as settled: stock 5, ten orders → 5 confirmed, 5 rejected, invariant holds', async () => {
    await setStock(db.pool, { widget: 5 });
    const server = await serve(5);
    try {
      const result = await runStressTest(options({ orders: 10, productIds: ['widget'] }), { client: createApiClient(server.url) });
      assert.equal(result.drain.confirmed, 5);
      assert.equal(result.drain.rejected, 5);
      assert.deepEqual(
        result.stock.find((s) => s.productId === 'widget'),
        { productId: 'widget', before: 5, after: 0, confirmedQuantity: 5, holds: true },
      );
      assert.ok(result.ok);
    } finally {
      await server.close();
    }
  });

  it('fails the run when the relay does not drain: orders left PENDING are reported, exit would be 1', async () => {
    const server = await serve(0);
    try {
      const result = await runStressTest(options({ orders: 5, waitTimeoutMs: 300 }), { client: createApiClient(server.url) });
      assert.equal(result.accepted, 5);
      assert.equal(result.drain.drained, false);
      assert.equal(result.drain.unsettled, 5);
      assert.equal(result.drain.outboxLeft, 5);
      assert.equal(result.invariant.holds, false);
      assert.equal(result.ok, false);
    } finally {
      await server.close();
    }
  });

  it('reports failed requests by status and is not ok', async () => {
    const server = await serve(5);
    try {
      const result = await runStressTest(options({ orders: 4, productIds: ['widget', 'no-such-product'] }), {
        client: createApiClient(server.url),
      });
      assert.equal(result.accepted, 2);
      assert.deepEqual(result.failedByStatus, { '422': 2 });
      assert.ok(result.invariant.holds, 'the accepted ones still add up');
      assert.equal(result.ok, false);
    } finally {
      await server.close();
    }
  });

  it('says the server is unreachable when nothing listens', async () => {
    const client = createApiClient(`http://127.0.0.1:${await freePort()}`);
    await assert.rejects(runStressTest(options(), { client }), ServerUnreachableError);
  });
});

describe('latency summary', () => {
  it('uses nearest-rank percentiles', () => {
    const samples = Array.from({ length: 100 }, (_, i) => 100 - i);
    assert.deepEqual(latencySummary(samples), { p50: 50, p95: 95, max: 100 });
    assert.deepEqual(latencySummary([7]), { p50: 7, p95: 7, max: 7 });
    assert.deepEqual(latencySummary([]), { p50: 0, p95: 0, max: 0 });
  });
});
