// Issue 17, item 1: a claimed event starts as soon as any worker of the process is free; it
// does not wait behind its claim-mates. The lease rules stay: one delivery of a message at a
// time, every event applied once, what is not started goes back under the claim's token.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import { createInventoryConsumer } from '../inventory/consumer.ts';
import { setStock, stockOf } from '../inventory/stock.ts';
import { createSilentLogger } from '../log/logger.ts';
import { placeOrdersInBulk } from '../orders/orders.ts';
import { createOutboxStore, enqueueEvents, type OutboxEvent } from '../outbox/outbox.ts';
import { createTestDatabase, emptyPipelineTables, type TestDatabase } from '../testkit/database.ts';
import { Relay, type Deliver } from './relay.ts';

const WAIT_MS = 20_000;

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase(import.meta.filename);
});
after(() => db.drop());
beforeEach(async () => {
  await emptyPipelineTables(db.pool);
  await setStock(db.pool, { widget: 10_000, gadget: 10_000 });
});

function relayOf(deliver: Deliver, options: { workers: number; batchSize?: number; leaseMs?: number }) {
  const store = createOutboxStore(db.newPool(options.workers + 1), {
    batchSize: options.batchSize ?? 10, leaseMs: options.leaseMs ?? 30_000, retryBaseMs: 20, retryMaxMs: 50,
  });
  // Polls once a minute: whatever happens below happens by claims and hand-outs, not by polling.
  return new Relay({ store, deliver, logger: createSilentLogger() }, { workers: options.workers, pollIntervalMs: 60_000, maxAttempts: 100 });
}

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

