// Several processes may ask for the embedded PostgreSQL at the same moment (the server and a
// CLI, two servers): whoever does not start it attaches, and attaching means "ready to use".
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createSilentLogger } from '../log/logger.ts';
import { freePort } from '../testkit/ports.ts';
import { makeDataDir } from '../testkit/process.ts';
import { ensureEmbeddedPostgres, postmasterStatus, stopEmbeddedPostgres } from './embedded.ts';

let dataDir: string;
let port: number;
before(async () => {
  dataDir = await makeDataDir('outbox-embedded-');
  port = await freePort();
});
after(async () => {
  await stopEmbeddedPostgres(dataDir).catch(() => undefined);
  await fs.rm(dataDir, { recursive: true, force: true });
});

const ask = () => ensureEmbeddedPostgres(dataDir, port, createSilentLogger());

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

describe('the embedded PostgreSQL, asked for by several callers at once', () => {
  // Found in review: "pg_ctl status" says running as soon as postmaster.pid exists, before the
  // server accepts connections, so a caller that attached then got ECONNREFUSED or "the
  // database system is starting up". A crash recovery makes that window seconds long.
  it('a caller that attaches while the server is still starting can use it at once', async () => {
    const setup = await ask();
    await query(setup.adminUrl, `ALTER SYSTEM SET max_wal_size = '4GB'`);
    await query(setup.adminUrl, `SELECT pg_reload_conf()`);
    await query(setup.adminUrl, `CREATE TABLE filler AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 600000) AS g`);
    await stopEmbeddedPostgres(dataDir, 'immediate'); // a crash: the next start replays the WAL

    const starter = ask();
    let starterFailed: unknown;
    starter.catch((error: unknown) => (starterFailed = error));
    let status: string | undefined;
    const deadline = Date.now() + 60_000;
    while (!(status = await postmasterStatus(dataDir))) {
      if (starterFailed) throw starterFailed;
      assert.ok(Date.now() < deadline, 'the server wrote no status line within 60 s');
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const attachers = [ask(), ask(), ask()];
    // Each attacher uses its handle the moment it gets it, not when the starter is done.
    const used = await Promise.allSettled(
      attachers.map(async (handle) => (await query<{ one: number }>((await handle).adminUrl, 'SELECT 1 AS one'))[0]!.one),
    );
    const handles = await Promise.all([starter, ...attachers]);
    try {
      assert.equal(status, 'starting', 'the attachers asked while the server was starting');
      assert.deepEqual(used, attachers.map(() => ({ status: 'fulfilled', value: 1 })));
      assert.deepEqual(handles.map((h) => h.startedHere), [true, false, false, false]);
      const [row] = await query<{ n: number }>(handles[0]!.adminUrl, 'SELECT count(*)::int AS n FROM filler');
      assert.equal(row!.n, 600_000, 'the committed table survived the crash');
    } finally {
      await Promise.all(handles.map((h) => h.stop()));
    }
  });
});
