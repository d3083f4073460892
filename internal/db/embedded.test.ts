// Several processes may ask for the embedded PostgreSQL at the same moment (the server and a
// CLI, two servers): whoever does not start it attaches, and attaching means "ready to use".
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { loadConfig, testAdminDatabaseUrl } from '../config/config.ts';
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

describe('the embedded PostgreSQL password', () => {
  let dir: string;
  let pgPort: number;
  before(async () => {
    dir = await makeDataDir('outbox-embedded-pw-');
    pgPort = await freePort();
  });
  after(async () => {
    await stopEmbeddedPostgres(dir).catch(() => undefined);
    await fs.rm(dir, { recursive: true, force: true });
  });
  const open = () => ensureEmbeddedPostgres(dir, pgPort, createSilentLogger());
  const passwordFile = () => path.join(dir, 'postgres-password');
  const withPassword = (url: string, password: string) => {
    const u = new URL(url);
    u.password = password;
    return u.toString();
  };

  it('is generated on first init, kept in the data directory readable by the owner only, and is the only one accepted', async () => {
    const pg1 = await open();
    try {
      const stat = await fs.stat(passwordFile());
      assert.equal(stat.mode & 0o777, 0o600);
      const password = (await fs.readFile(passwordFile(), 'utf8')).trim();
      assert.ok(password.length >= 24, 'long and random');
      assert.equal(decodeURIComponent(new URL(pg1.adminUrl).password), password);
      assert.deepEqual(await query(pg1.adminUrl, 'SELECT 1 AS one'), [{ one: 1 }]);
      await assert.rejects(query(withPassword(pg1.adminUrl, 'postgres'), 'SELECT 1'), /password authentication failed/);
    } finally {
      await pg1.stop();
    }
  });

  // A data directory from before this change: superuser password "postgres", no password file.
  async function makeLegacy(): Promise<void> {
    const handle = await open();
    await query(handle.adminUrl, `ALTER ROLE postgres PASSWORD 'postgres'`);
    await fs.rm(passwordFile());
  }

  it('an old data directory (password "postgres", no file) gets a generated one when it is started', async () => {
    await makeLegacy();
    await stopEmbeddedPostgres(dir);
    const upgraded = await open();
    try {
      const password = (await fs.readFile(passwordFile(), 'utf8')).trim();
      assert.notEqual(password, 'postgres');
      assert.equal((await fs.stat(passwordFile())).mode & 0o777, 0o600);
      assert.deepEqual(await query(upgraded.adminUrl, 'SELECT 1 AS one'), [{ one: 1 }]);
      await assert.rejects(query(withPassword(upgraded.adminUrl, 'postgres'), 'SELECT 1'), /password authentication failed/);
    } finally {
      await upgraded.stop();
    }
  });

  it('… and when it is already running and a new process attaches', async () => {
    await makeLegacy(); // leaves it running, started by that call
    const attached = await open();
    try {
      assert.equal(attached.startedHere, false);
      assert.deepEqual(await query(attached.adminUrl, 'SELECT 1 AS one'), [{ one: 1 }]);
      await assert.rejects(query(withPassword(attached.adminUrl, 'postgres'), 'SELECT 1'), /password authentication failed/);
    } finally {
      await stopEmbeddedPostgres(dir);
    }
  });

  it('a lost password file is a clear one-line error, not a silent reset', async () => {
    const handle = await open();
    await fs.rm(passwordFile());
    try {
      await assert.rejects(open(), (error: Error) => {
        assert.match(error.message, /rejects the password in .*postgres-password/);
        assert.doesNotMatch(error.message, /\n/);
        return true;
      });
    } finally {
      await handle.stop();
    }
  });

  it("npm test's own embedded server uses a generated password too", { skip: loadConfig().databaseUrl !== undefined }, () => {
    assert.notEqual(decodeURIComponent(new URL(testAdminDatabaseUrl()).password), 'postgres');
  });
});
