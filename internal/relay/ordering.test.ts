// Issue 16, the relay's half: a claim never takes an event while an earlier event of its
// aggregate is still in the outbox or parked in dead_letters, and events of other aggregates
// keep flowing meanwhile. claimIgnoringOrder (the claim without the rule) is the control.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import { AppError } from '../errors/errors.ts';
import { Janitor } from '../janitor/janitor.ts';
import { createSilentLogger } from '../log/logger.ts';
import { purgeDeadLetters, recordReceivedDeadLetter, redriveDeadLetters } from '../outbox/dead-letters.ts';
import {
  countParkedEvents, createOutboxStore, enqueueEvent, ORDER_CANCELLED, ORDER_CREATED, summarizeOutbox,
  type OutboxEvent, type OutboxStore,
} from '../outbox/outbox.ts';
import { createTestDatabase, emptyPipelineTables, type TestDatabase } from '../testkit/database.ts';
import { storeIgnoringOrder } from './ordering-control.ts';
import { Relay } from './relay.ts';

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase(import.meta.filename);
});
after(() => db.drop());
beforeEach(() => emptyPipelineTables(db.pool));

// A backoff far longer than any test step: "not yet" cannot become "already" on a slow machine.
const SETTINGS = { batchSize: 10, leaseMs: 30_000, retryBaseMs: 60_000, retryMaxMs: 60_000 };

function enqueue(aggregateId: string, sequence: number): Promise<void> {
  const eventType = sequence === 1 ? ORDER_CREATED : ORDER_CANCELLED;
  return enqueueEvent(db.pool, { messageId: randomUUID(), eventType, aggregateId, payload: { orderId: aggregateId }, sequence });
}

/** A consumer stand-in: records what it committed, in order; `fail` decides a delivery's fate. */
function recordingDeliver(fail: (event: OutboxEvent, attempt: number) => Error | undefined = () => undefined) {
  const delivered: Array<{ aggregateId: string; sequence: number }> = [];
  const tries = new Map<string, number>();
  const deliver = async (event: OutboxEvent) => {
    const attempt = (tries.get(event.messageId) ?? 0) + 1;
    tries.set(event.messageId, attempt);
    const error = fail(event, attempt);
    if (error) throw error;
    delivered.push({ aggregateId: event.aggregateId, sequence: event.sequence });
    return 'applied';
  };
  return { deliver, delivered, sequencesOf: (id: string) => delivered.filter((d) => d.aggregateId === id).map((d) => d.sequence) };
}

function relayWith(store: OutboxStore, deliver: ReturnType<typeof recordingDeliver>['deliver'], workers = 1) {
  return new Relay({ store, deliver, logger: createSilentLogger() }, { workers, pollIntervalMs: 20, maxAttempts: 5 });
}

/** Ends the backoff of every waiting event of `aggregateId` now (instead of sleeping it out). */
async function endBackoff(aggregateId: string): Promise<void> {
  await db.pool.query(`UPDATE outbox SET available_at = now() WHERE aggregate_id = $1 AND available_at < 'infinity'`, [aggregateId]);
}

async function outboxRows(): Promise<Array<{ aggregate_seq: number; parked: boolean }>> {
  const { rows } = await db.pool.query(`SELECT aggregate_seq, available_at = 'infinity' AS parked FROM outbox ORDER BY aggregate_seq`);
  return rows;
}

/** seq 1 fails its first delivery into a long backoff; seq 2 is written during that backoff. */
async function raceBackoff(store: OutboxStore) {
  const order = randomUUID();
  const consumer = recordingDeliver((event, attempt) => (event.sequence === 1 && attempt === 1 ? new Error('consumer unavailable') : undefined));
  const relay = relayWith(store, consumer.deliver);
  await enqueue(order, 1);
  assert.equal(await relay.runOnce('Worker-1'), 1); // fails: backoff of at least 30 s
  await enqueue(order, 2); // the cancellation arrives during the backoff
  const duringBackoff = await relay.runOnce('Worker-1');
  await endBackoff(order);
  while ((await relay.runOnce('Worker-1')) > 0);
  return { order, consumer, duringBackoff };
}

