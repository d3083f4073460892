// The janitor against a real PostgreSQL: what it deletes, what it must keep, in batches, and
// only one janitor at a time. Rows are made old by moving their timestamps back in SQL.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import { DEFAULTS } from '../config/config.ts';
import type { Pool } from '../db/pool.ts';
import { countOrdersAppliedTwice } from '../inventory/processed.ts';
import { createSilentLogger } from '../log/logger.ts';
import { createTestDatabase, emptyPipelineTables, type TestDatabase } from '../testkit/database.ts';
import { Janitor, type JanitorHooks, type JanitorObserver, type JanitorPass, type JanitorSettings } from './janitor.ts';

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase(import.meta.filename);
});
after(() => db.drop());
beforeEach(() => emptyPipelineTables(db.pool));

const SETTINGS: JanitorSettings = {
  intervalMs: DEFAULTS.janitorIntervalMs,
  inboxRetentionMs: DEFAULTS.inboxRetentionMs,
  replayCopyRetentionMs: DEFAULTS.replayCopyRetentionMs,
  idempotencyKeyTtlMs: DEFAULTS.idempotencyKeyTtlMs,
  pauseMs: 1,
};

function janitor(pool: Pool = db.pool, settings: Partial<JanitorSettings> = {}, extra: { hooks?: JanitorHooks; observer?: JanitorObserver } = {}) {
  return new Janitor({ pool, logger: createSilentLogger(), ...extra }, { ...SETTINGS, ...settings });
}

async function elected(j: Janitor): Promise<JanitorPass> {
  const result = await j.runOnce();
  assert.ok(result.elected, 'this janitor should have won the lock');
  return result;
}

/** Inserts processed_messages rows processed `daysAgo` days ago; returns their ids. */
async function processed(n: number, daysAgo: number): Promise<string[]> {
  const ids = Array.from({ length: n }, () => randomUUID());
  await db.pool.query(
    `INSERT INTO processed_messages (message_id, outcome, handled_by, event_type, payload, processed_at)
     SELECT id, 'applied', 'Worker-1', 'OrderCreated', '{"orderId":"x"}', now() - make_interval(days => $2)
       FROM unnest($1::uuid[]) AS id`,
    [ids, daysAgo],
  );
  return ids;
}

async function existing(ids: string[]): Promise<Set<string>> {
  const { rows } = await db.pool.query<{ message_id: string }>(`SELECT message_id FROM processed_messages WHERE message_id = ANY($1::uuid[])`, [ids]);
  return new Set(rows.map((r) => r.message_id));
}

async function count(table: string): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
  return rows[0]!.n;
}

describe('janitor: processed_messages', () => {
  it('deletes rows older than INBOX_RETENTION and keeps younger ones', async () => {
    const old = await processed(5, 8);
    const young = await processed(5, 6);
    const pass = await elected(janitor());
    assert.equal(pass.pruned.processed_messages, 5);
    const left = await existing([...old, ...young]);
    assert.deepEqual([...left].sort(), [...young].sort());
  });

  it('keeps an old row whose message is still in the outbox or in dead_letters', async () => {
    const [inOutbox, dead, free] = await processed(3, 30);
    await db.pool.query(
      `INSERT INTO outbox (message_id, event_type, aggregate_id, payload) VALUES ($1, 'OrderCreated', $2, '{}')`,
      [inOutbox, randomUUID()],
    );
    await db.pool.query(
      `INSERT INTO dead_letters (message_id, event_type, aggregate_id, payload, attempts, created_at)
       VALUES ($1, 'OrderCreated', $2, '{}', 5, now() - interval '30 days')`,
      [dead, randomUUID()],
    );
    const pass = await elected(janitor());
    assert.equal(pass.pruned.processed_messages, 1);
    assert.deepEqual([...(await existing([inOutbox!, dead!, free!]))].sort(), [inOutbox, dead].sort());
  });

  it('drops the replay copy after REPLAY_COPY_RETENTION while the row stays', async () => {
    const [older] = await processed(1, 2);
    const [recent] = await db.pool
      .query(`INSERT INTO processed_messages (message_id, outcome, handled_by, event_type, payload, processed_at)
              VALUES ($1, 'applied', 'Worker-1', 'OrderCreated', '{}', now() - interval '1 hour') RETURNING message_id`, [randomUUID()])
      .then((r) => r.rows.map((row) => row.message_id as string));
    const pass = await elected(janitor());
    assert.equal(pass.copiesDropped, 1);
    assert.equal(pass.pruned.processed_messages, 0);
    const { rows } = await db.pool.query(`SELECT message_id, event_type, payload FROM processed_messages ORDER BY processed_at`);
    assert.deepEqual(rows, [
      { message_id: older, event_type: null, payload: null },
      { message_id: recent, event_type: 'OrderCreated', payload: {} },
    ]);
  });

  it('rows whose copy was dropped are not mistaken for one order applied twice', async () => {
    await processed(3, 2);
    await elected(janitor());
    assert.equal(await countOrdersAppliedTwice(db.pool), 0);
  });

  it('deletes in batches: a limit smaller than the rows takes several statements, and all go', async () => {
    await processed(25, 10);
    const sizes: number[] = [];
    const pass = await elected(
      janitor(db.pool, { batchSize: 10 }, { hooks: { afterBatch: (table, rows) => void (table === 'processed_messages' && sizes.push(rows)) } }),
    );
    assert.deepEqual(sizes, [10, 10, 5]);
    assert.equal(pass.pruned.processed_messages, 25);
    assert.equal(await count('processed_messages'), 0);
  });
});

