// The dashboard's server side over real HTTP: the event stream, the buttons' endpoints and
// who may use them. (The page itself is driven in a real browser in dashboard.browser.test.ts.)
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { RunningServer } from '../app/wiring.ts';
import type { Snapshot } from '../dashboard/live.ts';
import type { Step } from '../dashboard/feed.ts';
import { createInventoryConsumer } from '../inventory/consumer.ts';
import { setStock } from '../inventory/stock.ts';
import { createSilentLogger } from '../log/logger.ts';
import { runReplay } from '../replay/replay.ts';
import { createTestDatabase, type TestDatabase } from '../testkit/database.ts';
import { startTestServer } from '../testkit/server.ts';
import { openSse, type SseEvent } from '../testkit/sse.ts';
import { createHttpApp } from './app.ts';
import { isLoopback } from './dashboard.ts';

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
beforeEach(async () => {
  await setStock(db.pool, { widget: 100_000, gadget: 100_000, gizmo: 100_000, doohickey: 100_000 });
});

const snapshotWhere = (check: (s: Snapshot) => boolean) => (e: SseEvent) => e.event === 'snapshot' && check(e.data as Snapshot);
const stepsOf = (events: SseEvent[]) => events.filter((e) => e.event === 'steps').flatMap((e) => (e.data as { steps: Step[] }).steps);

