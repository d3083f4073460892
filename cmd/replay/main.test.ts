// End to end: the replay CLI with no server running, on an empty database.
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { readEmbeddedPassword } from '../../internal/db/embedded.ts';
import { freePort } from '../../internal/testkit/ports.ts';
import { makeDataDir, runScript } from '../../internal/testkit/process.ts';

describe('npm run replay with no server running', () => {
  let dataDir: string;
  let env: Record<string, string | undefined>;
  let pgPort: number;
  before(async () => {
    dataDir = await makeDataDir('outbox-e2e-replay-');
    pgPort = await freePort();
    env = { DATABASE_URL: undefined, DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(pgPort) };
  });
  after(() => fs.rm(dataDir, { recursive: true, force: true }));

  it('--fresh: starts the database itself, delivers one new event twice, skips the second, exit 0', async () => {
    const noServer = `http://127.0.0.1:${await freePort()}`;
    const replay = runScript('cmd/replay/main.ts', ['--fresh', '--url', noServer, '--json'], env);
    assert.equal(await replay.exited, 0, replay.output());
    const result = JSON.parse(replay.stdout());
    assert.equal(result.path, 'in-process');
    assert.equal(result.fresh.firstOutcome, 'applied');
    assert.equal(result.skips.length, 1);
    assert.match(replay.output(), /no server is running/);
    assert.match(replay.output(), new RegExp(`\\[Inventory\\] SKIPPING duplicate message ${result.fresh.messageId}`));
    // It started the embedded PostgreSQL, so it stopped it again.
    const password = await readEmbeddedPassword(dataDir);
    const client = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'postgres', password });
    await assert.rejects(client.connect());
  });

  it('an id that was never processed: exit 1, and it says why', async () => {
    const replay = runScript(
      'cmd/replay/main.ts',
      ['--message-id', '00000000-0000-4000-8000-000000000000', '--url', `http://127.0.0.1:${await freePort()}`],
      env,
    );
    assert.equal(await replay.exited, 1);
    assert.match(replay.output(), /cannot be replayed/);
  });

  it('a malformed id: exit 2 before touching anything', async () => {
    const replay = runScript('cmd/replay/main.ts', ['--message-id', 'nope'], env);
    assert.equal(await replay.exited, 2);
    assert.match(replay.output(), /not a message id/);
  });
});
