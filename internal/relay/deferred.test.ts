// A delivery the consumer defers (DEFERRED: an earlier event of its aggregate is not applied
// yet) is given back uncounted after a short delay: however many times, it is never
// dead-lettered, and a real failure afterwards still gets all its attempts.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import { AppError } from '../errors/errors.ts';
import { deferred } from '../inventory/consumer.ts';
import { createMemoryLogger } from '../log/logger.ts';
import { createOutboxStore, enqueueEvent } from '../outbox/outbox.ts';
import { createTestDatabase, emptyPipelineTables, type TestDatabase } from '../testkit/database.ts';
import { Relay, type Deliver } from './relay.ts';

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase(import.meta.filename);
});
after(() => db.drop());
beforeEach(() => emptyPipelineTables(db.pool));

async function rows(sql: string) {
  return (await db.pool.query(sql)).rows;
}

describe('a deferred delivery', () => {
  it('is retried uncounted past MAX_ATTEMPTS deferrals, then a real failure still gets all its attempts', async () => {
    const aggregateId = randomUUID();
    await enqueueEvent(db.pool, { messageId: randomUUID(), eventType: 'OrderCancelled', aggregateId, payload: {} });
    const logger = createMemoryLogger();
    let calls = 0;
    const deliver: Deliver = async () => {
      calls += 1;
      if (calls <= 8) throw deferred(aggregateId, 2);
      if (calls <= 12) throw new AppError('INTERNAL', 'database hiccup');
      return 'released';
    };
    const seen = { failed: 0, deferred: 0 };
    const observer = { onClaimed() {}, onDelivered() {}, onFailed: () => void (seen.failed += 1), onDeferred: () => void (seen.deferred += 1) };
    const relay = new Relay(
      { store: createOutboxStore(db.pool, { batchSize: 10, leaseMs: 30_000, retryBaseMs: 1, retryMaxMs: 1 }), deliver, logger, observer },
      { workers: 1, pollIntervalMs: 20, maxAttempts: 5, deferRetryMs: 1 },
    );
    for (let i = 0; i < 100 && calls < 13; i++) {
      await relay.runOnce('Worker-1');
      await new Promise((resolve) => setTimeout(resolve, 3));
    }
    assert.equal(calls, 13, '8 deferrals + 4 failures + 1 success');
    assert.deepEqual(await rows('SELECT message_id FROM dead_letters'), [], 'never dead-lettered');
    assert.deepEqual(await rows('SELECT id FROM outbox'), [], 'delivered and deleted');
    const lines = logger.records.filter((r) => r.message.startsWith('deferred: '));
    assert.equal(lines.length, 8);
    assert.equal(lines[0]!.level, 'info');
    assert.match(lines[0]!.message, new RegExp(`^deferred: waiting for event 1 of order ${aggregateId} .*attempt not counted`));
    // The metrics tell them apart: a deferral is not a failed delivery.
    assert.deepEqual(seen, { failed: 4, deferred: 8 });
    // The failures after the deferrals were counted from 1: the fourth was attempt 4 of 5.
    assert.ok(logger.records.some((r) => /\(attempt 4\/5\): database hiccup/.test(r.message)));
  });
});
