// End to end: the real server process, then the real stress and replay CLIs against it.
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { readEmbeddedPassword } from '../../internal/db/embedded.ts';
import { freePort } from '../../internal/testkit/ports.ts';
import { makeDataDir, runScript, startServerProcess, type ServerProcess } from '../../internal/testkit/process.ts';

describe('npm run stress and npm run replay against a running server', () => {
  let dataDir: string;
  let pgPort: number;
  let server: ServerProcess;
  let env: Record<string, string | undefined>;
  before(async () => {
    dataDir = await makeDataDir('outbox-e2e-stress-');
    pgPort = await freePort();
    env = { DATABASE_URL: undefined, DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(pgPort) };
    server = await startServerProcess(env);
  });
  after(async () => {
    await server?.run.stop();
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  it('stress: 50 accepted, drained, invariant holds, exit 0, and the rows agree', async () => {
    const stress = runScript('cmd/stress-test/main.ts', ['--url', server.url, '--json'], env);
    assert.equal(await stress.exited, 0, stress.output());
    const result = JSON.parse(stress.stdout());
    assert.equal(result.ok, true);
    assert.equal(result.accepted, 50);
    assert.equal(result.drain.confirmed + result.drain.rejected, 50);
    assert.equal(result.invariant.holds, true);

    const password = await readEmbeddedPassword(dataDir);
    const client = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'postgres', password, database: 'outbox_demo' });
    await client.connect();
    try {
      const { rows } = await client.query(
        `SELECT count(*) FILTER (WHERE status = 'CONFIRMED')::int AS confirmed, count(*)::int AS total,
                (SELECT count(*)::int FROM outbox) AS outbox
           FROM orders WHERE user_id = $1`,
        [result.userId],
      );
      assert.deepEqual(rows[0], { confirmed: 50, total: 50, outbox: 0 });
    } finally {
      await client.end();
    }
  });

  it("replay: three duplicates go through the server's workers, each skipped, nothing changes, exit 0", async () => {
    const replay = runScript('cmd/replay/main.ts', ['--url', server.url, '--json'], env);
    assert.equal(await replay.exited, 0, replay.output());
    const result = JSON.parse(replay.stdout());
    assert.equal(result.path, 'server-workers');
    assert.equal(result.skips.length, 3);
    assert.deepEqual(result.stockAfter, result.stockBefore);
    assert.equal(result.processedAfter, result.processedBefore);
    await server.run.waitFor(/(SKIPPING duplicate message[^\n]*\n[^]*){3}/, 30_000);
    for (const id of result.replayed) assert.match(server.run.output(), new RegExp(`\\[Inventory\\] SKIPPING duplicate message ${id}`));
  });

  it('stress: exit 2 with a hint when no server answers', async () => {
    const stress = runScript('cmd/stress-test/main.ts', ['--url', `http://127.0.0.1:${await freePort()}`], env);
    assert.equal(await stress.exited, 2);
    assert.match(stress.output(), /cannot reach the Order API .*npm start/);
  });
});