describe('the claim keeps the events of one aggregate in order', () => {
  it('does not take seq 2 while seq 1 backs off; delivers 1 then 2', async () => {
    const { order, consumer, duringBackoff } = await raceBackoff(createOutboxStore(db.pool, SETTINGS));
    assert.equal(duringBackoff, 0, 'seq 2 was claimed while seq 1 was backing off');
    assert.deepEqual(consumer.sequencesOf(order), [1, 2]);
    assert.equal((await db.pool.query('SELECT 1 FROM outbox')).rowCount, 0);
  });

  it('control: the claim without the rule delivers seq 2 first', async () => {
    const { order, consumer, duringBackoff } = await raceBackoff(storeIgnoringOrder(db.pool, SETTINGS));
    assert.equal(duringBackoff, 1);
    assert.deepEqual(consumer.sequencesOf(order), [2, 1]);
  });

  it('5 workers, 200 orders of two events, first deliveries failing at random: every order 1 then 2', async () => {
    const orders = Array.from({ length: 200 }, () => randomUUID());
    for (const order of orders) await enqueue(order, 1);
    for (const order of orders) await enqueue(order, 2);
    let seed = 7;
    const random = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    const consumer = recordingDeliver((_event, attempt) => (attempt === 1 && random() < 0.3 ? new Error('flaky') : undefined));
    const store = createOutboxStore(db.newPool(6), { ...SETTINGS, retryBaseMs: 20, retryMaxMs: 50 });
    const relay = relayWith(store, consumer.deliver, 5);
    relay.start();
    try {
      const deadline = Date.now() + 60_000;
      while ((await db.pool.query('SELECT 1 FROM outbox')).rowCount! > 0) {
        assert.ok(Date.now() < deadline, 'the outbox did not drain within 60 s');
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    } finally {
      await relay.stop();
    }
    const wrong = orders.filter((order) => consumer.sequencesOf(order).join() !== '1,2');
    assert.deepEqual(wrong, [], `${wrong.length} orders delivered out of order`);
  });
});

describe('the next event of an aggregate goes as soon as its predecessor is deleted', () => {
  it('no poll needed: deleting seq 1 nudges the workers, which claim seq 2 (poll interval 1 hour)', async () => {
    const order = randomUUID();
    await enqueue(order, 1);
    await enqueue(order, 2);
    const consumer = recordingDeliver();
    const relay = new Relay(
      { store: createOutboxStore(db.pool, SETTINGS), deliver: consumer.deliver, logger: createSilentLogger() },
      { workers: 1, pollIntervalMs: 3_600_000, maxAttempts: 5 },
    );
    relay.start();
    try {
      // The claim at start takes seq 1 only (seq 2 waits behind it); nothing else wakes the
      // worker but the completion of seq 1.
      for (let i = 0; i < 200 && consumer.sequencesOf(order).length < 2; i++) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.deepEqual(consumer.sequencesOf(order), [1, 2]);
    } finally {
      await relay.stop();
    }
  });
});

describe('a dead-lettered event parks the later events of its aggregate', () => {
  /** `aggregateId`'s first event is poison until re-driven. */
  const poisonFirst = (aggregateId: string) =>
    recordingDeliver((event) =>
      event.aggregateId === aggregateId && event.sequence === 1 && !redriven ? new AppError('POISON_MESSAGE', 'cannot parse') : undefined,
    );
  let redriven = false;
  beforeEach(() => {
    redriven = false;
  });

  it('parks seq 2 (infinity, counted, not claimed) and a re-drive brings both through in order', async () => {
    const order = randomUUID();
    await enqueue(order, 1);
    await enqueue(order, 2);
    const store = createOutboxStore(db.pool, SETTINGS);
    const consumer = poisonFirst(order);
    const relay = relayWith(store, consumer.deliver);
    assert.equal(await relay.runOnce('Worker-1'), 1); // seq 1 only: seq 2 waits behind it

    assert.deepEqual(await outboxRows(), [{ aggregate_seq: 2, parked: true }]);
    const { rows: dead } = await db.pool.query('SELECT aggregate_id, aggregate_seq FROM dead_letters');
    assert.deepEqual(dead, [{ aggregate_id: order, aggregate_seq: 1 }]);
    assert.equal(await countParkedEvents(db.pool, 100), 1);
    assert.equal((await summarizeOutbox(db.pool, 100)).counts.parked, 1);
    assert.equal((await store.claim('Worker-1')).events.length, 0);

    redriven = true;
    assert.equal((await redriveDeadLetters(db.pool)).length, 1);
    assert.deepEqual(await outboxRows(), [{ aggregate_seq: 1, parked: false }, { aggregate_seq: 2, parked: false }]);
    assert.equal(await countParkedEvents(db.pool, 100), 0);
    while ((await relay.runOnce('Worker-1')) > 0);
    assert.deepEqual(consumer.sequencesOf(order), [1, 2]);
    assert.equal((await db.pool.query('SELECT 1 FROM outbox UNION ALL SELECT 1 FROM dead_letters')).rowCount, 0);
  });

  it('purging the dead letter (giving up on it) gives up on the events parked behind it too; nothing waits forever', async () => {
    const order = randomUUID();
    await enqueue(order, 1);
    await enqueue(order, 2);
    const relay = relayWith(createOutboxStore(db.pool, SETTINGS), poisonFirst(order).deliver);
    assert.equal(await relay.runOnce('Worker-1'), 1);
    assert.deepEqual(await outboxRows(), [{ aggregate_seq: 2, parked: true }]);
    await db.pool.query(`UPDATE dead_letters SET dead_at = now() - interval '40 days'`);
    const purged = await purgeDeadLetters(db.pool, 30 * 86_400_000, 100);
    // Both reported: the dead letter, and the event that could never be applied in order after it.
    assert.deepEqual(purged.map((p) => [p.aggregateId, p.sequence, p.behind]), [[order, 1, false], [order, 2, true]]);
    assert.deepEqual(await outboxRows(), [], 'nothing left to defer forever');
    assert.equal(await countParkedEvents(db.pool, 100), 0);
    // An event of that order written after the purge (a cancellation) is not early for the
    // consumer of this database: the position moved past everything given up.
    assert.deepEqual((await db.pool.query('SELECT last_seq FROM inbox_positions WHERE aggregate_id = $1', [order])).rows, [{ last_seq: 2 }]);
  });

  it("purging a RECEIVED dead letter moves this service's position past it, so the later events of its aggregate apply", async () => {
    const order = randomUUID();
    await recordReceivedDeadLetter(db.pool, { stream: 'ORDERS', messageId: randomUUID(), eventType: ORDER_CREATED, aggregateId: order, payload: {}, sequence: 1, deliveries: 5 }, 'boom');
    await db.pool.query(`UPDATE dead_letters SET dead_at = now() - interval '40 days'`);
    const purged = await purgeDeadLetters(db.pool, 30 * 86_400_000, 100);
    assert.deepEqual(purged.map((p) => [p.sequence, p.behind]), [[1, false]]);
    // The consumer's next event of that order (its cancellation, 2) is now the next one, not early.
    assert.deepEqual((await db.pool.query('SELECT last_seq FROM inbox_positions WHERE aggregate_id = $1', [order])).rows, [{ last_seq: 1 }]);
  });

  it('other aggregates keep flowing, in parallel, while one is parked', async () => {
    const parked = randomUUID();
    const others = Array.from({ length: 30 }, () => randomUUID());
    await enqueue(parked, 1);
    await enqueue(parked, 2);
    for (const other of others) await enqueue(other, 1);
    for (const other of others) await enqueue(other, 2);
    const consumer = poisonFirst(parked);
    let running = 0;
    let mostAtOnce = 0;
    const deliver = async (event: OutboxEvent) => {
      running += 1;
      mostAtOnce = Math.max(mostAtOnce, running);
      try {
        await new Promise((resolve) => setTimeout(resolve, 5));
        return await consumer.deliver(event);
      } finally {
        running -= 1;
      }
    };
    const relay = relayWith(createOutboxStore(db.newPool(4), SETTINGS), deliver, 3);
    relay.start();
    try {
      const deadline = Date.now() + 30_000;
      while (consumer.delivered.length < 60) {
        assert.ok(Date.now() < deadline, `only ${consumer.delivered.length} of 60 delivered`);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    } finally {
      await relay.stop();
    }
    for (const other of others) assert.deepEqual(consumer.sequencesOf(other), [1, 2]);
    assert.deepEqual(consumer.sequencesOf(parked), []);
    assert.deepEqual(await outboxRows(), [{ aggregate_seq: 2, parked: true }]);
    assert.ok(mostAtOnce >= 2, `deliveries never overlapped (${mostAtOnce})`);
  });

  it("the janitor parks an event written after its predecessor's dead-lettering, and un-parks it once that dead letter is gone", async () => {
    const order = randomUUID();
    await enqueue(order, 1);
    const store = createOutboxStore(db.pool, SETTINGS);
    const relay = relayWith(store, poisonFirst(order).deliver);
    await relay.runOnce('Worker-1'); // seq 1 → dead_letters
    await enqueue(order, 2); // a stray: written after, so nobody parked it
    assert.deepEqual(await outboxRows(), [{ aggregate_seq: 2, parked: false }]);
    assert.equal((await store.claim('Worker-1')).events.length, 0, 'the claim rule holds it back anyway');

    const janitor = new Janitor(
      { pool: db.pool, logger: createSilentLogger() },
      { intervalMs: 60_000, inboxRetentionMs: 86_400_000, replayCopyRetentionMs: 86_400_000, idempotencyKeyTtlMs: 86_400_000 },
    );
    const first = await janitor.runOnce();
    assert.ok(first.elected);
    assert.deepEqual(first.parking, { parked: 1, unparked: 0 });
    assert.deepEqual(await outboxRows(), [{ aggregate_seq: 2, parked: true }]);

    // The dead letter is removed without a re-drive (a person purged it): seq 2 is an orphan.
    await db.pool.query('DELETE FROM dead_letters');
    const second = await janitor.runOnce();
    assert.ok(second.elected);
    assert.deepEqual(second.parking, { parked: 0, unparked: 1 });
    assert.deepEqual(await outboxRows(), [{ aggregate_seq: 2, parked: false }]);
    const claim = await store.claim('Worker-1');
    assert.deepEqual(claim.events.map((e) => e.sequence), [2]);
  });

  it("a broker's dead letter (received_from) never holds back this outbox", async () => {
    const order = randomUUID();
    await db.pool.query(
      `INSERT INTO dead_letters (message_id, event_type, aggregate_id, aggregate_seq, payload, attempts, created_at, received_from)
       VALUES (gen_random_uuid(), 'StockReserved', $1, 1, '{}', 5, now(), 'INVENTORY')`,
      [order],
    );
    await enqueue(order, 2);
    const claim = await createOutboxStore(db.pool, SETTINGS).claim('Worker-1');
    assert.deepEqual(claim.events.map((e) => e.sequence), [2]);
  });
});
