// Start-up failures, as a user meets them: one clear line, no stack trace, the right exit code,
// and nothing this process started left running.
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../../internal/testkit/ports.ts';
import { makeDataDir, runScript } from '../../internal/testkit/process.ts';

const STACK_LINE = /^\s+at /m;

function listenOn(port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer((socket) => socket.destroy());
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

function portAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('npm start when the port is taken', () => {
  let dataDir: string;
  before(async () => {
    dataDir = await makeDataDir('outbox-port-in-use-');
  });
  after(() => fs.rm(dataDir, { recursive: true, force: true }));

  it('says so in one line, exits 1, and stops the PostgreSQL it started', async () => {
    const port = await freePort();
    const pgPort = await freePort();
    const blocker = await listenOn(port);
    try {
      const server = runScript('cmd/server/main.ts', [], {
        DATABASE_URL: undefined, DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(pgPort), PORT: String(port),
      });
      assert.equal(await server.exited, 1, server.output());
      const out = server.output();
      assert.match(out, new RegExp(`port ${port} is in use \\(is another server running\\?\\) — set PORT`));
      assert.match(out, /starting embedded PostgreSQL/, 'this process started the database');
      assert.doesNotMatch(out, STACK_LINE, 'no stack trace');
      assert.doesNotMatch(out, /TypeError/);
      await assert.rejects(fs.access(path.join(dataDir, 'pg', 'postmaster.pid')), 'postmaster.pid is gone');
      assert.equal(await portAccepts(pgPort), false, 'nothing listens on the embedded PostgreSQL port');
      const password = await fs.readFile(path.join(dataDir, 'postgres-password'), 'utf8');
      assert.ok(!out.includes(password.trim()), 'the password is never printed');
    } finally {
      blocker.close();
    }
  });
});

describe('bad configuration', () => {
  for (const [name, value, rule] of [
    ['WORKERS', '0x5', /WORKERS must be a decimal integer/],
    ['PORT', '70000', /PORT must be .*from 0 to 65535/],
    ['RETRY_MAX_MS', '1', /RETRY_BASE_MS .* must not exceed RETRY_MAX_MS/],
  ] as const) {
    it(`${name}=${value}: one line naming it, exit 2, before anything starts`, async () => {
      const server = runScript('cmd/server/main.ts', [], { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none', [name]: value });
      assert.equal(await server.exited, 2, server.output());
      assert.match(server.output(), rule);
      assert.equal(server.output().trim().split('\n').length, 1, server.output());
      assert.doesNotMatch(server.output(), STACK_LINE);
    });
  }

  it('a relay with WORKERS=0 does not start', async () => {
    const relay = runScript('cmd/relay/main.ts', [], { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none', WORKERS: '0' });
    assert.equal(await relay.exited, 2, relay.output());
    assert.match(relay.output(), /^WORKERS must be/m);
  });

  it('a database that cannot be reached: one line, exit 1', async () => {
    const server = runScript('cmd/server/main.ts', [], { DATABASE_URL: `postgres://nobody@127.0.0.1:${await freePort()}/none`, PORT: '0' });
    assert.equal(await server.exited, 1, server.output());
    assert.match(server.output(), /could not start: .*database/i);
    assert.doesNotMatch(server.output(), STACK_LINE);
  });
});
