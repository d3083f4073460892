// Found while chasing issue 17's drain: the claim is a prepared statement, and PostgreSQL may
// keep one generic plan for it per connection. A plan made while the outbox was empty (a quiet
// spell, the table just analysed) scans the outbox for every row the claim walks; with a
// backlog after an outage, each claim then reads the table once per waiting event (20,000
// events: 42 s a claim). The relay's connections plan every claim for the outbox as it is.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { relayPoolOptions } from '../app/workers.ts';
import { closePool, createPool, type Queryable } from '../db/pool.ts';
import { createSilentLogger } from '../log/logger.ts';
import { claimEvents } from '../outbox/outbox.ts';
import { createTestDatabase, type TestDatabase } from '../testkit/database.ts';

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase(import.meta.filename);
});
after(() => db.drop());

/** Rows of the outbox read by any scan so far, as the statistics collector counts them. */
async function outboxRowsRead(pool: Queryable): Promise<number> {
  const { rows } = await pool.query<{ n: string }>(
    `SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) AS n FROM pg_stat_user_tables WHERE relname = 'outbox'`,
  );
  return Number(rows[0]!.n);
}

describe('the relay plans each claim for the outbox as it is', () => {
  it('claims that ran while the outbox was empty leave no plan that reads a later backlog row by row', async () => {
    // One connection, so every claim and the statistics flush below happen in one session.
    const base = relayPoolOptions({ url: db.url, connectionTimeoutMs: 10_000, statementTimeoutMs: 60_000 }, 1);
    const relayPool = createPool({ ...base, min: 0, max: 1 }, createSilentLogger());
    const claim = () => claimEvents(relayPool, { workerName: 'Worker-1', batchSize: 10, leaseMs: 30_000 });
    try {
      await db.pool.query('ANALYZE outbox'); // empty, as autovacuum leaves it between bursts
      for (let i = 0; i < 10; i++) assert.equal((await claim()).events.length, 0);

      await db.pool.query(
        `INSERT INTO outbox (message_id, event_type, aggregate_id, payload)
         SELECT gen_random_uuid(), 'OrderCreated', gen_random_uuid(), '{}' FROM generate_series(1, 5000)`,
      );
      // A session sends its counts at most once a second unless told to: flush around the claim.
      const flushed = () => relayPool.query('SELECT pg_stat_force_next_flush()');
      await flushed();
      const before = await outboxRowsRead(db.pool);
      assert.equal((await claim()).events.length, 10);
      await flushed();
      const read = (await outboxRowsRead(db.pool)) - before;
      // An index scan of the oldest ten and a probe per row: dozens. The empty-table plan: 25 million.
      assert.ok(read < 1_000, `one claim read ${read} outbox rows with 5,000 waiting`);
      const { rows } = await relayPool.query<{ generic_plans: string }>(
        `SELECT generic_plans FROM pg_prepared_statements WHERE name = 'outbox-claim'`,
      );
      assert.equal(Number(rows[0]!.generic_plans), 0, 'every claim was planned for the outbox as it was');
    } finally {
      await closePool(relayPool);
    }
  });
});
