// Wake-up: a committed event reaches a sleeping worker without waiting for the poll interval,
// and the listener comes back by itself after its session is killed.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { createInventoryConsumer } from '../inventory/consumer.ts';
import { createSilentLogger } from '../log/logger.ts';
import { placeOrder } from '../orders/orders.ts';
import { Relay } from '../relay/relay.ts';
import { createTestDatabase, emptyPipelineTables, type TestDatabase } from '../testkit/database.ts';
import { LISTENER_APPLICATION_NAME, OutboxListener } from './listener.ts';
import { createOutboxStore, enqueueEvent, ORDER_CREATED } from './outbox.ts';

// Far longer than any wait below: whatever gets delivered was delivered by a wake-up.
const POLL_INTERVAL_MS = 60_000;
const WAIT_MS = 20_000;
const WORKERS = 3;

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase(import.meta.filename);
});
after(() => db.drop());

/** Workers that poll once a minute, a listener that nudges them, and a count of their claims. */
function pipeline() {
  const store = createOutboxStore(db.newPool(WORKERS + 1), { batchSize: 10, leaseMs: 30_000 });
  let claims = 0;
  const consumed = new Set<string>();
  const consumer = createInventoryConsumer({ pool: db.newPool(WORKERS + 1), logger: createSilentLogger() });
  const relay = new Relay(
    {
      // Counted when the claim has come back, so "claims ≥ workers" means every worker is idle.
      store: { ...store, claim: async (worker) => { const claim = await store.claim(worker); claims += 1; return claim; } },
      deliver: async (event, worker) => {
        const outcome = await consumer.handle(event, worker);
        consumed.add(event.messageId);
        return outcome;
      },
      logger: createSilentLogger(),
    },
    { workers: WORKERS, pollIntervalMs: POLL_INTERVAL_MS },
  );
  const listener = new OutboxListener({ url: db.url, logger: createSilentLogger(), onNotify: () => relay.nudge() });
  return { relay, listener, consumed, claims: () => claims };
}

async function until(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `${what} (still not true after ${WAIT_MS} ms; the poll interval is ${POLL_INTERVAL_MS} ms)`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Another process's order: committed on its own pool, so nothing in-process nudges the workers. */
async function orderFromElsewhere(): Promise<string> {
  const { messageId } = await placeOrder(db.pool, { productId: 'widget', quantity: 1 });
  return messageId;
}

describe('wake-up by LISTEN/NOTIFY', () => {
  let p: ReturnType<typeof pipeline>;
  beforeEach(async () => {
    await emptyPipelineTables(db.pool);
    p = pipeline();
    await p.listener.start();
    p.relay.start();
    // Every worker has claimed nothing and gone to sleep for a minute (the listener's
    // catch-up nudge on connect may add one more claim).
    await until('every worker made its first claim', () => p.claims() >= WORKERS);
  });
  afterEach(async () => {
    await p.listener.close();
    await p.relay.stop();
  });

  it('delivers a committed event to a sleeping worker without waiting for the poll interval', async () => {
    const first = await orderFromElsewhere();
    await until('the first event was consumed', () => p.consumed.has(first));
    const second = await orderFromElsewhere();
    await until('the second event was consumed', () => p.consumed.has(second));
    // "Consumed" is the consumer's commit; the worker deletes the outbox row just after it.
    await until('the outbox is empty', async () => (await db.pool.query('SELECT 1 FROM outbox')).rowCount === 0);
    assert.equal(p.listener.sessions, 1);
  });

  it('listens again after its session is terminated, and wake-ups work again', async () => {
    const killed = await db.pool.query<{ pid: number }>(
      `SELECT pg_terminate_backend(pid), pid FROM pg_stat_activity
        WHERE datname = current_database() AND application_name = $1`,
      [LISTENER_APPLICATION_NAME],
    );
    assert.equal(killed.rowCount, 1, 'exactly one listening session per pipeline');
    await until('the listener reconnected', () => p.listener.sessions === 2 && p.listener.listening);
    // pg_terminate_backend does not wait: the old session may linger in pg_stat_activity a moment.
    const sessions = async () =>
      (await db.pool.query<{ pid: number }>(
        `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1`,
        [LISTENER_APPLICATION_NAME],
      )).rows.map((row) => row.pid);
    await until('only the new listening session is left', async () => (await sessions()).length === 1);
    assert.notEqual((await sessions())[0], killed.rows[0]!.pid, 'a new session, not the old one');

    const messageId = await orderFromElsewhere();
    await until('the event was consumed after the reconnect', () => p.consumed.has(messageId));
  });

  it('announces an event when its transaction commits, and not at all after a ROLLBACK', async () => {
    const heard: string[] = [];
    const ear = new OutboxListener({ url: db.url, logger: createSilentLogger(), onNotify: () => heard.push('nudge'), applicationName: 'outbox-demo:test-ear' });
    await ear.start();
    try {
      heard.length = 0; // the catch-up nudge every (re)connect makes
      const client = await db.pool.connect();
      try {
        await client.query('BEGIN');
        await enqueueEvent(client, { messageId: randomUUID(), eventType: ORDER_CREATED, aggregateId: randomUUID(), payload: {} });
        await client.query('ROLLBACK');
      } finally {
        client.release();
      }
      const messageId = await orderFromElsewhere();
      await until('the committed event was announced', () => heard.length > 0);
      assert.deepEqual(heard, ['nudge'], 'only the committed transaction was announced');
      await until('the event was consumed', () => p.consumed.has(messageId));
    } finally {
      await ear.close();
    }
  });
});
