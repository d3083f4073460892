// What the README promises about retention: a message redelivered after its
// processed_messages record was pruned is not applied a second time. The consumer takes it for
// new, but its order's position (inbox_positions, never pruned) is already past it: a copy,
// skipped as a duplicate, never a second decrement, and no dead letter (which would park the
// order's later events). (Before positions, the order no longer being PENDING stopped it.)
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { DEFAULTS } from '../config/config.ts';
import { createBatchConsumer } from '../inventory/batch-consumer.ts';
import { createInventoryConsumer } from '../inventory/consumer.ts';
import { countOrdersAppliedTwice } from '../inventory/processed.ts';
import { stockOf } from '../inventory/stock.ts';
import { createSilentLogger } from '../log/logger.ts';
import { placeOrder, type NewOrder } from '../orders/orders.ts';
import { createOutboxStore, enqueueAgain, ORDER_CREATED } from '../outbox/outbox.ts';
import { Relay } from '../relay/relay.ts';
import { createTestDatabase, emptyPipelineTables, type TestDatabase } from '../testkit/database.ts';
import { Janitor } from './janitor.ts';

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase(import.meta.filename);
});
after(() => db.drop());
beforeEach(() => emptyPipelineTables(db.pool));

const logger = createSilentLogger();

function relay(mode: 'per-message' | 'batch'): Relay {
  const single = createInventoryConsumer({ pool: db.pool, logger });
  const batch = createBatchConsumer({ pool: db.pool, logger, single });
  return new Relay(
    {
      store: createOutboxStore(db.pool, { batchSize: 10, leaseMs: 30_000 }),
      deliver: (event, worker) => single.handle(event, worker),
      deliverBatch: mode === 'batch' ? (events, worker) => batch.handleBatch(events, worker) : undefined,
      logger,
    },
    { workers: 1, pollIntervalMs: 50, maxAttempts: 5 },
  );
}

const janitor = () =>
  new Janitor(
    { pool: db.pool, logger },
    {
      intervalMs: DEFAULTS.janitorIntervalMs,
      inboxRetentionMs: DEFAULTS.inboxRetentionMs,
      replayCopyRetentionMs: DEFAULTS.replayCopyRetentionMs,
      idempotencyKeyTtlMs: DEFAULTS.idempotencyKeyTtlMs,
    },
  );

for (const mode of ['per-message', 'batch'] as const) {
  describe(`redelivery after the record was pruned (${mode} consumer)`, () => {
    it('is not applied again: stock unchanged, order unchanged, the copy skipped as a duplicate (no dead letter)', async () => {
      const r = relay(mode);
      // Two orders, so the batch consumer really gets a batch.
      const orders: NewOrder[] = [];
      for (const quantity of [3, 4]) orders.push(await placeOrder(db.pool, { productId: 'gizmo', quantity }));
      while ((await r.runOnce('Worker-1')) > 0);
      const stockAfterFirst = await stockOf(db.pool, 'gizmo');
      const ids = orders.map((o) => o.messageId);

      // Eight days later: the records are past INBOX_RETENTION and the janitor prunes them.
      await db.pool.query(`UPDATE processed_messages SET processed_at = now() - interval '8 days' WHERE message_id = ANY($1::uuid[])`, [ids]);
      const pass = await janitor().runOnce();
      assert.ok(pass.elected && pass.pruned.processed_messages === 2, 'both records pruned');

      // The same messages arrive again (a relay that stalled for a week, a replay, a restore).
      for (const placed of orders) {
        const { order } = placed;
        await enqueueAgain(db.pool, {
          messageId: placed.messageId,
          eventType: ORDER_CREATED,
          aggregateId: order.id,
          payload: { orderId: order.id, productId: order.productId, quantity: order.quantity, userId: order.userId },
        });
      }
      while ((await r.runOnce('Worker-1')) > 0);

      assert.equal(await stockOf(db.pool, 'gizmo'), stockAfterFirst, 'no second decrement');
      const { rows: statuses } = await db.pool.query(`SELECT status FROM orders WHERE id = ANY($1::uuid[])`, [orders.map((o) => o.order.id)]);
      assert.deepEqual(statuses.map((s) => s.status), ['CONFIRMED', 'CONFIRMED']);
      // Their position says they were applied: copies, skipped as duplicates, no dead letter.
      assert.deepEqual((await db.pool.query(`SELECT message_id FROM dead_letters`)).rows, []);
      const { rows: skipped } = await db.pool.query(`SELECT DISTINCT message_id FROM skipped_duplicates WHERE message_id = ANY($1::uuid[])`, [ids]);
      assert.deepEqual(skipped.map((d) => d.message_id).sort(), [...ids].sort());
      const { rows: left } = await db.pool.query(`SELECT count(*)::int AS n FROM outbox`);
      assert.equal(left[0].n, 0);
      // The copies wrote no inbox record: nothing says "applied" twice.
      const { rows: records } = await db.pool.query(`SELECT count(*)::int AS n FROM processed_messages WHERE message_id = ANY($1::uuid[])`, [ids]);
      assert.equal(records[0].n, 0);
      assert.equal(await countOrdersAppliedTwice(db.pool), 0);
    });
  });
}
