// The workers as wired for a server: FAIL_RATE means the same per-event probability whichever
// CONSUMER_MODE runs (issue 13, item 3). Real consumers, real PostgreSQL.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { loadConfig, type ConsumerMode } from '../config/config.ts';
import { createFailureInjector } from '../faults/faults.ts';
import { seededRandom } from '../faults/random.ts';
import { setStock, stockOf } from '../inventory/stock.ts';
import { createSilentLogger } from '../log/logger.ts';
import { placeOrdersInBulk } from '../orders/orders.ts';
import { createTestDatabase, emptyPipelineTables, type TestDatabase } from '../testkit/database.ts';
import { startWorkers } from './workers.ts';

const FAIL_RATE = 0.3;
const SEED = 13;
const ORDERS = 20;
const BATCH_SIZE = 10;

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase(import.meta.filename);
});
after(() => db.drop());
beforeEach(async () => {
  await emptyPipelineTables(db.pool);
  await setStock(db.pool, { widget: 100 });
});

/** The message ids the seeded injector picks to fail, asked once per event in delivery order. */
function picksOf(messageIds: readonly string[]): Set<string> {
  const twin = createFailureInjector(FAIL_RATE, seededRandom(SEED));
  const picked = new Set<string>();
  for (const id of messageIds) {
    try {
      twin.maybeFail(id);
    } catch {
      picked.add(id);
    }
  }
  return picked;
}

async function column(sql: string): Promise<string[]> {
  return (await db.pool.query<{ v: string }>(sql)).rows.map((row) => row.v).sort();
}

async function firstPass(consumerMode: ConsumerMode) {
  await placeOrdersInBulk(db.pool, Array.from({ length: ORDERS }, () => ({ productId: 'widget', quantity: 1 })));
  // One worker claims in id order, so the injector is asked about the events in that order.
  const { rows } = await db.pool.query<{ v: string }>(`SELECT message_id::text AS v FROM outbox ORDER BY id`);
  const ids = rows.map((row) => row.v);
  const picked = picksOf(ids);
  assert.ok(picked.size > 0 && picked.size < ORDERS / 2, `the seed should pick a few events, picked ${picked.size}`);

  // A failed event comes back only after a minute: this test sees each event's first delivery.
  const config = loadConfig({}, {
    databaseUrl: db.url, workers: 1, batchSize: BATCH_SIZE, consumerMode, wakeup: 'poll', pollIntervalMs: 50,
    retryBaseMs: 60_000, retryMaxMs: 60_000, logLevel: 'silent',
  });
  const workers = await startWorkers(config, createSilentLogger(), {
    url: db.url,
    faults: createFailureInjector(FAIL_RATE, seededRandom(SEED)),
  });
  try {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const { rows: left } = await db.pool.query(`SELECT 1 FROM outbox WHERE lock_token IS NOT NULL OR attempts = 0`);
      if (left.length === 0) break;
      assert.ok(Date.now() < deadline, 'the first delivery of every event did not finish within 60 s');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    await workers.close();
  }

  const failed = await column(`SELECT message_id::text AS v FROM outbox WHERE last_error LIKE 'injected failure%'`);
  const applied = await column(`SELECT message_id::text AS v FROM processed_messages WHERE outcome = 'applied'`);
  assert.deepEqual(failed, [...picked].sort(), 'exactly the events the injector picked failed');
  assert.deepEqual(applied, ids.filter((id) => !picked.has(id)).sort(), 'every other event was applied');
  assert.equal(await stockOf(db.pool, 'widget'), 100 - (ORDERS - picked.size));
}

describe('FAIL_RATE with a seeded injector', () => {
  it('per-message: the events the injector picks fail, each alone; the rest are applied', async () => {
    await firstPass('per-message');
  });

  it('batch: the same events fail, each alone; the rest of their claims are applied', async () => {
    await firstPass('batch');
  });
});
