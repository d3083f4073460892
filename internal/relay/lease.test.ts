// A claim's lease against deliveries stuck behind a lock (issue 13, item 1): a worker must be
// done with an event before its lease ends, whatever BATCH_SIZE is, so no two workers ever
// deliver one event at the same time. Real consumers, real PostgreSQL, a real row lock.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { workerStatementTimeoutMs } from '../app/workers.ts';
import { closePool, createPool, type Pool } from '../db/pool.ts';
import { createBatchConsumer } from '../inventory/batch-consumer.ts';
import { createInventoryConsumer } from '../inventory/consumer.ts';
import { setStock, stockOf } from '../inventory/stock.ts';
import { createMemoryLogger, createSilentLogger } from '../log/logger.ts';
import { placeOrdersInBulk } from '../orders/orders.ts';
import { createOutboxStore } from '../outbox/outbox.ts';
import { createTestDatabase, emptyPipelineTables, type TestDatabase } from '../testkit/database.ts';
import { Relay, type DeliverBatch } from './relay.ts';

const LEASE_MS = 2_000;
/** The product row stays locked this long: several leases. */
const LOCK_HELD_MS = 6_000;
const ORDERS = 10;

let db: TestDatabase;
let workerPool: Pool;
let relayPool: Pool;
const quiet = createSilentLogger();
before(async () => {
  db = await createTestDatabase(import.meta.filename);
  // As the workers are wired: a statement stuck behind a lock ends within half the lease.
  const statementTimeoutMs = workerStatementTimeoutMs({ statementTimeoutMs: 10_000, leaseMs: LEASE_MS });
  const options = { url: db.url, max: 3, connectionTimeoutMs: 10_000, statementTimeoutMs };
  workerPool = createPool({ ...options, applicationName: 'outbox-demo:inventory' }, quiet);
  relayPool = createPool({ ...options, applicationName: 'outbox-demo:relay' }, quiet);
});
after(async () => {
  await Promise.all([closePool(workerPool), closePool(relayPool)]);
  await db.drop();
});
beforeEach(async () => {
  await emptyPipelineTables(db.pool);
  await setStock(db.pool, { widget: 100 });
});

/** Counts, per message id, the deliveries running at the same moment; keeps the worst. */
function concurrencyProbe() {
  const running = new Map<string, number>();
  let worst = 0;
  return {
    async around<T>(messageIds: readonly string[], work: () => Promise<T>): Promise<T> {
      for (const id of messageIds) {
        const n = (running.get(id) ?? 0) + 1;
        running.set(id, n);
        worst = Math.max(worst, n);
      }
      try {
        return await work();
      } finally {
        for (const id of messageIds) running.set(id, running.get(id)! - 1);
      }
    },
    worst: () => worst,
  };
}

async function holdRowLock(productId: string, ms: number): Promise<void> {
  const holder = await db.pool.connect();
  try {
    await holder.query('BEGIN');
    await holder.query(`SELECT 1 FROM products WHERE id = $1 FOR UPDATE`, [productId]);
    await new Promise((resolve) => setTimeout(resolve, ms));
    await holder.query('COMMIT');
  } finally {
    holder.release();
  }
}

async function untilOutboxEmpty(timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await db.pool.query('SELECT 1 FROM outbox')).rowCount !== 0) {
    assert.ok(Date.now() < deadline, `the outbox did not empty within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function lockedProductScenario(mode: 'per-message' | 'batch') {
  await placeOrdersInBulk(db.pool, Array.from({ length: ORDERS }, () => ({ productId: 'widget', quantity: 1 })));
  const probe = concurrencyProbe();
  const logger = createMemoryLogger();
  const single = createInventoryConsumer({ pool: workerPool, logger });
  const batch = createBatchConsumer({ pool: workerPool, logger, single });
  const deliverBatch: DeliverBatch = (events, worker, mayStart) =>
    probe.around(events.map((e) => e.messageId), () => batch.handleBatch(events, worker, mayStart));
  let failed = 0;
  const relay = new Relay(
    {
      // Short backoffs and many attempts: this test is about overlap, not about giving up.
      store: createOutboxStore(relayPool, { batchSize: ORDERS, leaseMs: LEASE_MS, retryBaseMs: 100, retryMaxMs: 400 }),
      deliver: (event, worker) => probe.around([event.messageId], () => single.handle(event, worker)),
      deliverBatch: mode === 'batch' ? deliverBatch : undefined,
      logger,
      observer: { onClaimed() {}, onDelivered() {}, onFailed: () => (failed += 1) },
    },
    { workers: 2, pollIntervalMs: 50, maxAttempts: 100 },
  );
  const lock = holdRowLock('widget', LOCK_HELD_MS);
  await new Promise((resolve) => setTimeout(resolve, 100)); // the lock is taken before anyone delivers
  relay.start();
  try {
    await lock;
    await untilOutboxEmpty(60_000);
  } finally {
    await relay.stop();
  }

  assert.ok(failed > 0, 'deliveries ran into the lock (else this test tests nothing)');
  assert.equal(probe.worst(), 1, 'two workers delivered the same message at the same time');
  const { rows: processed } = await db.pool.query(`SELECT outcome, count(*)::int AS n FROM processed_messages GROUP BY 1`);
  assert.deepEqual(processed, [{ outcome: 'applied', n: ORDERS }]);
  assert.equal(await stockOf(db.pool, 'widget'), 100 - ORDERS, 'each order took its stock once');
  const { rows: orders } = await db.pool.query(`SELECT status, count(*)::int AS n FROM orders GROUP BY 1`);
  assert.deepEqual(orders, [{ status: 'CONFIRMED', n: ORDERS }]);
  assert.equal((await db.pool.query('SELECT 1 FROM dead_letters')).rowCount, 0);
  return logger.records.filter((r) => r.level === 'warn').map((r) => r.message);
}

describe('a claim of 10 while their product row is locked for three leases (LEASE_MS=2000, 2 workers)', () => {
  it('per-message: no message is delivered by two workers at once; each order is applied once', async () => {
    const warnings = await lockedProductScenario('per-message');
    // How: after one delivery timed out in the lock, the rest of the claim went back unstarted.
    assert.ok(warnings.some((w) => /^lease ends in \d+ ms, a delivery may need \d+ ms: handed back \d+ unstarted events?$/.test(w)), warnings.join('\n'));
  });

  it('batch: no message is delivered by two workers at once; each order is applied once', async () => {
    const warnings = await lockedProductScenario('batch');
    // How: the batch timed out in the lock, and there was no lease left to retry it one by one.
    assert.ok(warnings.some((w) => /rolled back .*: not enough lease left to try \d+ messages? one by one; they are retried later$/.test(w)), warnings.join('\n'));
  });
});
