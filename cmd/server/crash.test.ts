// kill -9 in each window that matters, via the CRASH_AT hook (the server SIGKILLs itself at
// that exact point), then a normal restart: nothing accepted is lost, nothing applied twice.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { createTestDatabase, emptyPipelineTables, type TestDatabase } from '../../internal/testkit/database.ts';
import { startServerProcess, type ServerProcess } from '../../internal/testkit/process.ts';

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase(import.meta.filename);
});
after(() => db.drop());
beforeEach(async () => {
  await emptyPipelineTables(db.pool);
  await db.pool.query(`UPDATE products SET stock = 100000`);
});

const env = (extra: Record<string, string> = {}) => ({ DATABASE_URL: db.url, LEASE_MS: '1000', ...extra });

function order(url: string, key: string, quantity: number) {
  return fetch(`${url}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': key },
    body: JSON.stringify({ productId: 'gizmo', quantity }),
  });
}

async function settled(url: string, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const stats = await (await fetch(`${url}/stats?fresh=1`)).json();
    if (stats.orders.PENDING === 0 && stats.outbox.pending === 0) return stats;
    assert.ok(Date.now() < deadline, `not settled: ${JSON.stringify(stats.orders)} outbox ${JSON.stringify(stats.outbox)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function facts() {
  const { rows } = await db.pool.query(
    `SELECT (SELECT count(*)::int FROM orders) AS orders,
            (SELECT count(*)::int FROM orders WHERE status = 'CONFIRMED') AS confirmed,
            (SELECT count(*)::int FROM processed_messages) AS processed,
            (SELECT count(*)::int FROM skipped_duplicates) AS duplicates,
            (SELECT count(*)::int FROM dead_letters) AS dead,
            (SELECT 100000 - stock FROM products WHERE id = 'gizmo') AS taken`,
  );
  return rows[0] as Record<string, number>;
}

/** Runs the crashing server until it dies, then a normal one; returns the normal one. */
async function crashThenRestart(point: string, work: (url: string) => Promise<void>): Promise<ServerProcess> {
  const crashing = await startServerProcess(env({ CRASH_AT: point }));
  await work(crashing.url);
  const code = await crashing.run.exited;
  assert.equal(code, null, 'killed by a signal, not exited');
  assert.equal(crashing.run.child.signalCode, 'SIGKILL');
  assert.match(crashing.run.output(), new RegExp(`CRASH_AT ${point}`));
  return startServerProcess(env());
}

describe('kill -9 at the worst moments', () => {
  it('mid-request (order inserted, event not yet): nothing is written; the client retry with its key succeeds once', async () => {
    const restarted = await crashThenRestart('mid-order', async (url) => {
      await assert.rejects(order(url, 'crash-1', 3), 'no response: the process died');
    });
    try {
      assert.deepEqual(await facts(), { orders: 0, confirmed: 0, processed: 0, duplicates: 0, dead: 0, taken: 0 });
      assert.equal((await order(restarted.url, 'crash-1', 3)).status, 201);
      assert.equal((await order(restarted.url, 'crash-1', 3)).headers.get('idempotent-replayed'), 'true');
      await settled(restarted.url);
      assert.deepEqual(await facts(), { orders: 1, confirmed: 1, processed: 1, duplicates: 0, dead: 0, taken: 3 });
    } finally {
      await restarted.run.stop();
    }
  });

  it('right after a claim: the lease expires, another worker delivers, applied once', async () => {
    const restarted = await crashThenRestart('after-claim', async (url) => {
      assert.equal((await order(url, 'crash-2', 2)).status, 201);
    });
    try {
      await settled(restarted.url);
      assert.deepEqual(await facts(), { orders: 1, confirmed: 1, processed: 1, duplicates: 0, dead: 0, taken: 2 });
    } finally {
      await restarted.run.stop();
    }
  });

  it('inside the consumer transaction, before COMMIT: rolled back, redelivered, applied once', async () => {
    const restarted = await crashThenRestart('mid-consume', async (url) => {
      assert.equal((await order(url, 'crash-3', 4)).status, 201);
    });
    try {
      await settled(restarted.url);
      assert.deepEqual(await facts(), { orders: 1, confirmed: 1, processed: 1, duplicates: 0, dead: 0, taken: 4 });
    } finally {
      await restarted.run.stop();
    }
  });

  it('after the consumer committed, before the outbox row was deleted: redelivered and skipped as a duplicate', async () => {
    const restarted = await crashThenRestart('after-consume', async (url) => {
      assert.equal((await order(url, 'crash-4', 5)).status, 201);
    });
    try {
      await settled(restarted.url);
      assert.deepEqual(await facts(), { orders: 1, confirmed: 1, processed: 1, duplicates: 1, dead: 0, taken: 5 });
      assert.match(restarted.run.output(), /\[Inventory\] SKIPPING duplicate message/);
    } finally {
      await restarted.run.stop();
    }
  });
});
