// The after-commit wake-up (WAKEUP=notify, issue 17 item 2): the order transaction issues no
// NOTIFY; the process's own workers are nudged in memory, other processes hear one coalesced
// notification after the commit, and polling covers a notification that never came.
import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import pg from 'pg';
import { createInventoryConsumer } from '../inventory/consumer.ts';
import { createSilentLogger } from '../log/logger.ts';
import { placeOrder } from '../orders/orders.ts';
import { Relay } from '../relay/relay.ts';
import { createTestDatabase, emptyPipelineTables, type TestDatabase } from '../testkit/database.ts';
import { OutboxListener } from './listener.ts';
import { announceOutbox, createOutboxStore, OUTBOX_CHANNEL } from './outbox.ts';
import { createWakeup, type Wakeup } from './wakeup.ts';

const WORKERS = 3;
const WAIT_MS = 20_000;
/** A channel nobody listens on: an after-commit notification sent there is as good as lost. */
const NOWHERE = 'outbox_test_nowhere';

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase(import.meta.filename);
});
after(() => db.drop());

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `${what} (still not true after ${timeoutMs} ms)`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Workers polling every `pollIntervalMs`, optionally with a listener, and a count of their claims. */
function pipeline(pollIntervalMs: number, withListener: boolean) {
  const store = createOutboxStore(db.newPool(WORKERS + 1), { batchSize: 10, leaseMs: 30_000 });
  let claims = 0;
  const consumed = new Map<string, number>();
  const consumer = createInventoryConsumer({ pool: db.newPool(WORKERS + 1), logger: createSilentLogger() });
  const relay = new Relay(
    {
      store: { ...store, claim: async (worker) => { const claim = await store.claim(worker); claims += 1; return claim; } },
      deliver: async (event, worker) => {
        const outcome = await consumer.handle(event, worker);
        consumed.set(event.messageId, Date.now());
        return outcome;
      },
      logger: createSilentLogger(),
    },
    { workers: WORKERS, pollIntervalMs },
  );
  const listener = withListener ? new OutboxListener({ url: db.url, logger: createSilentLogger(), onNotify: () => relay.nudge() }) : undefined;
  return {
    relay, consumed,
    async start() {
      await listener?.start();
      relay.start();
      await until('every worker made its first claim and fell asleep', () => claims >= WORKERS);
    },
    async stop() {
      await listener?.close();
      await relay.stop();
    },
  };
}

/** A plain LISTEN session counting what arrives on a channel. */
async function ear(channel: string) {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  const heard: string[] = [];
  client.on('notification', (n) => heard.push(n.payload ?? ''));
  await client.query(`LISTEN ${client.escapeIdentifier(channel)}`);
  return { heard, close: () => client.end() };
}

