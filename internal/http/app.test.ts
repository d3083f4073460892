import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createSilentLogger } from '../log/logger.ts';
import { createTestDatabase, type TestDatabase } from '../testkit/database.ts';
import { createHttpApp } from './app.ts';

let db: TestDatabase;
let server: Server;
let base: string;
let nudges = 0;

before(async () => {
  db = await createTestDatabase(import.meta.filename);
  const app = createHttpApp({ pool: db.pool, logger: createSilentLogger(), wakeup: { notifyInTransaction: false, committed: () => (nudges += 1) } });
  server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await db.drop();
});

async function counts() {
  const { rows } = await db.pool.query(
    `SELECT (SELECT count(*)::int FROM orders) AS orders, (SELECT count(*)::int FROM outbox) AS outbox`,
  );
  return rows[0] as { orders: number; outbox: number };
}

function post(body: string, contentType = 'application/json') {
  return fetch(`${base}/orders`, { method: 'POST', headers: { 'content-type': contentType }, body });
}

describe('POST /orders', () => {
  it('accepts a valid order: 201, PENDING, order and event written, workers nudged', async () => {
    const before = await counts();
    const res = await post(JSON.stringify({ productId: 'widget', quantity: 2, userId: 'alice' }));
    assert.equal(res.status, 201);
    const order = await res.json();
    assert.equal(order.status, 'PENDING');
    assert.equal(res.headers.get('location'), `/orders/${order.id}`);
    assert.deepEqual(await counts(), { orders: before.orders + 1, outbox: before.outbox + 1 });
    assert.ok(nudges > 0);

    const fetched = await fetch(`${base}/orders/${order.id}`);
    assert.equal(fetched.status, 200);
    assert.equal((await fetched.json()).id, order.id);
  });

  const bad: Array<[string, string, number, string, string?]> = [
    ['invalid JSON', '{"productId": "widget", ', 400, 'INVALID_JSON'],
    ['wrong content type', 'productId=widget&quantity=1', 415, 'UNSUPPORTED_MEDIA_TYPE', 'application/x-www-form-urlencoded'],
    ['no content type', '{"productId":"widget","quantity":1}', 415, 'UNSUPPORTED_MEDIA_TYPE', 'text/plain'],
    ['an array', '[1,2]', 400, 'VALIDATION_FAILED'],
    ['missing productId', '{"quantity":1}', 400, 'VALIDATION_FAILED'],
    ['missing quantity', '{"productId":"widget"}', 400, 'VALIDATION_FAILED'],
    ['quantity 0', '{"productId":"widget","quantity":0}', 400, 'VALIDATION_FAILED'],
    ['negative quantity', '{"productId":"widget","quantity":-3}', 400, 'VALIDATION_FAILED'],
    ['fractional quantity', '{"productId":"widget","quantity":1.5}', 400, 'VALIDATION_FAILED'],
    ['string quantity', '{"productId":"widget","quantity":"1"}', 400, 'VALIDATION_FAILED'],
    ['huge quantity', '{"productId":"widget","quantity":1e300}', 400, 'VALIDATION_FAILED'],
    ['numeric productId', '{"productId":7,"quantity":1}', 400, 'VALIDATION_FAILED'],
    ['extra field', '{"productId":"widget","quantity":1,"price":0}', 400, 'VALIDATION_FAILED'],
    ['bad userId', '{"productId":"widget","quantity":1,"userId":{}}', 400, 'VALIDATION_FAILED'],
    ['unknown product', '{"productId":"unobtainium","quantity":1}', 422, 'UNKNOWN_PRODUCT'],
    ['an empty body', '', 400, 'VALIDATION_FAILED'],
    ['JSON null', 'null', 400, 'VALIDATION_FAILED'],
    ['a JSON string', '"widget"', 400, 'VALIDATION_FAILED'],
    ['a JSON number', '42', 400, 'VALIDATION_FAILED'],
    ['trailing garbage', '{"productId":"widget","quantity":1}}', 400, 'INVALID_JSON'],
    ['null quantity', '{"productId":"widget","quantity":null}', 400, 'VALIDATION_FAILED'],
    ['boolean quantity', '{"productId":"widget","quantity":true}', 400, 'VALIDATION_FAILED'],
    ['quantity 1001', '{"productId":"widget","quantity":1001}', 400, 'VALIDATION_FAILED'],
    ['NaN-like quantity', '{"productId":"widget","quantity":"NaN"}', 400, 'VALIDATION_FAILED'],
    ['empty productId', '{"productId":"","quantity":1}', 400, 'VALIDATION_FAILED'],
    ['productId with SQL', '{"productId":"widget\'; DROP TABLE orders;--","quantity":1}', 400, 'VALIDATION_FAILED'],
    ['productId as an object', '{"productId":{"id":"widget"},"quantity":1}', 400, 'VALIDATION_FAILED'],
    ['constructor field', '{"productId":"widget","quantity":1,"constructor":{"admin":true}}', 400, 'VALIDATION_FAILED'],
    ['userId too long', JSON.stringify({ productId: 'widget', quantity: 1, userId: 'u'.repeat(65) }), 400, 'VALIDATION_FAILED'],
    ['text/json content type', '{"productId":"widget","quantity":1}', 415, 'UNSUPPORTED_MEDIA_TYPE', 'text/json'],
    ['body over the limit', JSON.stringify({ productId: 'widget', quantity: 1, userId: 'x'.repeat(10_000) }), 413, 'PAYLOAD_TOO_LARGE'],
  ];
  it('says what the body limit is when a body is over it (413)', async () => {
    const res = await post(JSON.stringify({ productId: 'widget', quantity: 1, userId: 'x'.repeat(10_000) }));
    assert.equal(res.status, 413);
    assert.equal((await res.json()).error.message, 'the request body is larger than the 4 kB limit (4096 bytes)');
  });

  for (const [name, body, status, code, contentType] of bad) {
    it(`rejects ${name} with ${status} ${code} and writes nothing`, async () => {
      const before = await counts();
      const res = await post(body, contentType);
      assert.equal(res.status, status);
      assert.match(res.headers.get('content-type') ?? '', /application\/json/);
      const json = await res.json();
      assert.equal(json.error.code, code);
      assert.equal(typeof json.error.message, 'string');
      assert.doesNotMatch(JSON.stringify(json), /at .*\.ts|SELECT|INSERT/);
      assert.deepEqual(await counts(), before);
    });
  }
});

