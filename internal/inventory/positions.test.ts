// The consumer's position check on its own: next → advance, early → deferred, stale → poison,
// and two events of one order in two transactions at the same moment never both advance.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import { withTransaction } from '../db/transaction.ts';
import { createTestDatabase, emptyPipelineTables, type TestDatabase } from '../testkit/database.ts';
import { ADVANCE_POSITIONS_SQL, advancePosition, advancePositions, positionOf, RECORD_IN_ORDER_SQL, recordInOrder } from './positions.ts';

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase(import.meta.filename);
});
after(() => db.drop());
beforeEach(() => emptyPipelineTables(db.pool));

describe('the position check', () => {
  it('advances on the next event, defers an early one, calls a stale one stale', async () => {
    const order = randomUUID();
    assert.deepEqual(await advancePosition(db.pool, order, 2), { verdict: 'early', lastSeq: 0 });
    assert.equal(await positionOf(db.pool, order), 0, 'an early event moves nothing');
    assert.deepEqual(await advancePosition(db.pool, order, 1), { verdict: 'next', lastSeq: 1 });
    assert.deepEqual(await advancePosition(db.pool, order, 1), { verdict: 'stale', lastSeq: 1 });
    assert.deepEqual(await advancePosition(db.pool, order, 3), { verdict: 'early', lastSeq: 1 });
    assert.deepEqual(await advancePosition(db.pool, order, 2), { verdict: 'next', lastSeq: 2 });
    assert.deepEqual(await advancePosition(db.pool, order, 2), { verdict: 'stale', lastSeq: 2 });
    assert.deepEqual(await advancePosition(db.pool, order, 1), { verdict: 'stale', lastSeq: 2 });
    assert.equal(await positionOf(db.pool, order), 2);
    assert.equal(await positionOf(db.pool, randomUUID()), 0, 'orders are independent');
  });

  it('seq 2 while seq 1 is uncommitted in another transaction: early, never applied alongside it', async () => {
    const order = randomUUID();
    const other = db.newPool(2);
    let release!: () => void;
    const holding = new Promise<void>((resolve) => (release = resolve));
    let inserted!: () => void;
    const seq1Inserted = new Promise<void>((resolve) => (inserted = resolve));
    // Transaction A applies seq 1 and holds its commit.
    const a = withTransaction(other, async (tx) => {
      assert.equal((await advancePosition(tx, order, 1)).verdict, 'next');
      inserted();
      await holding;
    });
    await seq1Inserted;
    // Transaction B, at the same moment, with seq 2: A's row is invisible to it, so it is early.
    const b = await withTransaction(db.pool, (tx) => advancePosition(tx, order, 2));
    assert.equal(b.verdict, 'early');
    release();
    await a;
    assert.deepEqual(await withTransaction(db.pool, (tx) => advancePosition(tx, order, 2)), { verdict: 'next', lastSeq: 2 });
  });

  it('a second copy of seq 2 while another transaction advances 1 → 2: never advances again; judged stale next time', async () => {
    const order = randomUUID();
    await advancePosition(db.pool, order, 1);
    const other = db.newPool(2);
    let release!: () => void;
    const holding = new Promise<void>((resolve) => (release = resolve));
    let moved!: () => void;
    const advanced = new Promise<void>((resolve) => (moved = resolve));
    const a = withTransaction(other, async (tx) => {
      assert.equal((await advancePosition(tx, order, 2)).verdict, 'next');
      moved();
      await holding;
    });
    await advanced;
    // Another copy of event 2 (a new message id) waits on A's row lock; once A commits, the
    // UPDATE re-checks the committed row (last_seq is 2 now) and does not match.
    const b = withTransaction(db.pool, (tx) => advancePosition(tx, order, 2));
    await new Promise((resolve) => setTimeout(resolve, 100));
    release();
    await a;
    // Its snapshot still said 1, so it is deferred rather than called stale: harmless, it comes again…
    assert.notEqual((await b).verdict, 'next');
    // …and then it is stale for certain.
    assert.equal((await withTransaction(db.pool, (tx) => advancePosition(tx, order, 2))).verdict, 'stale');
    assert.equal(await positionOf(db.pool, order), 2);
  });

  it('two copies of seq 1 at once (different message ids): one advances, the other is stale', async () => {
    for (let round = 0; round < 10; round++) {
      const order = randomUUID();
      const pools = [db.newPool(1), db.newPool(1)];
      const verdicts = await Promise.all(pools.map((pool) => withTransaction(pool, (tx) => advancePosition(tx, order, 1))));
      assert.deepEqual(verdicts.map((v) => v.verdict).sort(), ['next', 'stale']);
    }
  });
});