describe('the after-commit wake-up (WAKEUP=notify)', () => {
  let p: ReturnType<typeof pipeline> | undefined;
  let wakeup: Wakeup | undefined;
  beforeEach(() => emptyPipelineTables(db.pool));
  afterEach(async () => {
    await wakeup?.close();
    await p?.stop();
    p = undefined;
    wakeup = undefined;
  });

  it("wakes the process's own workers without any database notification", async () => {
    p = pipeline(60_000, false); // no listener, a poll a minute: only the in-memory nudge can wake them
    await p.start();
    const outboxChannel = await ear(OUTBOX_CHANNEL);
    try {
      wakeup = createWakeup({ mode: 'notify', url: db.url, logger: createSilentLogger(), nudgeLocal: () => p!.relay.nudge(), channel: NOWHERE });
      const { messageId } = await placeOrder(db.pool, { productId: 'widget', quantity: 1 }, { wakeup });
      await until('the event was consumed', () => p!.consumed.has(messageId));
      // Notifications reach a listener in commit order: once this marker has arrived, anything
      // the order's transaction had announced would have arrived before it.
      await announceOutbox(db.pool, OUTBOX_CHANNEL);
      await until('the marker arrived', () => outboxChannel.heard.length > 0);
      assert.equal(outboxChannel.heard.length, 1, 'the order transaction issued no NOTIFY of its own');
    } finally {
      await outboxChannel.close();
    }
  });

  it('wakes another process by one NOTIFY sent after the commit', async () => {
    p = pipeline(60_000, true);
    await p.start();
    // The writing process has no workers of its own: only the notification can wake these.
    wakeup = createWakeup({ mode: 'notify', url: db.url, logger: createSilentLogger() });
    const { messageId } = await placeOrder(db.pool, { productId: 'widget', quantity: 1 }, { wakeup });
    await until('the event was consumed', () => p!.consumed.has(messageId));
    assert.equal(wakeup.sent, 1);
  });

  it('covers a notification lost between the commit and the wake-up by polling', async () => {
    const POLL_MS = 500;
    p = pipeline(POLL_MS, true);
    await p.start();
    // As if the process died right after the commit: its notification never reaches the listener.
    wakeup = createWakeup({ mode: 'notify', url: db.url, logger: createSilentLogger(), channel: NOWHERE });
    const committed = Date.now();
    const { messageId } = await placeOrder(db.pool, { productId: 'widget', quantity: 1 }, { wakeup });
    await until('the event was consumed by a poll', () => p!.consumed.has(messageId), POLL_MS + 10_000);
    assert.ok(p.consumed.get(messageId)! - committed < POLL_MS + 10_000);
  });

  it('coalesces a burst of commits into one notification', async () => {
    const channel = 'outbox_test_burst';
    const burst = await ear(channel);
    try {
      let nudges = 0;
      wakeup = createWakeup({ mode: 'notify', url: db.url, logger: createSilentLogger(), nudgeLocal: () => (nudges += 1), channel });
      for (let i = 0; i < 50; i++) wakeup.committed();
      assert.equal(nudges, 50, 'every commit nudges the local workers at once');
      await until('the notification arrived', () => burst.heard.length > 0);
      await announceOutbox(db.pool, channel); // a marker: everything sent before it has arrived with it
      await until('the marker arrived', () => burst.heard.length > 1);
      assert.equal(wakeup.sent, 1);
      assert.equal(burst.heard.length, 2, 'one notification for fifty commits, then the marker');
    } finally {
      await burst.close();
    }
  });

  it("does not wake the process's own workers a second time with its own notification; another process's still wakes them", async () => {
    const outboxChannel = await ear(OUTBOX_CHANNEL);
    let heardByListener = 0;
    const listener = new OutboxListener({ url: db.url, logger: createSilentLogger(), onNotify: () => (heardByListener += 1), ignorePayload: 'workers-here' });
    await listener.start();
    try {
      const afterConnect = heardByListener; // the catch-up nudge every (re)connect makes
      let nudges = 0;
      wakeup = createWakeup({ mode: 'notify', url: db.url, logger: createSilentLogger(), nudgeLocal: () => (nudges += 1), origin: 'workers-here' });
      wakeup.committed();
      assert.equal(nudges, 1, 'its own workers were nudged in memory');
      await until('its notification went out', () => outboxChannel.heard.includes('workers-here'));
      // Another process's wake-up (no origin of ours), sent after it: it arrives after it too.
      const other = createWakeup({ mode: 'notify', url: db.url, logger: createSilentLogger() });
      other.committed();
      await until("the other process's notification arrived", () => outboxChannel.heard.length >= 2);
      await other.close();
      await until('the listener heard the other one', () => heardByListener > afterConnect);
      assert.equal(heardByListener - afterConnect, 1, 'its own notification was passed on too');
    } finally {
      await listener.close();
      await outboxChannel.close();
    }
  });

  it('WAKEUP=notify-in-transaction announces inside the transaction; WAKEUP=poll announces nothing', async () => {
    const outboxChannel = await ear(OUTBOX_CHANNEL);
    try {
      const inTx = createWakeup({ mode: 'notify-in-transaction', url: db.url, logger: createSilentLogger() });
      const poll = createWakeup({ mode: 'poll', url: db.url, logger: createSilentLogger() });
      await placeOrder(db.pool, { productId: 'widget', quantity: 1 }, { wakeup: poll });
      await placeOrder(db.pool, { productId: 'widget', quantity: 1 }, { wakeup: inTx });
      await announceOutbox(db.pool, OUTBOX_CHANNEL);
      await until('the marker arrived', () => outboxChannel.heard.length >= 2);
      assert.equal(outboxChannel.heard.length, 2, "the in-transaction order's NOTIFY, then the marker; none from WAKEUP=poll");
      assert.equal(inTx.sent + poll.sent, 0);
    } finally {
      await outboxChannel.close();
    }
  });
});