describe('janitor: skipped_duplicates and idempotency_keys', () => {
  it('deletes skipped duplicates older than INBOX_RETENTION, keeps younger ones', async () => {
    await db.pool.query(
      `INSERT INTO skipped_duplicates (message_id, handled_by, skipped_at)
       SELECT gen_random_uuid(), 'Worker-1', now() - make_interval(days => d) FROM unnest(ARRAY[8, 9, 1]) AS d`,
    );
    const pass = await elected(janitor());
    assert.equal(pass.pruned.skipped_duplicates, 2);
    assert.equal(await count('skipped_duplicates'), 1);
  });

  it('deletes Idempotency-Keys older than IDEMPOTENCY_KEY_TTL (their orders stay)', async () => {
    for (const [key, hoursAgo] of [['old', 25], ['new', 23]] as const) {
      const orderId = randomUUID();
      await db.pool.query(`INSERT INTO orders (id, product_id, quantity) VALUES ($1, 'widget', 1)`, [orderId]);
      await db.pool.query(
        `INSERT INTO idempotency_keys (key, request_hash, order_id, created_at) VALUES ($1, 'h', $2, now() - make_interval(hours => $3))`,
        [key, orderId, hoursAgo],
      );
    }
    const pass = await elected(janitor());
    assert.equal(pass.pruned.idempotency_keys, 1);
    const { rows } = await db.pool.query(`SELECT key FROM idempotency_keys`);
    assert.deepEqual(rows, [{ key: 'new' }]);
    assert.equal(await count('orders'), 2);
  });

  it('reports the lag (how long the oldest due row waited) and what it pruned to its observer', async () => {
    await processed(1, 9); // the row is due for 2 days, its replay copy (kept 1 day) for 8
    const seen: { lag: number[]; passes: JanitorPass[] } = { lag: [], passes: [] };
    const observer: JanitorObserver = {
      onLag: (s) => seen.lag.push(s), onPass: (p) => seen.passes.push(p), onNotElected: () => {}, onFailed: () => {},
    };
    const j = janitor(db.pool, {}, { observer });
    await elected(j);
    await elected(j);
    assert.ok(Math.abs(seen.lag[0]! - 8 * 86_400) < 60, `lag ${seen.lag[0]} s, expected about 8 days`);
    assert.equal(seen.lag[1], 0);
    assert.deepEqual(seen.passes.map((p) => p.pruned.processed_messages), [1, 0]);
  });
});

describe('janitor: one per database', () => {
  it('while one pass runs, a janitor on another pool is not elected and deletes nothing', async () => {
    await processed(6, 10);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let inPass!: () => void;
    const started = new Promise<void>((resolve) => (inPass = resolve));
    const first = janitor(db.newPool(2, 'outbox-demo:janitor-a'), { batchSize: 2 }, {
      hooks: {
        afterBatch: async (table) => {
          if (table !== 'processed_messages') return;
          inPass();
          await held;
        },
      },
    });
    let secondDeleted = 0;
    const second = janitor(db.newPool(2, 'outbox-demo:janitor-b'), { batchSize: 2 }, {
      hooks: { afterBatch: (_table, rows) => void (secondDeleted += rows) },
    });
    const firstPass = first.runOnce();
    await started;
    assert.deepEqual(await second.runOnce(), { elected: false });
    assert.equal(secondDeleted, 0);
    release();
    const done = await firstPass;
    assert.ok(done.elected);
    assert.equal(done.pruned.processed_messages, 6);
    // The lock was given back: now the second one is elected.
    assert.ok((await second.runOnce()).elected);
  });

  it('two janitors looping on two pools never prune at the same time, and together prune everything', async () => {
    await processed(40, 10);
    let active = 0;
    let overlap = false;
    const hooks: JanitorHooks = {
      afterBatch: async () => {
        active += 1;
        if (active > 1) overlap = true;
        await new Promise((resolve) => setTimeout(resolve, 5));
        active -= 1;
      },
    };
    const a = janitor(db.newPool(2), { batchSize: 3 }, { hooks });
    const b = janitor(db.newPool(2), { batchSize: 3 }, { hooks });
    const results = await Promise.all([a.runOnce(), b.runOnce(), a.runOnce(), b.runOnce()]);
    assert.equal(overlap, false);
    assert.ok(results.some((r) => r.elected));
    assert.equal(await count('processed_messages'), 0);
  });

  it('the loop makes its first pass soon after start, and stop() ends it', async () => {
    await processed(3, 10);
    const passes: JanitorPass[] = [];
    const observer: JanitorObserver = { onLag: () => {}, onPass: (p) => passes.push(p), onNotElected: () => {}, onFailed: () => {} };
    const j = janitor(db.pool, { firstPassDelayMs: 10, intervalMs: 60_000 }, { observer });
    j.start();
    const deadline = Date.now() + 30_000;
    while (passes.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    await j.stop();
    assert.equal(passes[0]?.pruned.processed_messages, 3);
    assert.equal(passes.length, 1, 'the next pass waits for the interval');
  });
});