// The forms the consumers use: the per-message consumer's inbox row and position step in one
// statement, and the batch consumer's positions in one statement. Same judgements.
describe('the one-statement forms', () => {
  const message = (sequence: number) => ({ messageId: randomUUID(), eventType: sequence === 1 ? 'OrderCreated' : 'OrderCancelled', payload: {} });

  it('recordInOrder: the same judgements; a copy at an applied position (same id or not) moves nothing and is reported as not new', async () => {
    const order = randomUUID();
    const record = (m: ReturnType<typeof message>, sequence: number) => withTransaction(db.pool, (tx) => recordInOrder(tx, m, 'Worker-1', order, sequence, 'applied'));
    assert.deepEqual(await record(message(2), 2), { isNew: true, verdict: 'early', lastSeq: 0 });
    const first = message(1);
    assert.deepEqual(await record(first, 1), { isNew: true, verdict: 'next', lastSeq: 1 });
    assert.deepEqual(await record(first, 1), { isNew: false }, 'the inbox stops a duplicate before the position');
    assert.deepEqual(await record(message(1), 1), { isNew: false }, 'a copy at an applied position (another id) is a duplicate too');
    assert.deepEqual(await record(message(2), 2), { isNew: true, verdict: 'next', lastSeq: 2 });
    assert.equal(await positionOf(db.pool, order), 2);
  });

  it('recordInOrder: seq 2 while seq 1 is uncommitted in another transaction is early', async () => {
    const order = randomUUID();
    const other = db.newPool(2);
    let release!: () => void;
    const holding = new Promise<void>((resolve) => (release = resolve));
    let inserted!: () => void;
    const seq1Inserted = new Promise<void>((resolve) => (inserted = resolve));
    const a = withTransaction(other, async (tx) => {
      assert.equal((await recordInOrder(tx, message(1), 'Worker-1', order, 1, 'applied')).isNew, true);
      inserted();
      await holding;
    });
    await seq1Inserted;
    const b = await withTransaction(db.pool, (tx) => recordInOrder(tx, message(2), 'Worker-2', order, 2, 'cancelled'));
    assert.deepEqual(b, { isNew: true, verdict: 'early', lastSeq: 0 });
    release();
    await a;
    assert.equal(await positionOf(db.pool, order), 1);
  });

  it('advancePositions: one judgement per aggregate, in the order given', async () => {
    const [a, b, c, d] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
    await advancePosition(db.pool, b, 1);
    await advancePosition(db.pool, d, 1);
    await advancePosition(db.pool, d, 2);
    const checks = await advancePositions(db.pool, [
      { aggregateId: a, sequence: 1 }, { aggregateId: b, sequence: 2 }, { aggregateId: c, sequence: 2 }, { aggregateId: d, sequence: 2 },
    ]);
    assert.deepEqual(checks, [
      { verdict: 'next', lastSeq: 1 }, { verdict: 'next', lastSeq: 2 }, { verdict: 'early', lastSeq: 0 }, { verdict: 'stale', lastSeq: 2 },
    ]);
    assert.deepEqual([await positionOf(db.pool, a), await positionOf(db.pool, b), await positionOf(db.pool, c), await positionOf(db.pool, d)], [1, 2, 0, 2]);
  });
});

// Found by the drain benchmark: each consumer connection prepares its statement once, and a
// plan made while inbox_positions was small (a fresh database) stays until the table is
// analysed again; with it, every message's needless probes (a creation's UPDATE, last_seq read
// after a move) scanned the whole table, so the drain slowed down as the table grew. Plans, not
// timings: the scans of inbox_positions a creation runs must not touch the table's rows.
describe('the position statements read inbox_positions only where they must', () => {
  it('a creation, alone or in a batch, reads no row of a large inbox_positions planned for while it was empty', async () => {
    const client = await db.pool.connect();
    const explain = async (statement: string, values: unknown[] = []): Promise<number> => {
      await client.query('BEGIN');
      try {
        const { rows } = await client.query(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${statement}`, values);
        return sumScanBuffers(rows[0]['QUERY PLAN'][0].Plan);
      } finally {
        await client.query('ROLLBACK');
      }
    };
    const creation = () => [randomUUID(), 'Worker-1', 'OrderCreated', '{}', '{}', randomUUID(), 1, 'applied'];
    try {
      await client.query('ANALYZE inbox_positions');
      // The cached plan a long-lived consumer connection holds, made while the table was empty.
      await client.query('SET plan_cache_mode = force_generic_plan');
      await client.query(`PREPARE record_in_order AS ${RECORD_IN_ORDER_SQL}`);
      const literal = (v: unknown) => (typeof v === 'number' ? String(v) : `'${String(v)}'`);
      const execute = () => `EXECUTE record_in_order(${creation().map(literal).join(', ')})`;
      await explain(execute());
      await client.query(`INSERT INTO inbox_positions (aggregate_id, last_seq) SELECT gen_random_uuid(), 1 FROM generate_series(1, 20000)`);
      const pages = Number((await client.query(`SELECT pg_relation_size('inbox_positions') / 8192 AS pages`)).rows[0].pages);
      assert.ok(pages > 80, `the table is large enough to tell (${pages} pages)`);

      const one = await explain(execute());
      const batch = await explain(ADVANCE_POSITIONS_SQL, [Array.from({ length: 50 }, () => randomUUID()), Array(50).fill(1)]);
      assert.ok(one < 10, `recordInOrder for a creation scanned ${one} buffers of inbox_positions`);
      assert.ok(batch < 10, `advancePositions for 50 creations scanned ${batch} buffers of inbox_positions`);
    } finally {
      client.release(true); // its prepared statement and settings go with it
    }
  });
});

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Shared Hit Blocks'?: number;
  'Shared Read Blocks'?: number;
  Plans?: PlanNode[];
}

/** Buffers touched by the scans (not the inserts) of inbox_positions in an EXPLAIN ANALYZE plan. */
function sumScanBuffers(node: PlanNode): number {
  const own = node['Relation Name'] === 'inbox_positions' && node['Node Type'].includes('Scan')
    ? (node['Shared Hit Blocks'] ?? 0) + (node['Shared Read Blocks'] ?? 0)
    : 0;
  return own + (node.Plans ?? []).reduce((sum, child) => sum + sumScanBuffers(child), 0);
}
