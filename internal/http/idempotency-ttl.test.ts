// Through the real server: an Idempotency-Key is reusable after IDEMPOTENCY_KEY_TTL (201, a
// new order), and the janitor's metrics are on GET /metrics.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RunningServer } from '../app/wiring.ts';
import { createTestDatabase, type TestDatabase } from '../testkit/database.ts';
import { startTestServer } from '../testkit/server.ts';

let db: TestDatabase;
let server: RunningServer;
before(async () => {
  db = await createTestDatabase(import.meta.filename);
  server = await startTestServer(db, { idempotencyKeyTtlMs: 3_600_000 });
});
after(async () => {
  await server?.close();
  await db.drop();
});

const post = (body: unknown, key: string) =>
  fetch(`${server.url}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': key },
    body: JSON.stringify(body),
  });

describe('POST /orders with an expired Idempotency-Key', () => {
  it('same key, new body, after IDEMPOTENCY_KEY_TTL → 201 and a new order (before expiry: 422)', async () => {
    const first = await post({ productId: 'widget', quantity: 1 }, 'ttl-key');
    assert.equal(first.status, 201);
    const firstOrder = (await first.json()) as { id: string };

    const early = await post({ productId: 'widget', quantity: 2 }, 'ttl-key');
    assert.equal(early.status, 422);

    await db.pool.query(`UPDATE idempotency_keys SET created_at = now() - interval '61 minutes' WHERE key = 'ttl-key'`);
    const reused = await post({ productId: 'widget', quantity: 2 }, 'ttl-key');
    assert.equal(reused.status, 201);
    assert.equal(reused.headers.get('idempotent-replayed'), null);
    const order = (await reused.json()) as { id: string; quantity: number };
    assert.notEqual(order.id, firstOrder.id);
    assert.equal(order.quantity, 2);
  });

  it('GET /metrics shows the janitor: rows pruned per table, passes, lag', async () => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    for (const table of ['processed_messages', 'skipped_duplicates', 'idempotency_keys']) {
      assert.match(text, new RegExp(`^janitor_rows_pruned_total\\{table="${table}"\\} \\d+`, 'm'));
    }
    assert.match(text, /^# TYPE janitor_lag_seconds gauge/m);
    assert.match(text, /^# TYPE janitor_last_run_timestamp_seconds gauge/m);
    assert.match(text, /^# TYPE janitor_passes_total counter/m);
  });
});
