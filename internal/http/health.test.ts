// /health/live: the process answers. /health/ready: it can do its work (database reachable,
// listener connected or polling, relay running). /health: unchanged, for compatibility.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AddressInfo } from 'node:net';
import type { RunningServer } from '../app/wiring.ts';
import { closePool, createPool } from '../db/pool.ts';
import { createSilentLogger } from '../log/logger.ts';
import { freePort } from '../net/free-port.ts';
import { createTestDatabase, type TestDatabase } from '../testkit/database.ts';
import { startTestServer } from '../testkit/server.ts';
import { createHttpApp } from './app.ts';

let db: TestDatabase;
let server: RunningServer;
before(async () => {
  db = await createTestDatabase(import.meta.filename);
  server = await startTestServer(db);
});
after(async () => {
  await server.close();
  await db.drop();
});

async function get(url: string): Promise<{ status: number; body: Record<string, string> }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as Record<string, string> };
}

describe('health endpoints', () => {
  it('live and ready while everything runs; /health as before', async () => {
    assert.deepEqual(await get(`${server.url}/health/live`), { status: 200, body: { status: 'ok' } });
    assert.deepEqual(await get(`${server.url}/health/ready`), {
      status: 200,
      body: { status: 'ready', database: 'up', listener: 'connected', relay: 'running' },
    });
    assert.deepEqual(await get(`${server.url}/health`), { status: 200, body: { status: 'ok', database: 'up' } });
  });

  it('not ready once the relay stopped; still live', async () => {
    await server.relay.stop();
    try {
      const ready = await get(`${server.url}/health/ready`);
      assert.equal(ready.status, 503);
      assert.equal(ready.body.relay, 'stopped');
      assert.equal((await get(`${server.url}/health/live`)).status, 200);
    } finally {
      server.relay.start();
    }
  });

  it('not ready when the database does not answer; still live', async () => {
    const url = new URL(db.url);
    url.port = String(await freePort()); // nothing listens there
    const pool = createPool({ url: url.toString(), applicationName: 'outbox-demo:api', max: 1, connectionTimeoutMs: 1_000 }, createSilentLogger());
    const app = createHttpApp({ pool, logger: createSilentLogger() });
    const http = await new Promise<import('node:http').Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    try {
      const base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
      assert.deepEqual(await get(`${base}/health/ready`), { status: 503, body: { status: 'not ready', database: 'down' } });
      assert.equal((await get(`${base}/health/live`)).status, 200);
    } finally {
      http.closeAllConnections();
      await new Promise((resolve) => http.close(resolve));
      await closePool(pool);
    }
  });
});
