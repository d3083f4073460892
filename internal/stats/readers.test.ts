// Reads never starve writes: 40 clients looping on GET /stats over a long history, while
// orders are placed. Every order is accepted (no 503), and the readers never hold more than
// their own pool's 2 connections. (The same at 1,000,000 rows, with latencies: npm run bench.)
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { READER_APPLICATION_NAME, type RunningServer } from '../app/wiring.ts';
import { insertHistory } from '../inventory/processed.ts';
import { createTestDatabase, type TestDatabase } from '../testkit/database.ts';
import { startTestServer } from '../testkit/server.ts';
import type { Stats } from './stats.ts';

const HISTORY = 200_000;
const READERS = 40;
const ORDERS = 60;

let db: TestDatabase;
let server: RunningServer;
before(async () => {
  db = await createTestDatabase(import.meta.filename);
  await insertHistory(db.pool, HISTORY, 'history');
  // A short connection wait: a POST starved of its pool would answer 503 quickly, not hide.
  server = await startTestServer(db, { connectionTimeoutMs: 5_000 });
});
after(async () => {
  await server.close();
  await db.drop();
});

describe('GET /stats under 40 concurrent readers', () => {
  it(`${READERS} readers looping while ${ORDERS} orders are placed: every order 201, readers on 2 connections at most`, async () => {
    let reading = true;
    const readStatuses = new Map<number, number>();
    let last: Stats | undefined;
    const readers = Array.from({ length: READERS }, async () => {
      while (reading) {
        const res = await fetch(`${server.url}/stats`);
        readStatuses.set(res.status, (readStatuses.get(res.status) ?? 0) + 1);
        if (res.ok) last = (await res.json()) as Stats;
        else await res.body?.cancel();
      }
    });
    let maxReaderSessions = 0;
    const watcher = (async () => {
      while (reading) {
        const { rows } = await db.pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1`,
          [READER_APPLICATION_NAME],
        );
        maxReaderSessions = Math.max(maxReaderSessions, rows[0]!.n);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();

    const orderStatuses = new Map<number, number>();
    try {
      for (let i = 0; i < ORDERS; i += 5) {
        const responses = await Promise.all(
          Array.from({ length: 5 }, () =>
            fetch(`${server.url}/orders`, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({ productId: 'gizmo', quantity: 1, userId: 'readers' }),
            }),
          ),
        );
        for (const res of responses) {
          orderStatuses.set(res.status, (orderStatuses.get(res.status) ?? 0) + 1);
          await res.body?.cancel();
        }
      }
    } finally {
      reading = false;
      await Promise.all([...readers, watcher]);
    }

    assert.deepEqual(Object.fromEntries(orderStatuses), { 201: ORDERS }, 'every order accepted, none 503');
    assert.deepEqual([...readStatuses.keys()], [200], `reads: ${JSON.stringify(Object.fromEntries(readStatuses))}`);
    assert.ok(maxReaderSessions >= 1 && maxReaderSessions <= 2, `reader sessions: ${maxReaderSessions}`);
    // The history counts, exactly, without being counted per request.
    assert.ok(last && last.deliveriesByWorker.history === HISTORY, JSON.stringify(last?.deliveriesByWorker));
    assert.ok(last.processed.applied >= HISTORY);
  });

  it('past the exact-count limit a number is a lower bound, and says so', async () => {
    const { readStats } = await import('./stats.ts');
    await db.pool.query(
      `INSERT INTO dead_letters (message_id, event_type, aggregate_id, payload, attempts, created_at)
       SELECT gen_random_uuid(), 'OrderCreated', gen_random_uuid(), '{}', 5, now() FROM generate_series(1, 5)`,
    );
    // Events the relay cannot take (available only tomorrow): a backlog of 3.
    await db.pool.query(
      `INSERT INTO outbox (message_id, event_type, aggregate_id, payload, available_at)
       SELECT gen_random_uuid(), 'OrderCreated', gen_random_uuid(), '{}', now() + interval '1 day' FROM generate_series(1, 3)`,
    );
    const capped = await readStats(db.pool, { exactCountLimit: 2 });
    assert.equal(capped.deadLetters, 2);
    assert.ok(capped.outbox.pending >= 3, 'the estimate is at least past the limit');
    assert.ok(capped.estimated.includes('outbox.pending'), JSON.stringify(capped.estimated));
    assert.ok(capped.estimated.includes('deadLetters'), JSON.stringify(capped.estimated));
    const exact = await readStats(db.pool);
    assert.equal(exact.deadLetters, 5);
    assert.ok(exact.outbox.pending >= 3); // and the first test's orders, if the relay is still at them
    assert.ok(exact.signals.outboxOldestEventAgeSeconds >= 0);
    assert.deepEqual(exact.estimated, ['signals.outboxDeadTuples']);
    assert.ok(exact.signals.deadLetterOldestAgeSeconds >= 0);
  });
});