describe('POST /orders with an Idempotency-Key', () => {
  const send = (key: string, body: object) =>
    fetch(`${base}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify(body),
    });

  it('a retry with the same key and body gets the same order back, marked as replayed', async () => {
    const before = await counts();
    const first = await send('http-k-1', { productId: 'widget', quantity: 1 });
    const again = await send('http-k-1', { productId: 'widget', quantity: 1 });
    assert.equal(first.status, 201);
    assert.equal(again.status, 201);
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    assert.equal((await again.json()).id, (await first.json()).id);
    assert.deepEqual(await counts(), { orders: before.orders + 1, outbox: before.outbox + 1 });
  });

  it('the same key with a different body is 422 IDEMPOTENCY_KEY_REUSED; a malformed key is 400', async () => {
    await send('http-k-2', { productId: 'widget', quantity: 1 });
    const before = await counts();
    const reused = await send('http-k-2', { productId: 'widget', quantity: 2 });
    assert.equal(reused.status, 422);
    assert.equal((await reused.json()).error.code, 'IDEMPOTENCY_KEY_REUSED');
    const malformed = await send('x'.repeat(201), { productId: 'widget', quantity: 1 });
    assert.equal(malformed.status, 400);
    assert.deepEqual(await counts(), before);
  });
});

describe('other routes', () => {
  it('a body that claims gzip but is not is a 400, not a 500', async () => {
    const before = await counts();
    const res = await fetch(`${base}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: 'this is not gzip',
    });
    assert.equal(res.status, 400);
    assert.equal((await res.json()).error.code, 'BAD_REQUEST');
    assert.deepEqual(await counts(), before);
  });

  it('unknown routes and wrong methods anywhere are JSON errors, never HTML or stacks', async () => {
    const cases: Array<[string, string, number]> = [
      ['GET', '/nowhere', 404],
      ['POST', '/products', 405],
      ['DELETE', '/orders/00000000-0000-4000-8000-000000000000', 405],
      ['PUT', '/stats', 405],
      ['POST', '/health', 405],
      ['GET', '/orders/%E0%A4%A', 404],
    ];
    for (const [method, path, status] of cases) {
      const res = await fetch(`${base}${path}`, { method });
      assert.equal(res.status, status, `${method} ${path}`);
      const body = await res.text();
      assert.doesNotMatch(body, /<html|at .*\.ts|Error:/i);
      assert.ok(JSON.parse(body).error.code);
    }
  });

  it('GET /orders/:id is 404 for unknown and malformed ids', async () => {
    for (const id of ['00000000-0000-4000-8000-000000000000', 'nope']) {
      const res = await fetch(`${base}/orders/${id}`);
      assert.equal(res.status, 404);
      assert.equal((await res.json()).error.code, 'NOT_FOUND');
    }
  });

  it('GET /products lists stock; GET /stats and /health answer', async () => {
    const products = await (await fetch(`${base}/products`)).json();
    assert.ok(products.products.some((p: { id: string }) => p.id === 'widget'));
    const stats = await (await fetch(`${base}/stats`)).json();
    assert.equal(typeof stats.orders.PENDING, 'number');
    assert.equal(typeof stats.outbox.pending, 'number');
    assert.equal(typeof stats.duplicatesSkipped, 'number');
    const health = await fetch(`${base}/health`);
    assert.equal(health.status, 200);
  });

  it('unknown routes are 404 and wrong methods 405, as JSON', async () => {
    const missing = await fetch(`${base}/nowhere`);
    assert.equal(missing.status, 404);
    assert.equal((await missing.json()).error.code, 'NOT_FOUND');
    const wrong = await fetch(`${base}/orders`, { method: 'DELETE' });
    assert.equal(wrong.status, 405);
    assert.equal(wrong.headers.get('allow'), 'GET, POST');
    assert.equal((await wrong.json()).error.code, 'METHOD_NOT_ALLOWED');
  });

  it('GET /orders?ids= returns the known orders among up to 100 ids, and 400 for anything else', async () => {
    const placed = await Promise.all([1, 2].map(async (quantity) => (await post(JSON.stringify({ productId: 'gadget', quantity }))).json()));
    const unknown = '00000000-0000-4000-8000-000000000000';
    const res = await fetch(`${base}/orders?ids=${placed[0].id},${placed[1].id},${unknown}`);
    assert.equal(res.status, 200);
    const { orders } = await res.json();
    assert.deepEqual(orders.map((o: { id: string }) => o.id).sort(), [placed[0].id, placed[1].id].sort());
    const tooMany = Array.from({ length: 101 }, () => crypto.randomUUID()).join(',');
    for (const query of ['', '?ids=', '?ids=nope', `?ids=${tooMany}`]) {
      const bad = await fetch(`${base}/orders${query}`);
      assert.equal(bad.status, 400, query);
      assert.equal((await bad.json()).error.code, 'VALIDATION_FAILED');
    }
  });

  it('GET /health is 503 when the database does not answer', async () => {
    const pool = db.newPool(1);
    await pool.end();
    const app = createHttpApp({ pool, logger: createSilentLogger() });
    const s = await new Promise<Server>((resolve) => {
      const x = app.listen(0, '127.0.0.1', () => resolve(x));
    });
    try {
      const res = await fetch(`http://127.0.0.1:${(s.address() as AddressInfo).port}/health`);
      assert.equal(res.status, 503);
    } finally {
      s.closeAllConnections();
      await new Promise((resolve) => s.close(resolve));
    }
  });
});
