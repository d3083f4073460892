// CSRF and DNS rebinding: a web page the user happens to open must not be able to press the
// server's buttons. Real server, real requests (node:http, so the Host header is ours to
// set), and the rows counted before and after.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { RunningServer } from '../app/wiring.ts';
import { ConfigError, loadConfig } from '../config/config.ts';
import { setStock } from '../inventory/stock.ts';
import { createTestDatabase, type TestDatabase } from '../testkit/database.ts';
import { startTestServer } from '../testkit/server.ts';
import { hostAllowed, serverNames } from './guard.ts';

let db: TestDatabase;
let server: RunningServer;
before(async () => {
  db = await createTestDatabase(import.meta.filename);
  server = await startTestServer(db, { workers: 1, allowedHosts: ['outbox.example'] });
});
after(async () => {
  await server.close();
  await db.drop();
});
beforeEach(async () => {
  await setStock(db.pool, { widget: 100_000, gadget: 100_000, gizmo: 100_000, doohickey: 100_000 });
});

interface Answer {
  status: number;
  body: { error?: { code: string; message: string } } & Record<string, unknown>;
}

/** One request with exactly these headers (node:http lets a test set Host; fetch does not). */
function request(method: string, path: string, headers: Record<string, string>, body?: string, port = server.port): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, setHost: !('host' in headers) }, (res) => {
      if (res.headers['content-type']?.includes('text/event-stream')) {
        // An event stream never ends by itself: that it opened is the answer.
        res.destroy();
        resolve({ status: res.statusCode ?? 0, body: {} });
        return;
      }
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: res.headers['content-type']?.includes('json') ? JSON.parse(text) : { text } });
        } catch (error) {
          reject(error);
        }
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Everything any of the buttons or POST /orders could change. */
async function written() {
  const { rows } = await db.pool.query(
    `SELECT (SELECT count(*)::int FROM orders) AS orders,
            (SELECT count(*)::int FROM outbox) AS outbox,
            (SELECT count(*)::int FROM processed_messages) AS processed,
            (SELECT count(*)::int FROM skipped_duplicates) AS skipped`,
  );
  const caps = await request('GET', '/dashboard/capabilities', {});
  return { ...rows[0], failRate: caps.body.failRate };
}

const own = () => `127.0.0.1:${server.port}`;
const json = { 'content-type': 'application/json' };

// Every route that changes something, with a body it would accept.
const STATE_CHANGING: Array<[string, string]> = [
  ['/orders', JSON.stringify({ productId: 'widget', quantity: 1 })],
  ['/dashboard/orders', JSON.stringify({ count: 5 })],
  ['/dashboard/replay', JSON.stringify({ count: 1 })],
  ['/dashboard/faults', JSON.stringify({ failRate: 0.5 })],
];

describe('state-changing routes refuse what a foreign page can send', () => {
  before(async () => {
    // Something to replay, so that a replay that got through would show.
    assert.equal((await request('POST', '/dashboard/orders', json, JSON.stringify({ count: 2 }))).status, 200);
  });

  for (const [path, body] of STATE_CHANGING) {
    it(`POST ${path}: a body that is not JSON is 415 UNSUPPORTED_MEDIA_TYPE and writes nothing`, async () => {
      const before = await written();
      for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', undefined]) {
        const res = await request('POST', path, contentType ? { 'content-type': contentType } : {}, contentType ? body : undefined);
        assert.equal(res.status, 415, `${contentType}`);
        assert.equal(res.body.error?.code, 'UNSUPPORTED_MEDIA_TYPE');
        assert.match(res.body.error?.message ?? '', /application\/json/);
      }
      assert.deepEqual(await written(), before);
    });

    it(`POST ${path}: a foreign Origin is 403 FORBIDDEN and writes nothing`, async () => {
      const before = await written();
      for (const origin of ['http://attacker.example', 'null', `http://localhost:${server.port + 1}`, `http://127.0.0.1.attacker.example:${server.port}`, 'not a url']) {
        const res = await request('POST', path, { ...json, origin }, body);
        assert.equal(res.status, 403, origin);
        assert.equal(res.body.error?.code, 'FORBIDDEN');
        assert.match(res.body.error?.message ?? '', /Origin/);
      }
      assert.deepEqual(await written(), before);
    });

    it(`POST ${path}: a Host that is not this server's name is 403 FORBIDDEN, also with a matching Origin (DNS rebinding)`, async () => {
      const before = await written();
      for (const host of [`attacker.example:${server.port}`, 'attacker.example', `localhost.attacker.example:${server.port}`, `0.0.0.0:${server.port}`]) {
        for (const origin of [undefined, `http://${host}`]) {
          const res = await request('POST', path, { ...json, host, ...(origin ? { origin } : {}) }, body);
          assert.equal(res.status, 403, `${host} ${origin}`);
          assert.equal(res.body.error?.code, 'FORBIDDEN');
          assert.match(res.body.error?.message ?? '', /ALLOWED_HOSTS/);
        }
      }
      assert.deepEqual(await written(), before);
    });
  }

  it('the page\'s own requests go through: same-origin Origin, loopback names, no Origin (curl), ALLOWED_HOSTS names', async () => {
    const port = server.port;
    const cases: Array<Record<string, string>> = [
      { origin: `http://${own()}` },
      {},
      { host: `localhost:${port}`, origin: `http://localhost:${port}` },
      { host: `LOCALHOST:${port}` },
      { host: `[::1]:${port}`, origin: `http://[::1]:${port}` },
      { host: `127.0.0.2:${port}` },
      { host: `outbox.example:${port}`, origin: `http://outbox.example:${port}` },
      // Behind a proxy that ends TLS: the browser's scheme is https, the name is still ours.
      { host: 'outbox.example', origin: 'https://outbox.example' },
    ];
    for (const headers of cases) {
      const before = await written();
      const res = await request('POST', '/orders', { ...json, ...headers }, JSON.stringify({ productId: 'gadget', quantity: 1 }));
      assert.equal(res.status, 201, JSON.stringify(headers));
      assert.equal((await written()).orders, before.orders + 1);
    }
    const faults = await request('POST', '/dashboard/faults', { ...json, origin: `http://${own()}` }, JSON.stringify({ failRate: 0 }));
    assert.equal(faults.status, 200);
  });
});

