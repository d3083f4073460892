// End to end: the real server process, as a user starts it.
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { readEmbeddedPassword } from '../../internal/db/embedded.ts';
import { createTestDatabase, type TestDatabase } from '../../internal/testkit/database.ts';
import { freePort } from '../../internal/testkit/ports.ts';
import { startServerProcess as startServer } from '../../internal/testkit/process.ts';

async function postOrder(url: string, quantity: number) {
  const res = await fetch(`${url}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ productId: 'gizmo', quantity }),
  });
  assert.equal(res.status, 201);
  return (await res.json()) as { id: string; status: string };
}

async function waitForStatus(url: string, id: string, status: string, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const order = await (await fetch(`${url}/orders/${id}`)).json();
    if (order.status === status) return order;
    assert.ok(Date.now() < deadline, `order ${id} still ${order.status}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function gizmoStock(url: string): Promise<number> {
  const { products } = await (await fetch(`${url}/products`)).json();
  return products.find((p: { id: string }) => p.id === 'gizmo').stock;
}

describe('the server on the embedded PostgreSQL', () => {
  let dataDir: string;
  let pgPort: number;
  before(async () => {
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'outbox-e2e-'));
    await fs.chmod(dataDir, 0o755);
    pgPort = await freePort();
  });
  after(() => fs.rm(dataDir, { recursive: true, force: true }));

  const embeddedEnv = () => ({ DATABASE_URL: undefined, DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(pgPort) });

  it('confirms an order end to end, stops cleanly, and keeps everything across a restart', async () => {
    const first = await startServer(embeddedEnv());
    const stockBefore = await gizmoStock(first.url);
    const order = await postOrder(first.url, 4);
    assert.equal(order.status, 'PENDING');
    assert.match(first.run.output(), /\[API\] listening on http:\/\/127\.0\.0\.1:\d+ \(embedded PostgreSQL, 5 workers/);
    await waitForStatus(first.url, order.id, 'CONFIRMED');
    assert.equal(await gizmoStock(first.url), stockBefore - 4);
    assert.equal(await first.run.stop('SIGTERM'), 0);
    assert.match(first.run.output(), /\[Worker-\d\] claimed 1 event/);
    assert.match(first.run.output(), /\[Inventory\] order \w+… stock gizmo \d+ → \d+/);
    assert.match(first.run.output(), /stopped cleanly/);
    // It started the database, so it stopped it too.
    await assert.rejects(connect(dataDir, pgPort));

    const second = await startServer(embeddedEnv());
    try {
      assert.equal((await waitForStatus(second.url, order.id, 'CONFIRMED')).id, order.id);
      assert.equal(await gizmoStock(second.url), stockBefore - 4);
      assert.doesNotMatch(second.run.output(), /applied migration/);
    } finally {
      assert.equal(await second.run.stop('SIGINT'), 0);
    }
  });

  it('two servers started at the same time share one database and apply each migration once', async () => {
    const fresh = await fs.mkdtemp(path.join(os.tmpdir(), 'outbox-e2e-twin-'));
    await fs.chmod(fresh, 0o755);
    const env = { DATABASE_URL: undefined, DATA_DIR: fresh, EMBEDDED_PG_PORT: String(await freePort()) };
    const [a, b] = await Promise.all([startServer(env), startServer(env)]);
    try {
      const orders = await Promise.all([postOrder(a.url, 1), postOrder(b.url, 1)]);
      await Promise.all(orders.map((o) => waitForStatus(a.url, o.id, 'CONFIRMED')));
      const client = await connect(fresh, Number(env.EMBEDDED_PG_PORT), 'outbox_demo');
      const { rows } = await client.query(`SELECT version, count(*)::int AS n FROM schema_migrations GROUP BY version`);
      await client.end();
      assert.ok(rows.length > 0 && rows.every((r) => r.n === 1));
      const applied = (a.run.output() + b.run.output()).match(/applied migration 0001_init/g) ?? [];
      assert.equal(applied.length, 1);
    } finally {
      // The one that attached stops first, so the other still has its database while it stops.
      const attached = a.run.output().includes('attached to') ? [a, b] : [b, a];
      assert.equal(await attached[0]!.run.stop(), 0);
      assert.equal(await attached[1]!.run.stop(), 0);
      await fs.rm(fresh, { recursive: true, force: true });
    }
  });
});

describe('the server on DATABASE_URL', () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase(import.meta.filename, { migrated: false });
  });
  after(() => db.drop());

  it('migrates that database and confirms orders there', async () => {
    const server = await startServer({ DATABASE_URL: db.url });
    try {
      assert.match(server.run.output(), /using DATABASE_URL/);
      const order = await postOrder(server.url, 2);
      await waitForStatus(server.url, order.id, 'CONFIRMED');
      const { rows } = await db.pool.query(`SELECT status FROM orders WHERE id = $1`, [order.id]);
      assert.equal(rows[0].status, 'CONFIRMED');
    } finally {
      assert.equal(await server.run.stop(), 0);
    }
  });

  it('LOG_LEVEL=warn keeps the step-by-step lines quiet', async () => {
    const server = await startServer({ DATABASE_URL: db.url, LOG_LEVEL: 'warn' });
    try {
      const order = await postOrder(server.url, 1);
      await waitForStatus(server.url, order.id, 'CONFIRMED');
    } finally {
      await server.run.stop();
    }
    assert.doesNotMatch(server.run.output(), /\[(API|Worker-\d|Inventory)\]/);
  });
});

async function connect(dataDir: string, port: number, database = 'postgres'): Promise<pg.Client> {
  const password = await readEmbeddedPassword(dataDir);
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, database });
  await client.connect();
  return client;
}