function post(path: string, body?: unknown, base = server.url) {
  return fetch(`${base}${path}`, {
    method: 'POST',
    ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
}

async function totals() {
  const { rows } = await db.pool.query(
    `SELECT (SELECT count(*)::int FROM orders WHERE status = 'CONFIRMED') AS confirmed,
            (SELECT count(*)::int FROM outbox) AS outbox,
            (SELECT count(*)::int FROM skipped_duplicates) AS skipped,
            (SELECT sum(stock)::int FROM products) AS stock`,
  );
  return rows[0] as { confirmed: number; outbox: number; skipped: number; stock: number };
}

describe('GET /dashboard/events', () => {
  it('pushes a snapshot at once, then the steps and numbers of "Place 50 orders" as they happen', async () => {
    const stream = await openSse(`${server.url}/dashboard/events`);
    try {
      const first = (await stream.next((e) => e.event === 'snapshot')).data as Snapshot;
      assert.deepEqual(first.workers, ['Worker-1', 'Worker-2', 'Worker-3', 'Worker-4', 'Worker-5']);
      const before = await totals();

      const res = await post('/dashboard/orders', {});
      assert.equal(res.status, 200);
      const result = await res.json();
      assert.equal(result.accepted, 50);
      assert.equal(result.confirmed, 50);
      assert.ok(result.ok, result.problems.join('; '));

      const after = await totals();
      assert.deepEqual(after, { ...before, confirmed: before.confirmed + 50, stock: before.stock - 50 });
      // The stream catches up with the database: the same numbers GET /stats shows.
      const last = (await stream.next(snapshotWhere((s) => s.stats.orders.CONFIRMED === after.confirmed && s.stats.outbox.pending === 0))).data as Snapshot;
      const stats = await (await fetch(`${server.url}/stats?fresh=1`)).json();
      // Same numbers; the signals (ages, the horizon) move with every read.
      assert.deepEqual({ ...last.stats, signals: undefined }, { ...stats, signals: undefined });

      const skipped = stream.events.filter((e) => e.event === 'steps').reduce((n, e) => n + (e.data as { skipped: number }).skipped, 0);
      assert.equal(skipped, 0, 'no step was left out of a batch');
      const kinds = new Map<string, number>();
      for (const step of stepsOf(stream.events)) kinds.set(step.kind, (kinds.get(step.kind) ?? 0) + 1);
      assert.equal(kinds.get('accepted'), 50, 'one accepted step per order');
      assert.equal(kinds.get('applied'), 50, 'one applied step per order');
      assert.ok((kinds.get('claimed') ?? 0) >= 1 && (kinds.get('delivered') ?? 0) >= 1);
      const claimers = new Set(stepsOf(stream.events).filter((s) => s.kind === 'claimed').map((s) => s.speaker));
      assert.ok([...claimers].every((name) => first.workers.includes(name)));
      // Batched: far fewer messages than steps.
      assert.ok(stream.events.filter((e) => e.event === 'steps').length < 50);
    } finally {
      stream.close();
    }
  });

  it('shows another process\'s replay: duplicates rise, stock does not move, the workers\' SKIPPING steps arrive', async () => {
    await post('/dashboard/orders', { count: 5 });
    const stream = await openSse(`${server.url}/dashboard/events`);
    try {
      const first = (await stream.next((e) => e.event === 'snapshot')).data as Snapshot;
      // Like `npm run replay`: its own pool, no way to nudge; the server's workers find the rows by polling.
      const otherProcess = db.newPool(4, 'outbox-demo:replay');
      const replay = await runReplay(
        { count: 3, messageIds: [], fresh: false, freshProductId: 'widget', waitTimeoutMs: 15_000 },
        { pool: otherProcess, consumer: createInventoryConsumer({ pool: otherProcess, logger: createSilentLogger() }), logger: createSilentLogger(), serverRunning: true, leaseMs: 30_000 },
      );
      assert.ok(replay.ok);
      const later = (await stream.next(snapshotWhere((s) => s.stats.duplicatesSkipped === first.stats.duplicatesSkipped + 3))).data as Snapshot;
      assert.deepEqual(later.stats.products, first.stats.products, 'stock did not move');
      // The three skips may come in one batch or in several.
      const skipsSoFar = () => stepsOf(stream.events).filter((s) => s.kind === 'duplicate');
      await stream.next(() => skipsSoFar().length >= 3);
      const skips = skipsSoFar();
      assert.equal(skips.length, 3);
      assert.ok(skips.every((s) => s.speaker === 'Inventory' && /SKIPPING duplicate message/.test(s.message)));
    } finally {
      stream.close();
    }
  });
});

describe('the buttons\' endpoints', () => {
  it('"Replay 3 duplicates" skips three and changes nothing else', async () => {
    await post('/dashboard/orders', { count: 3 });
    const before = await totals();
    const res = await post('/dashboard/replay', {});
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { replayed: 3, skipped: 3, stockUnchanged: true, ok: true });
    assert.deepEqual(await totals(), { ...before, skipped: before.skipped + 3 });
  });

  it('runs one lesson at a time: a second click while the first runs gets 409 CONFLICT', async () => {
    const first = post('/dashboard/orders', { count: 200 });
    // Wait until the first run has begun (its orders are arriving), then press again.
    const start = (await totals()).confirmed;
    while ((await db.pool.query(`SELECT count(*)::int AS n FROM orders WHERE user_id = 'dashboard'`)).rows[0].n <= start) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const second = await post('/dashboard/replay', {});
    assert.equal(second.status, 409);
    assert.equal((await second.json()).error.code, 'CONFLICT');
    const result = await (await first).json();
    assert.equal(result.ok, true, `${JSON.stringify(result.problems)} (${result.failed} failed)`);
  });

  it('rejects bad counts with 400 and writes nothing', async () => {
    const before = await totals();
    for (const count of [0, 1001, 2.5, '50']) {
      const res = await post('/dashboard/orders', { count });
      assert.equal(res.status, 400);
      assert.equal((await res.json()).error.code, 'VALIDATION_FAILED');
    }
    assert.equal((await post('/dashboard/replay', { count: 101 })).status, 400);
    const tooLarge = await post('/dashboard/orders', { count: 1, padding: 'x'.repeat(2_000) });
    assert.equal(tooLarge.status, 413);
    assert.match((await tooLarge.json()).error.message, /the 1 kB limit \(1024 bytes\)/);
    assert.deepEqual(await totals(), before);
  });

  it("offers the real server's fault switch: POST /dashboard/faults sets its fail rate", async () => {
    const caps = await (await fetch(`${server.url}/dashboard/capabilities`)).json();
    assert.deepEqual(caps, { live: true, lessons: true, faults: true, actionsAllowed: true, failRate: 0 });
    assert.equal((await post('/dashboard/faults', { failRate: 0.5 })).status, 200);
    assert.equal((await (await fetch(`${server.url}/dashboard/capabilities`)).json()).failRate, 0.5);
    assert.equal((await post('/dashboard/faults', { failRate: 0 })).status, 200);
  });

  it('serves the page and its assets', async () => {
    const page = await fetch(`${server.url}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    assert.match(await page.text(), /<script type="module" src="\/dashboard\/assets\/dashboard\.js">/);
    for (const asset of ['dashboard.js', 'i18n.js', 'chart.js', 'dashboard.css']) {
      assert.equal((await fetch(`${server.url}/dashboard/assets/${asset}`)).status, 200, asset);
    }
    assert.equal((await fetch(`${server.url}/dashboard/assets/nope.js`)).status, 404);
    assert.equal((await post('/')).status, 405);
  });
});

describe('fault injection, when the server has it', () => {
  let app: Server;
  let base: string;
  let rate = 0;
  before(async () => {
    const http = createHttpApp({
      pool: db.pool,
      logger: createSilentLogger(),
      faults: { setFailRate: (r) => (rate = r), failRate: () => rate },
    });
    app = await new Promise<Server>((resolve) => {
      const s = http.listen(0, '127.0.0.1', () => resolve(s));
    });
    base = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => app.close(() => resolve())));

  it('POST /dashboard/faults sets the fail rate; capabilities report it; bad rates are 400', async () => {
    const res = await post('/dashboard/faults', { failRate: 0.5 }, base);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { failRate: 0.5 });
    assert.equal(rate, 0.5);
    const caps = await (await fetch(`${base}/dashboard/capabilities`)).json();
    assert.deepEqual(caps, { live: false, lessons: false, faults: true, failRate: 0.5, actionsAllowed: true });
    for (const failRate of [-0.1, 1.5, '0.5', null]) {
      const bad = await post('/dashboard/faults', { failRate }, base);
      assert.equal(bad.status, 400);
    }
    assert.equal(rate, 0.5);
    assert.equal((await post('/dashboard/orders', {}, base)).status, 404, 'no lessons wired here');
  });
});

describe('who may press the buttons', () => {
  it('knows loopback addresses', () => {
    for (const address of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) assert.equal(isLoopback(address), true, address);
    for (const address of ['192.0.2.2', '::ffff:10.0.0.1', 'fd00::2', '', undefined]) assert.equal(isLoopback(address), false, String(address));
  });

  it('answers other machines 403 FORBIDDEN (a forwarded-for header does not help), but still shows them the page', async (t) => {
    // (The address they use must be one of the server's names: ALLOWED_HOSTS, see guard.test.ts.)
    const external = Object.values(os.networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal);
    if (!external) {
      t.skip('this machine has no non-loopback IPv4 address to connect from');
      return;
    }
    const open = await startTestServer(db, { host: '0.0.0.0', workers: 1, allowedHosts: [external.address] });
    try {
      const remote = `http://${external.address}:${open.port}`;
      const before = await totals();
      const res = await fetch(`${remote}/dashboard/orders`, { method: 'POST', headers: { 'x-forwarded-for': '127.0.0.1', 'content-type': 'application/json' }, body: '{}' });
      assert.equal(res.status, 403);
      assert.equal((await res.json()).error.code, 'FORBIDDEN');
      assert.equal((await post('/dashboard/replay', {}, remote)).status, 403);
      assert.deepEqual(await totals(), before);
      assert.equal((await fetch(`${remote}/`)).status, 200);
      const caps = await (await fetch(`${remote}/dashboard/capabilities`)).json();
      assert.equal(caps.actionsAllowed, false);
    } finally {
      await open.close();
    }
  });
});

describe('shutdown', () => {
  it('ends open event streams, so the server stops instead of waiting for the viewers', async () => {
    const own = await startTestServer(db, { workers: 1 });
    const stream = await openSse(`${own.url}/dashboard/events`);
    await stream.next((e) => e.event === 'snapshot');
    await own.close();
    await stream.ended;
  });
});