async function until(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `${what} (still not true after ${WAIT_MS} ms)`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const outboxRows = async () => (await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM outbox')).rows[0]!.n;

describe('per-message dispatch of a claim', () => {
  it("hands back a unit's unstarted events at once when even recording a failure fails", async () => {
    // Two events of one aggregate: one unit, delivered in order by one worker.
    const aggregateId = randomUUID();
    await enqueueEvents(db.pool, [1, 2].map(() => ({ messageId: randomUUID(), eventType: 'OrderCreated', aggregateId, payload: {} })));
    const store = createOutboxStore(db.newPool(2), { batchSize: 10, leaseMs: 30_000 });
    const relay = new Relay(
      {
        store,
        deliver: async () => {
          throw new Error('downstream down');
        },
        logger: createSilentLogger(),
        observer: {
          onClaimed() {},
          onDelivered() {},
          onFailed() {
            throw new Error('the failure could not be recorded');
          },
        },
      },
      { workers: 1, pollIntervalMs: 60_000 },
    );
    await assert.rejects(relay.runOnce('Worker-1'), /could not be recorded/);
    // The first stays leased (its lease brings it back); the second was never started, so it
    // is free now instead of waiting out a 30 s lease as if its worker had died.
    const { rows } = await db.pool.query<{ free: boolean }>('SELECT lock_token IS NULL AS free FROM outbox ORDER BY id');
    assert.deepEqual(rows.map((row) => row.free), [false, true]);
  });

  it("delivers a claim's other events on idle workers while its first delivery is still running", async () => {
    await placeOrdersInBulk(db.pool, Array.from({ length: 10 }, () => ({ productId: 'widget', quantity: 1 })));
    const consumer = createInventoryConsumer({ pool: db.newPool(4), logger: createSilentLogger() });
    const slow = gate();
    let first: string | undefined;
    const deliveredWhileFirstRan = new Set<string>();
    const relay = relayOf(async (event, worker) => {
      first ??= event.messageId;
      if (event.messageId === first) {
        // Held until the other nine are in, or the deadline: a worker that delivers its claim
        // alone, one by one, would keep them waiting behind this one until then.
        await Promise.race([slow.opened, new Promise((resolve) => setTimeout(resolve, WAIT_MS))]);
      }
      const outcome = await consumer.handle(event, worker);
      if (event.messageId !== first) {
        deliveredWhileFirstRan.add(event.messageId);
        if (deliveredWhileFirstRan.size === 9) slow.open();
      }
      return outcome;
    }, { workers: 3 });
    relay.start();
    try {
      relay.nudge();
      await until('the claim was delivered', async () => (await outboxRows()) === 0);
    } finally {
      await relay.stop();
    }
    assert.equal(deliveredWhileFirstRan.size, 9, 'the other nine went through while the first was held');
    assert.equal(await stockOf(db.pool, 'widget'), 10_000 - 10);
  });

  it('delivers no message twice at a time and applies every event once (5 workers, failures on the way)', async () => {
    const ORDERS = 300;
    await placeOrdersInBulk(db.pool, Array.from({ length: ORDERS }, (_, i) => ({ productId: i % 2 ? 'widget' : 'gadget', quantity: 1 })));
    const consumer = createInventoryConsumer({ pool: db.newPool(6), logger: createSilentLogger() });
    const running = new Map<string, number>();
    const attempts = new Map<string, number>();
    let worst = 0;
    const relay = relayOf(async (event: OutboxEvent, worker) => {
      const now = (running.get(event.messageId) ?? 0) + 1;
      running.set(event.messageId, now);
      worst = Math.max(worst, now);
      try {
        const n = (attempts.get(event.messageId) ?? 0) + 1;
        attempts.set(event.messageId, n);
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 3));
        // Every seventh message fails its first attempt: retries go through the shared claims too.
        if (n === 1 && Number(event.id) % 7 === 0) throw new Error('injected failure');
        return await consumer.handle(event, worker);
      } finally {
        running.set(event.messageId, running.get(event.messageId)! - 1);
      }
    }, { workers: 5 });
    relay.start();
    try {
      // Retries come back after their backoff: nudges stand in for the minute-long poll.
      await until('the outbox drained', async () => {
        relay.nudge();
        return (await outboxRows()) === 0;
      });
    } finally {
      await relay.stop();
    }
    assert.equal(worst, 1, 'a message was delivered by two workers at the same time');
    const { rows } = await db.pool.query(`SELECT outcome, count(*)::int AS n FROM processed_messages GROUP BY 1`);
    assert.deepEqual(rows, [{ outcome: 'applied', n: ORDERS }]);
    assert.equal((await stockOf(db.pool, 'widget'))! + (await stockOf(db.pool, 'gadget'))!, 20_000 - ORDERS, 'each order took its stock once');
    assert.ok([...attempts.values()].some((n) => n > 1), 'some deliveries were retried (else the failures tested nothing)');
  });

  it('on stop, hands back the events still waiting in the queue, uncounted, under their claim', async () => {
    await placeOrdersInBulk(db.pool, Array.from({ length: 10 }, () => ({ productId: 'widget', quantity: 1 })));
    const consumer = createInventoryConsumer({ pool: db.newPool(3), logger: createSilentLogger() });
    const held = gate();
    let started = 0;
    const relay = relayOf(async (event, worker) => {
      started += 1;
      await held.opened;
      return consumer.handle(event, worker);
    }, { workers: 2 });
    relay.start();
    relay.nudge();
    await until('both workers are delivering', () => started === 2);
    const stopped = relay.stop();
    held.open();
    await stopped;
    assert.equal(started, 2, 'nothing started after stop()');
    const { rows } = await db.pool.query<{ n: number; leased: number; counted: number }>(
      `SELECT count(*)::int AS n, count(lock_token)::int AS leased, count(*) FILTER (WHERE attempts > 0)::int AS counted FROM outbox`,
    );
    assert.deepEqual(rows[0], { n: 8, leased: 0, counted: 0 }, 'the two delivered are deleted, the eight unstarted are free again');
    assert.equal(await stockOf(db.pool, 'widget'), 10_000 - 2);
  });
});