describe('a server listening on every interface (HOST=0.0.0.0)', () => {
  it('still serves its own buttons: "Place orders" calls the API over loopback, not as 0.0.0.0', async () => {
    const open = await startTestServer(db, { host: '0.0.0.0', workers: 1 });
    try {
      const res = await request('POST', '/dashboard/orders', { ...json, origin: `http://127.0.0.1:${open.port}` }, JSON.stringify({ count: 2 }), open.port);
      assert.equal(res.status, 200);
      assert.equal(res.body.accepted, 2);
      assert.equal(res.body.ok, true);
      assert.equal((await request('GET', '/stats', { host: `0.0.0.0:${open.port}` }, undefined, open.port)).status, 403);
    } finally {
      await open.close();
    }
  });
});

describe('reads are answered only under this server\'s names too (DNS rebinding would let a page read them)', () => {
  it('the page, its stream, /stats, /metrics and /health are 403 for Host: attacker.example', async () => {
    for (const path of ['/', '/dashboard/assets/dashboard.js', '/dashboard/events', '/dashboard/capabilities', '/stats', '/products', '/metrics', '/health']) {
      const res = await request('GET', path, { host: `attacker.example:${server.port}` });
      assert.equal(res.status, 403, path);
      assert.equal(res.body.error?.code, 'FORBIDDEN', path);
    }
  });

  it('a Prometheus elsewhere scrapes /metrics and /health under a name in ALLOWED_HOSTS', async () => {
    for (const path of ['/metrics', '/health']) {
      const res = await request('GET', path, { host: `outbox.example:${server.port}` });
      assert.equal(res.status, 200, path);
    }
  });
});

describe('which names are this server\'s', () => {
  it('loopback names always; HOST when it names one address; ALLOWED_HOSTS; the port is not compared', () => {
    const names = serverNames('0.0.0.0', []);
    for (const host of ['localhost', 'localhost:8080', '127.0.0.1:1', '127.9.9.9', '[::1]:8080', '[::1]', 'LocalHost']) {
      assert.equal(hostAllowed(host, names), true, host);
    }
    for (const host of ['0.0.0.0:8080', '[::]:8080', 'attacker.example', '127.0.0.1.nip.io', '10.0.0.1', '', undefined, 'a b', '[::1']) {
      assert.equal(hostAllowed(host, names), false, String(host));
    }
    assert.equal(hostAllowed('192.0.2.7:8080', serverNames('192.0.2.7', [])), true);
    assert.equal(hostAllowed('demo.local', serverNames('demo.local', [])), true);
    assert.equal(hostAllowed('[fe80::1]:8080', serverNames('fe80::1', [])), true);
    assert.equal(hostAllowed('0.0.0.0', serverNames('0.0.0.0', [])), false);
    assert.equal(hostAllowed('[::]:80', serverNames('::', [])), false);
    const extra = serverNames('127.0.0.1', loadConfig({ ALLOWED_HOSTS: ' Outbox.Example , 192.0.2.9,fe80::2,[fe80::3]' }).allowedHosts);
    for (const host of ['outbox.example:8080', '192.0.2.9', '[fe80::2]:1', '[fe80::3]']) assert.equal(hostAllowed(host, extra), true, host);
  });

  it('ALLOWED_HOSTS takes names and addresses, comma-separated; a port, scheme or path is a clear error', () => {
    assert.deepEqual(loadConfig({}).allowedHosts, []);
    assert.deepEqual(loadConfig({ ALLOWED_HOSTS: 'a.example,,B.example' }).allowedHosts, ['a.example', 'b.example']);
    for (const bad of ['a.example:8080', 'http://a.example', 'a.example/x', 'a b', '[::1']) {
      assert.throws(() => loadConfig({ ALLOWED_HOSTS: bad }), (error: unknown) => error instanceof ConfigError && /ALLOWED_HOSTS/.test(error.message), bad);
    }
  });
});
