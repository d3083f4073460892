// Scale-out: three `npm run relay` processes and the server share one database and drain
// 10,000 events together, each event applied exactly once and every process doing part of it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { placeOrdersInBulk } from '../../internal/orders/orders.ts';
import { LISTENER_APPLICATION_NAME } from '../../internal/outbox/listener.ts';
import { createTestDatabase, type TestDatabase } from '../../internal/testkit/database.ts';
import { runScript, startServerProcess, type ChildRun } from '../../internal/testkit/process.ts';

const EVENTS = 10_000;
const RELAYS = 3;

describe('npm run relay: scale-out', () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase(import.meta.filename);
  });
  after(() => db.drop());

  it(`3 relay processes + the server drain ${EVENTS.toLocaleString('en')} events: each applied once, every process did some`, async () => {
    const env = { DATABASE_URL: db.url, LOG_LEVEL: 'warn', POLL_INTERVAL_MS: '500' };
    const server = await startServerProcess(env);
    const relays: ChildRun[] = Array.from({ length: RELAYS }, (_, i) =>
      runScript('cmd/relay/main.ts', ['--name', `relay-${i + 1}`], env),
    );
    try {
      // Ready = listening: one LISTEN session per process (quiet processes print no banner).
      await until(`${RELAYS + 1} processes listening`, 60_000, async () => {
        for (const relay of relays) assert.equal(relay.child.exitCode, null, `a relay exited:\n${relay.output()}`);
        const { rows } = await db.pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1`,
          [LISTENER_APPLICATION_NAME],
        );
        return rows[0]!.n === RELAYS + 1;
      });
      const { rows: before } = await db.pool.query<{ id: string; stock: number }>(`SELECT id, stock FROM products ORDER BY id`);
      const products = before.map((p) => p.id);
      for (let from = 0; from < EVENTS; from += 1_000) {
        await placeOrdersInBulk(
          db.pool,
          Array.from({ length: 1_000 }, (_, i) => ({ productId: products[(from + i) % products.length]!, quantity: 1 })),
        );
      }
      await until('the outbox drained and every order settled', 300_000, async () => {
        const { rows } = await db.pool.query<{ left: number; pending: number }>(
          `SELECT (SELECT count(*)::int FROM outbox) AS left, (SELECT count(*)::int FROM orders WHERE status = 'PENDING') AS pending`,
        );
        return rows[0]!.left === 0 && rows[0]!.pending === 0;
      });

      const processed = await db.pool.query<{ n: number; distinct_ids: number }>(
        `SELECT count(*)::int AS n, count(DISTINCT message_id)::int AS distinct_ids FROM processed_messages WHERE outcome = 'applied'`,
      );
      assert.deepEqual(processed.rows[0], { n: EVENTS, distinct_ids: EVENTS });
      const skipped = await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM skipped_duplicates`);
      assert.equal(skipped.rows[0]!.n, 0, 'an event was delivered twice');
      const confirmed = await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM orders WHERE status = 'CONFIRMED'`);
      assert.equal(confirmed.rows[0]!.n, EVENTS);
      const { rows: after } = await db.pool.query<{ id: string; stock: number }>(`SELECT id, stock FROM products ORDER BY id`);
      assert.deepEqual(
        after.map((p, i) => before[i]!.stock - p.stock),
        products.map(() => EVENTS / products.length),
        'each product lost exactly its orders',
      );

      // handled_by is "<relay name>/Worker-N" in a relay, plain "Worker-N" in the server.
      const byProcess = await db.pool.query<{ process: string; n: number }>(
        `SELECT CASE WHEN handled_by LIKE '%/%' THEN split_part(handled_by, '/', 1) ELSE 'server' END AS process,
                count(*)::int AS n
           FROM processed_messages GROUP BY 1 ORDER BY 1`,
      );
      const share = Object.fromEntries(byProcess.rows.map((r) => [r.process, r.n]));
      assert.deepEqual(Object.keys(share), ['relay-1', 'relay-2', 'relay-3', 'server'], JSON.stringify(share));
      for (const [name, n] of Object.entries(share)) assert.ok(n > 0, `${name} did nothing: ${JSON.stringify(share)}`);
    } finally {
      const codes = await Promise.all([...relays.map((r) => r.stop('SIGTERM')), server.run.stop('SIGTERM')]);
      assert.deepEqual(codes, [0, 0, 0, 0], relays.map((r) => r.output()).join('\n'));
    }
  });
});

async function until(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
