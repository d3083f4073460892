// The claim stays an index scan that stops after LIMIT rows, however many events wait and
// however much has gone through the table before.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase, type TestDatabase } from '../testkit/database.ts';
import { explainClaim } from './outbox.ts';

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase(import.meta.filename);
});
after(() => db.drop());

async function fill(count: number): Promise<void> {
  await db.pool.query(
    `INSERT INTO outbox (message_id, event_type, aggregate_id, payload)
     SELECT gen_random_uuid(), 'OrderCreated', gen_random_uuid(), '{}' FROM generate_series(1, $1)`,
    [count],
  );
}

function assertIndexScan(plan: string): void {
  assert.match(plan, /Limit[\s\S]*LockRows[\s\S]*Index Scan using outbox_available_idx on outbox/, plan);
  assert.match(plan, /Index Scan using outbox_pkey on outbox/, plan);
  // The per-aggregate rule: one index probe per candidate into each table.
  assert.match(plan, /Index (Only )?Scan using outbox_aggregate_idx on outbox earlier/, plan);
  assert.match(plan, /(Index|Bitmap Index) Scan using dead_letters_aggregate_idx/, plan);
  assert.doesNotMatch(plan, /Seq Scan|Sort|Hash/, plan);
}

describe('the claim query plan', () => {
  it('is an index scan under LIMIT with 50,000 events waiting', async () => {
    await fill(50_000);
    await db.pool.query('ANALYZE outbox');
    assertIndexScan(await explainClaim(db.pool, 10));
    assertIndexScan(await explainClaim(db.pool, 500));
  });

  it('is still an index scan after that backlog was delivered (deleted) and a new one arrived', async () => {
    await db.pool.query('DELETE FROM outbox');
    await fill(5_000);
    await db.pool.query('VACUUM ANALYZE outbox');
    assertIndexScan(await explainClaim(db.pool, 10));
  });

  it('stays index probes with 20,000 events of 10,000 two-event orders and 1,000 dead letters', async () => {
    await db.pool.query('DELETE FROM outbox');
    await db.pool.query(
      `INSERT INTO outbox (message_id, event_type, aggregate_id, aggregate_seq, payload)
       SELECT gen_random_uuid(), CASE WHEN s = 1 THEN 'OrderCreated' ELSE 'OrderCancelled' END,
              md5(n::text)::uuid, s, '{}'
         FROM generate_series(1, 10000) AS n, generate_series(1, 2) AS s`,
    );
    await db.pool.query(
      `INSERT INTO dead_letters (message_id, event_type, aggregate_id, aggregate_seq, payload, attempts, created_at)
       SELECT gen_random_uuid(), 'OrderCreated', gen_random_uuid(), 1, '{}', 5, now() FROM generate_series(1, 1000)`,
    );
    await db.pool.query('ANALYZE outbox');
    await db.pool.query('ANALYZE dead_letters');
    assertIndexScan(await explainClaim(db.pool, 10));
    assertIndexScan(await explainClaim(db.pool, 500));
    await db.pool.query('DELETE FROM dead_letters');
  });

  it('is tuned for churn: autovacuum by a fixed number of dead rows, unthrottled', async () => {
    const { rows } = await db.pool.query<{ reloptions: string[] }>(`SELECT reloptions FROM pg_class WHERE relname = 'outbox'`);
    const options = rows[0]!.reloptions;
    assert.ok(options.includes('autovacuum_vacuum_scale_factor=0'), String(options));
    assert.ok(options.includes('autovacuum_vacuum_cost_delay=0'), String(options));
  });
});
