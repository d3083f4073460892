// End to end: `npm run demo` on a fresh data directory, as after a clean clone.
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { readEmbeddedPassword } from '../../internal/db/embedded.ts';
import { probeNats } from '../../internal/nats/probe.ts';
import { createTestDatabase, type TestDatabase } from '../../internal/testkit/database.ts';
import { skipUnlessNats } from '../../internal/testkit/nats.ts';
import { freePort } from '../../internal/testkit/ports.ts';
import { makeDataDir, runScript, startServerProcess } from '../../internal/testkit/process.ts';

describe('npm run demo', () => {
  let dataDir: string;
  before(async () => {
    dataDir = await makeDataDir('outbox-e2e-demo-');
  });
  after(() => fs.rm(dataDir, { recursive: true, force: true }));

  it('tells the whole story and exits 0: 50 orders drained by five workers, 3 duplicates skipped', async () => {
    const pgPort = await freePort();
    const demo = runScript('cmd/demo/main.ts', [], { DATABASE_URL: undefined, DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(pgPort) });
    assert.equal(await demo.exited, 0, demo.output());
    const out = demo.output();
    for (const step of ['1/4 Start', '2/4 Stress', '3/4 The drain', '4/4 Replay']) assert.ok(out.includes(step), step);
    assert.match(out, /50\/50 accepted/);
    assert.match(out, /invariant\s+✓/);
    assert.equal(out.match(/\[Inventory\] SKIPPING duplicate message/g)?.length, 3);
    assert.match(out, /✓ Verdict/);
    const password = await readEmbeddedPassword(dataDir);
    assert.ok(!out.includes(password), 'the password is never printed');
    const client = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'postgres', password });
    await assert.rejects(client.connect(), 'the demo stopped the database it started');
  });
});

describe('npm run demo -- --transport nats', () => {
  let dataDir: string;
  before(async () => {
    dataDir = await makeDataDir('outbox-e2e-demo-nats-');
  });
  after(() => fs.rm(dataDir, { recursive: true, force: true }));

  it('starts nats-server and both services, tells the story over JetStream, exits 0 and stops all it started', async (t) => {
    if (!(await skipUnlessNats(t))) return;
    const pgPort = await freePort();
    const natsPort = await freePort();
    const demo = runScript('cmd/demo/main.ts', ['--transport', 'nats'], {
      DATABASE_URL: undefined, INVENTORY_DATABASE_URL: undefined, NATS_URL: undefined, TRANSPORT: undefined,
      DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(pgPort), NATS_PORT: String(natsPort),
    });
    assert.equal(await demo.exited, 0, demo.output());
    const out = demo.output();
    for (const step of ['1/4 Start', '2/4 Stress', '3/4 The drain', '4/4 Replay']) assert.ok(out.includes(step), step);
    assert.match(out, /50\/50 accepted/);
    assert.match(out, /order service relay workers published 50 events/);
    assert.match(out, /inventory service handlers took 50 messages/);
    assert.match(out, /stock \(the inventory service's database\)/);
    assert.match(out, /invariant\s+✓/);
    assert.match(out, /\(a\) broker\s+✓ 3\/3 dropped by JetStream/);
    assert.match(out, /\(b\) inbox\s+✓ 3\/3 skipped by the inventory's inbox/);
    assert.match(out, /✓ Verdict/);
    assert.equal((await probeNats('127.0.0.1', natsPort)).kind, 'free', 'the demo stopped the nats-server it started');
    const password = await readEmbeddedPassword(dataDir);
    const client = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'postgres', password });
    await assert.rejects(client.connect(), 'the demo stopped the database it started');
  });
});

describe('npm run demo next to a running server', () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase(import.meta.filename);
  });
  after(() => db.drop());

  it('refuses to reset a database another server is relaying, and changes nothing', async () => {
    const server = await startServerProcess({ DATABASE_URL: db.url });
    try {
      await fetch(`${server.url}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ productId: 'widget', quantity: 1 }),
      });
      const demo = runScript('cmd/demo/main.ts', ['--yes'], { DATABASE_URL: db.url });
      assert.equal(await demo.exited, 1);
      assert.match(demo.output(), /another outbox-demo server is relaying this database/);
      assert.doesNotMatch(demo.output(), /^\s+at /m, 'no stack trace');
      const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM orders`);
      assert.equal(rows[0].n, 1);
    } finally {
      await server.run.stop();
    }
  });
});

describe('npm run demo with DATABASE_URL', () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase(import.meta.filename, { migrated: false });
  });
  after(() => db.drop());

  it('refuses without --yes, in one line, before touching the database', async () => {
    const demo = runScript('cmd/demo/main.ts', [], { DATABASE_URL: db.url });
    assert.equal(await demo.exited, 2, demo.output());
    assert.match(demo.output(), /DATABASE_URL is set: npm run demo would delete .* pass --yes/);
    assert.equal(demo.output().trim().split('\n').length, 1, demo.output());
    const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'`);
    assert.equal(rows[0].n, 0, 'not even the migrations ran');
  });
});
