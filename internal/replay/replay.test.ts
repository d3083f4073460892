import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import { createInventoryConsumer, type InventoryConsumer } from '../inventory/consumer.ts';
import { setStock } from '../inventory/stock.ts';
import { createMemoryLogger, createSilentLogger } from '../log/logger.ts';
import { placeOrder } from '../orders/orders.ts';
import { createOutboxStore } from '../outbox/outbox.ts';
import { Relay } from '../relay/relay.ts';
import { createTestDatabase, emptyPipelineTables, type TestDatabase } from '../testkit/database.ts';
import { redriveAndDeliver } from './redrive.ts';
import { runReplay, type ReplayDeps, type ReplayOptions } from './replay.ts';

let db: TestDatabase;
let consumer: InventoryConsumer;
before(async () => {
  db = await createTestDatabase(import.meta.filename);
  consumer = createInventoryConsumer({ pool: db.pool, logger: createSilentLogger() });
});
after(() => db.drop());
beforeEach(async () => {
  await emptyPipelineTables(db.pool);
  await setStock(db.pool, { widget: 100 });
});

function relay(workers: number): Relay {
  return new Relay(
    {
      store: createOutboxStore(db.pool, { batchSize: 10, leaseMs: 30_000 }),
      deliver: (event, worker) => consumer.handle(event, worker),
      logger: createSilentLogger(),
    },
    { workers, pollIntervalMs: 50 },
  );
}

/** Three orders, placed and delivered once by a worker, as a running server would have. */
async function processThreeOrders(): Promise<void> {
  for (const quantity of [1, 2, 3]) await placeOrder(db.pool, { productId: 'widget', quantity });
  const once = relay(1);
  while ((await once.runOnce('Worker-1')) > 0);
}

const options = (overrides: Partial<ReplayOptions> = {}): ReplayOptions => ({
  count: 3,
  messageIds: [],
  fresh: false,
  freshProductId: 'widget',
  waitTimeoutMs: 30_000,
  ...overrides,
});

const deps = (overrides: Partial<ReplayDeps> = {}): ReplayDeps => ({
  pool: db.pool,
  consumer,
  logger: createSilentLogger(),
  serverRunning: false,
  leaseMs: 30_000,
  ...overrides,
});

async function tableCounts() {
  const { rows } = await db.pool.query(
    `SELECT (SELECT stock FROM products WHERE id = 'widget') AS stock,
            (SELECT count(*)::int FROM processed_messages) AS processed,
            (SELECT count(*)::int FROM skipped_duplicates) AS skipped,
            (SELECT count(*)::int FROM outbox) AS outbox`,
  );
  return rows[0] as { stock: number; processed: number; skipped: number; outbox: number };
}

describe('replay without a server: straight to the consumer', () => {
  it('skips every duplicate and changes nothing', async () => {
    await processThreeOrders();
    const logger = createMemoryLogger();
    const result = await runReplay(options(), deps({ logger, consumer: createInventoryConsumer({ pool: db.pool, logger }) }));
    assert.equal(result.path, 'in-process');
    assert.equal(result.replayed.length, 3);
    assert.deepEqual(result.skips.map((s) => s.handledBy), ['Replay', 'Replay', 'Replay']);
    assert.ok(result.ok);
    assert.deepEqual(await tableCounts(), { stock: 94, processed: 3, skipped: 3, outbox: 0 });
    const skipLines = logger.records.filter((r) => r.speaker === 'Inventory' && r.message.startsWith('SKIPPING duplicate message'));
    assert.equal(skipLines.length, 3);
  });

  it('--fresh works on an empty database: first delivery applied, the second skipped', async () => {
    const result = await runReplay(options({ fresh: true }), deps());
    assert.equal(result.fresh?.firstOutcome, 'applied');
    assert.equal(result.fresh?.firstDeliveredBy, 'Replay-1');
    assert.deepEqual(result.replayed, [result.fresh?.messageId]);
    assert.ok(result.ok);
    assert.deepEqual(await tableCounts(), { stock: 99, processed: 1, skipped: 1, outbox: 0 });
  });

  it('is not ok when a requested message was never processed', async () => {
    await processThreeOrders();
    const result = await runReplay(options({ messageIds: [randomUUID()] }), deps());
    assert.equal(result.notReplayable.length, 1);
    assert.equal(result.ok, false);
  });

  it('is not ok when there is nothing to replay', async () => {
    const result = await runReplay(options(), deps());
    assert.equal(result.replayed.length, 0);
    assert.equal(result.ok, false);
  });
});

describe("replay with a server: through the outbox and the server's workers", () => {
  it('puts the messages back in the outbox; the workers skip them and delete the rows', async () => {
    await processThreeOrders();
    const workers = relay(5);
    workers.start();
    try {
      const result = await runReplay(options(), deps({ serverRunning: true, nudge: () => workers.nudge() }));
      assert.equal(result.path, 'server-workers');
      assert.equal(result.skips.length, 3);
      assert.ok(result.skips.every((s) => /^Worker-\d$/.test(s.handledBy)));
      assert.ok(result.ok);
      assert.deepEqual(await tableCounts(), { stock: 94, processed: 3, skipped: 3, outbox: 0 });
    } finally {
      await workers.stop();
    }
  });

  it('reports duplicates nobody delivered (no worker on this database) and is not ok', async () => {
    await processThreeOrders();
    const result = await runReplay(options({ count: 1, waitTimeoutMs: 200 }), deps({ serverRunning: true }));
    assert.equal(result.unanswered.length, 1);
    assert.equal(result.ok, false);
  });
});

describe('re-driving dead letters (replay --dead-letters)', () => {
  it('puts them back in the outbox and delivers them once the cause is fixed', async () => {
    await placeOrder(db.pool, { productId: 'widget', quantity: 4 });
    const store = createOutboxStore(db.pool, { batchSize: 10, leaseMs: 30_000 });
    const claim = await store.claim('Worker-1');
    assert.ok(await store.deadLetter(claim.events[0]!, claim.token, 'inventory service was down'));
    assert.deepEqual(await tableCounts(), { stock: 100, processed: 0, skipped: 0, outbox: 0 });

    const result = await redriveAndDeliver([], 5_000, {
      pool: db.pool, consumer, logger: createSilentLogger(), serverRunning: false, leaseMs: 30_000, maxAttempts: 5,
    });
    assert.equal(result.redriven.length, 1);
    assert.equal(result.delivered, 1);
    assert.ok(result.ok);
    assert.deepEqual(await tableCounts(), { stock: 96, processed: 1, skipped: 0, outbox: 0 });
    assert.equal((await db.pool.query('SELECT 1 FROM dead_letters')).rowCount, 0);
  });
});
