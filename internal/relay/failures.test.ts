// What happens when delivery goes wrong: bounded retries, dead letters, poison, crashes that
// kill the process mid-delivery, stalled workers. Real consumer, real PostgreSQL.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { AppError } from '../errors/errors.ts';
import { createInventoryConsumer, type InventoryConsumer } from '../inventory/consumer.ts';
import { setStock, stockOf } from '../inventory/stock.ts';
import { createMemoryLogger, createSilentLogger } from '../log/logger.ts';
import { placeOrder } from '../orders/orders.ts';
import { redriveDeadLetters } from '../outbox/dead-letters.ts';
import { createOutboxStore, type OutboxEvent } from '../outbox/outbox.ts';
import { createTestDatabase, emptyPipelineTables, type TestDatabase } from '../testkit/database.ts';
import { Relay, type Deliver, type RelayHooks } from './relay.ts';

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

const realDeliver: Deliver = (event, worker) => consumer.handle(event, worker);

function relay(deliver: Deliver, options: { leaseMs?: number; hooks?: RelayHooks; logger?: ReturnType<typeof createMemoryLogger>; transportRetryMs?: number } = {}) {
  return new Relay(
    {
      // Backoff of 1 ms so the retries of this test happen at once; the policy is what is tested.
      store: createOutboxStore(db.pool, { batchSize: 10, leaseMs: options.leaseMs ?? 30_000, retryBaseMs: 1, retryMaxMs: 1 }),
      deliver,
      logger: options.logger ?? createSilentLogger(),
      hooks: options.hooks,
    },
    { workers: 1, pollIntervalMs: 20, maxAttempts: 5, transportRetryMs: options.transportRetryMs },
  );
}

async function order(quantity = 1): Promise<string> {
  return (await placeOrder(db.pool, { productId: 'widget', quantity })).order.id;
}

async function rows(sql: string) {
  return (await db.pool.query(sql)).rows;
}

