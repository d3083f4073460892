// End to end: `npm run demo` on a fresh data directory, as after a clean clone.
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { readEmbeddedPassword } from '../../internal/db/embedded.ts';
import { createTestDatabase, type TestDatabase } from '../../internal/testkit/database.ts';
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