async function untilOutboxEmpty(r: Relay, worker = 'Worker-1') {
  for (let i = 0; i < 50; i += 1) {
    await r.runOnce(worker);
    if ((await rows('SELECT 1 FROM outbox')).length === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  assert.fail('the outbox did not empty');
}

describe('bounded retries', () => {
  it('retries a failing delivery with the attempt count and error on the row, then dead-letters it after MAX_ATTEMPTS', async () => {
    const orderId = await order();
    let calls = 0;
    const failing = relay(async () => {
      calls += 1;
      throw new Error(`downstream timeout #${calls}`);
    });
    await failing.runOnce('Worker-1');
    assert.deepEqual(await rows('SELECT attempts, last_error FROM outbox'), [{ attempts: 1, last_error: 'downstream timeout #1' }]);

    await untilOutboxEmpty(failing);
    assert.equal(calls, 5);
    assert.deepEqual(await rows(`SELECT attempts, last_error, aggregate_id::text FROM dead_letters`), [
      { attempts: 5, last_error: 'failed 5 times; last: downstream timeout #5', aggregate_id: orderId },
    ]);
    assert.equal((await rows(`SELECT status FROM orders`))[0].status, 'PENDING', 'nothing was applied');
  });

  it('a broker that is down (TRANSPORT_UNAVAILABLE) is an outage, not the message\'s fault: its attempts are not counted, it is never dead-lettered for it', async () => {
    await order(2);
    let calls = 0;
    // Twice MAX_ATTEMPTS publishes while the broker is away, then it is back.
    const flaky = relay(async (event, worker) => {
      calls += 1;
      if (calls <= 10) throw new AppError('TRANSPORT_UNAVAILABLE', `broker unavailable: timeout #${calls}`);
      return consumer.handle(event, worker);
    }, { transportRetryMs: 1 });
    await untilOutboxEmpty(flaky);
    assert.equal(calls, 11);
    assert.equal((await rows('SELECT 1 FROM dead_letters')).length, 0);
    assert.equal((await rows(`SELECT status FROM orders`))[0].status, 'CONFIRMED');
  });

  it('re-drives dead letters once the cause is fixed: delivered and applied once', async () => {
    await order(3);
    await untilOutboxEmpty(relay(async () => Promise.reject(new Error('broken'))));
    assert.equal((await rows('SELECT 1 FROM dead_letters')).length, 1);

    assert.equal((await redriveDeadLetters(db.pool)).length, 1);
    assert.deepEqual(await rows('SELECT attempts FROM outbox'), [{ attempts: 0 }]);
    await untilOutboxEmpty(relay(realDeliver));
    assert.equal(await stockOf(db.pool, 'widget'), 97);
    assert.equal((await rows('SELECT 1 FROM dead_letters')).length, 0);
    assert.equal((await rows(`SELECT status FROM orders`))[0].status, 'CONFIRMED');
  });
});

describe('poison messages', () => {
  it('are dead-lettered at once, and the events behind them are delivered in the same pass', async () => {
    await db.pool.query(
      `INSERT INTO outbox (message_id, event_type, aggregate_id, payload)
       VALUES (gen_random_uuid(), 'OrderCreated', gen_random_uuid(), '{"nonsense": true}'),
              (gen_random_uuid(), 'OrderShipped', gen_random_uuid(), '{}')`,
    );
    for (let i = 0; i < 5; i += 1) await order();
    const logger = createMemoryLogger();
    assert.equal(await relay(realDeliver, { logger }).runOnce('Worker-1'), 7);

    assert.deepEqual(await rows('SELECT count(*)::int AS n FROM outbox'), [{ n: 0 }]);
    const dead = await rows('SELECT event_type, attempts, last_error FROM dead_letters ORDER BY event_type');
    assert.equal(dead.length, 2);
    assert.ok(dead.every((d) => d.attempts === 1 && d.last_error.startsWith('poison message')));
    assert.equal(await stockOf(db.pool, 'widget'), 95, 'the five good orders were applied');
    assert.ok(logger.records.some((r) => r.level === 'warn' && r.message.startsWith('DEAD-LETTERED')));
  });
});

describe('a delivery that kills the process', () => {
  it('is counted before delivery, so after MAX_ATTEMPTS crashes it is dead-lettered instead of delivered again', async () => {
    await order();
    // Five earlier claims, each holding it alone, died mid-delivery: attempts 5, lease still
    // stamped but expired.
    await db.pool.query(
      `UPDATE outbox SET attempts = 5, claimed_alone = true, locked_by = 'Worker-9', lock_token = gen_random_uuid(),
                         locked_until = now() - interval '1 second', available_at = now() - interval '1 second'`,
    );
    let delivered = 0;
    await relay(async (event, worker) => {
      delivered += 1;
      return realDeliver(event, worker);
    }).runOnce('Worker-1');
    assert.equal(delivered, 0, 'the sixth attempt must not run');
    const [dead] = await rows('SELECT attempts, last_error FROM dead_letters');
    assert.equal(dead.attempts, 6);
    assert.match(dead.last_error, /5 attempts did not succeed; last: lease of Worker-9 expired/);
  });
});

describe('a stalled worker', () => {
  it('loses its event to another worker after the lease; the order is applied once and its late delivery is a duplicate', async () => {
    await order(2);
    let release!: () => void;
    const paused = new Promise<void>((resolve) => (release = resolve));
    let stalledHas: OutboxEvent | undefined;
    const stalled = relay(realDeliver, {
      leaseMs: 1_000,
      hooks: {
        async beforeDeliver(_worker, event) {
          stalledHas = event;
          await paused; // a GC pause, a frozen VM, a debugger…
        },
      },
    });
    const stalledRun = stalled.runOnce('Worker-1');
    while (!stalledHas) await new Promise((resolve) => setTimeout(resolve, 5));

    await new Promise((resolve) => setTimeout(resolve, 1_100)); // the lease runs out
    await untilOutboxEmpty(relay(realDeliver), 'Worker-2');
    release();
    await stalledRun;

    assert.equal(await stockOf(db.pool, 'widget'), 98, 'applied exactly once');
    assert.deepEqual(await rows('SELECT handled_by FROM processed_messages'), [{ handled_by: 'Worker-2' }]);
    assert.deepEqual(await rows('SELECT handled_by FROM skipped_duplicates'), [{ handled_by: 'Worker-1' }]);
    assert.equal((await rows('SELECT 1 FROM outbox')).length, 0);
  });
});

describe('a crash with a whole batch claimed', () => {
  it('is pinned on the event that causes it: its neighbours are delivered, only it is dead-lettered', async () => {
    for (let i = 0; i < 6; i += 1) await order();
    const { rows: events } = await db.pool.query<{ message_id: string }>(`SELECT message_id FROM outbox ORDER BY id`);
    const crasher = events[3]!.message_id; // the fourth event kills the process whenever it is delivered
    const store = createOutboxStore(db.pool, { batchSize: 10, leaseMs: 30_000 });

    // One "process" per round: claim, deliver in order, die at the crasher (the lease is left
    // to expire, as after a kill -9), or finish the batch normally.
    for (let round = 0; round < 20; round += 1) {
      const claim = await store.claim('Worker-1');
      if (claim.events.length === 0) break;
      const delivered: string[] = [];
      let died = false;
      for (const event of claim.events) {
        if (event.attempts > 5) {
          await store.deadLetter(event, claim.token, 'gave up');
          continue;
        }
        if (event.messageId === crasher) {
          died = true;
          break;
        }
        await consumer.handle(event, 'Worker-1');
        delivered.push(event.id);
      }
      if (died) {
        await db.pool.query(`UPDATE outbox SET available_at = now(), locked_until = now() WHERE lock_token = $1`, [claim.token]);
      } else {
        await store.complete(delivered, claim.token);
      }
    }

    assert.deepEqual(await rows(`SELECT message_id::text FROM dead_letters`), [{ message_id: crasher }]);
    assert.equal((await rows(`SELECT 1 FROM outbox`)).length, 0);
    assert.equal(await stockOf(db.pool, 'widget'), 95, 'the five others were applied, once each');
    assert.equal((await rows(`SELECT 1 FROM skipped_duplicates`)).length, 3, 'the three before it were redelivered once');
  });
});
