// The dashboard in a real Chromium (Debian's `chromium`, driven by playwright-core): press the
// buttons and watch the page tell the truth. Without Chromium the test says so and skips,
// except in CI (CI=true), where it must run. SCREENSHOT_PATH=docs/dashboard.png refreshes
// the README's screenshot. The Health panel is checked against real trouble: a transaction
// the test holds open, and a dead letter made with the fault switch.
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { RunningServer } from '../app/wiring.ts';
import { browserTestSettings, READ_DEFAULTS } from '../config/config.ts';
import type { Stats } from '../stats/stats.ts';
import { chromiumArgs, findChromium } from '../testkit/browser.ts';
import { createTestDatabase, type TestDatabase } from '../testkit/database.ts';
import { startTestServer } from '../testkit/server.ts';

const settings = browserTestSettings();
const executablePath = await findChromium(settings.chromiumPath);

let db: TestDatabase;
let server: RunningServer;
let browser: Browser;
before(async () => {
  if (!executablePath) return;
  db = await createTestDatabase(import.meta.filename);
  server = await startTestServer(db, { pollIntervalMs: 100 });
  browser = await chromium.launch({ executablePath, args: chromiumArgs() });
});
after(async () => {
  await browser?.close();
  await server?.close();
  await db?.drop();
});

/** What the page shows, read from its data-value attributes (the text is formatted). */
function shown(page: Page) {
  return page.evaluate(() => {
    const value = (el: Element | null) => (el ? Number((el as HTMLElement).dataset.value) : NaN);
    const m = (name: string) => value(document.querySelector(`[data-metric="${name}"]`));
    const lanes = Object.fromEntries(
      [...document.querySelectorAll<HTMLElement>('.lane')].map((lane) => [lane.dataset.worker!, value(lane.querySelector('[data-metric="lane-delivered"]'))]),
    );
    const stock = Object.fromEntries(
      [...document.querySelectorAll<HTMLElement>('tr[data-product]')].map((row) => [row.dataset.product!, value(row.querySelector('.stock-n'))]),
    );
    return {
      orders: { total: m('orders-total'), PENDING: m('orders-pending'), CONFIRMED: m('orders-confirmed'), REJECTED: m('orders-rejected'), CANCELLED: m('orders-cancelled') },
      backlog: m('backlog'),
      parked: m('parked'),
      applied: m('applied'),
      duplicates: m('duplicates'),
      lanes,
      stock,
    };
  });
}

function expectedFrom(stats: Stats) {
  const lanes = Object.fromEntries(['Worker-1', 'Worker-2', 'Worker-3', 'Worker-4', 'Worker-5'].map((w) => [w, stats.deliveriesByWorker[w] ?? 0]));
  return {
    orders: { total: stats.orders.total, PENDING: stats.orders.PENDING, CONFIRMED: stats.orders.CONFIRMED, REJECTED: stats.orders.REJECTED, CANCELLED: stats.orders.CANCELLED },
    backlog: stats.outbox.pending,
    parked: stats.outbox.parked,
    applied: stats.processed.applied,
    duplicates: stats.duplicatesSkipped,
    lanes,
    stock: Object.fromEntries(stats.products.map((p) => [p.id, p.stock])),
  };
}

/** Waits until the page shows what GET /stats says now, then compares them field by field. */
async function agreesWithStats(page: Page): Promise<Stats> {
  const stats = (await (await fetch(`${server.url}/stats?fresh=1`)).json()) as Stats;
  const expected = expectedFrom(stats);
  const deadline = Date.now() + 10_000;
  // The page catches up with the next pushed snapshot; then every number must be the same.
  while (!isDeepStrictEqual(await shown(page), expected) && Date.now() < deadline) await page.waitForTimeout(100);
  assert.deepEqual(await shown(page), expected);
  return stats;
}

/** One tile of the Health panel as the page shows it. */
interface ShownSignal {
  value: number;
  text: string;
  state: string;
  label: string;
  detail: string;
  rule: string;
}

function shownSignal(page: Page, name: string): Promise<ShownSignal> {
  return page.evaluate((signal) => {
    const tile = document.querySelector<HTMLElement>(`[data-signal="${signal}"]`)!;
    const text = (selector: string) => tile.querySelector<HTMLElement>(selector)!.textContent ?? '';
    return {
      value: Number(tile.querySelector<HTMLElement>('.value')!.dataset.value),
      text: text('.value'),
      state: tile.dataset.state!,
      label: text('.label'),
      detail: text('.detail'),
      rule: text('.rule'),
    };
  }, name);
}

/** Waits until the tile `name` satisfies `check` (the page gets a snapshot every second). */
async function waitForSignal(page: Page, name: string, check: (s: ShownSignal) => boolean, timeoutMs = 15_000): Promise<ShownSignal> {
  const deadline = Date.now() + timeoutMs;
  let shown = await shownSignal(page, name);
  while (!check(shown) && Date.now() < deadline) {
    await page.waitForTimeout(100);
    shown = await shownSignal(page, name);
  }
  assert.ok(check(shown), `the "${name}" signal never got there; it shows ${JSON.stringify(shown)}`);
  return shown;
}

async function setFailRate(failRate: number): Promise<void> {
  const res = await fetch(`${server.url}/dashboard/faults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ failRate }),
  });
  assert.equal(res.status, 200);
}

/** The dashboard in a 1600×900 page, live, with its errors collected; undefined when skipped. */
async function openDashboard(t: { skip(message: string): void }): Promise<{ page: Page; problems: string[] } | undefined> {
  if (!executablePath) {
    if (settings.required) assert.fail('CI=true but no Chromium was found: apt-get install -y chromium, or set CHROMIUM_PATH');
    t.skip('no Chromium found (install Debian\'s chromium or set CHROMIUM_PATH); the dashboard was not tested in a browser');
    return undefined;
  }
  const page = await browser.newPage({ viewport: { width: 1600, height: 900 } });
  const problems: string[] = [];
  page.on('pageerror', (error) => problems.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(message.text());
  });
  // tsx compiles this file with esbuild's keepNames, which wraps the functions handed to
  // page.evaluate in a __name(…) helper that exists only in Node; give the page a no-op one.
  await page.addInitScript('globalThis.__name = (fn) => fn');
  await page.goto(`${server.url}/?lang=en`);
  await page.waitForSelector('#connection[data-state="live"]');
  await page.waitForFunction(() => document.querySelectorAll('.lane').length === 5);
  return { page, problems };
}

describe('the dashboard in Chromium', () => {
  it('"Place 50 orders": backlog drains to 0, 50 confirmed, the numbers match GET /stats; "Replay 3 duplicates" moves no stock', async (t) => {
    const opened = await openDashboard(t);
    if (!opened) return;
    const { page, problems } = opened;
    assert.equal(await page.isVisible('#faults'), true, 'the server has fault injection, so the page offers the button');
    const stockBefore = (await shown(page)).stock;

    await page.getByRole('button', { name: 'Place 50 orders' }).click();
    await page.waitForFunction(
      () =>
        document.querySelector<HTMLElement>('[data-metric="backlog"]')?.dataset.value === '0' &&
        document.querySelector<HTMLElement>('[data-metric="orders-confirmed"]')?.dataset.value === '50' &&
        document.querySelector<HTMLElement>('#action-result')?.dataset.done === 'place-orders',
      undefined,
      { timeout: 30_000 },
    );
    assert.match((await page.textContent('#action-result')) ?? '', /^✓ 50 orders accepted; 50 confirmed, 0 rejected/);
    const afterOrders = await agreesWithStats(page);
    assert.equal(afterOrders.orders.CONFIRMED, 50);
    assert.ok(Object.values(afterOrders.deliveriesByWorker).filter((n) => n > 0).length > 1, 'more than one lane delivered');
    assert.equal(await page.textContent('tr.total .delta'), '−50', 'stock fell by 50 in all');
    const kinds = await page.$$eval('#feed .step', (lines) => lines.map((li) => (li as HTMLElement).dataset.kind));
    assert.ok(kinds.includes('applied') || kinds.includes('delivered'), `the feed shows deliveries: ${kinds.join(', ')}`);

    await page.getByRole('button', { name: 'Replay 3 duplicates' }).click();
    await page.waitForFunction(
      () =>
        document.querySelector<HTMLElement>('[data-metric="duplicates"]')?.dataset.value === '3' &&
        document.querySelector<HTMLElement>('#action-result')?.dataset.done === 'replay',
      undefined,
      { timeout: 30_000 },
    );
    const afterReplay = await agreesWithStats(page);
    assert.equal(afterReplay.duplicatesSkipped, 3);
    const stockAfterOrders = Object.fromEntries(afterOrders.products.map((p) => [p.id, p.stock]));
    assert.deepEqual((await shown(page)).stock, stockAfterOrders, 'the replay did not move stock');
    assert.equal(Object.values(stockBefore).reduce((a, b) => a + b, 0) - Object.values(stockAfterOrders).reduce((a, b) => a + b, 0), 50);
    assert.ok((await page.$$eval('#feed .step', (lines) => lines.map((li) => (li as HTMLElement).dataset.kind))).includes('duplicate'));

    const screenshot = settings.screenshotPath ?? path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'outbox-dashboard-')), 'dashboard.png');
    await fs.mkdir(path.dirname(screenshot), { recursive: true });
    await page.waitForTimeout(800); // let the counters' bump animation settle for the picture
    await page.screenshot({ path: screenshot });
    t.diagnostic(`screenshot: ${screenshot}`);

    await page.getByRole('button', { name: '繁體中文' }).click();
    assert.equal(await page.getAttribute('html', 'lang'), 'zh-TW');
    assert.equal(await page.textContent('#place-orders'), '下 50 筆訂單');
    assert.equal(await page.textContent('#replay'), '重播 3 則重複訊息');
    assert.match((await page.textContent('#action-result')) ?? '', /略過 3 則/);
    await page.getByRole('button', { name: 'EN' }).click();
    assert.equal(await page.textContent('#place-orders'), 'Place 50 orders');

    assert.deepEqual(problems, [], 'no errors in the page');
    await page.close();
  });

  it('the Health panel: the oldest event, an open transaction and who holds it, dead letters and late orders, each against its threshold', async (t) => {
    if (executablePath) {
      // The same database, served with settings that make trouble quick to see.
      await server.close();
      server = await startTestServer(db, {
        pollIntervalMs: 100,
        // A failing delivery waits 8 to 16 s for its second and last attempt: long enough to
        // watch the oldest event's age, short enough to see it become a dead letter.
        maxAttempts: 2,
        retryBaseMs: 16_000,
        // An order counts as "pending too long" after 1 s, so the dead letter's order shows there.
        reads: { ...READ_DEFAULTS, pendingOrderThresholdMs: 1_000 },
      });
    }
    const opened = await openDashboard(t);
    if (!opened) return;
    const { page, problems } = opened;
    await page.waitForSelector('#health:not([hidden])');

    // Settled: nothing waits in the outbox, nothing gave up.
    const empty = await waitForSignal(page, 'outbox-oldest', (s) => s.value === 0);
    assert.deepEqual([empty.text, empty.state, empty.rule], ['0 s', 'ok', 'alert > 60 s']);
    const none = await shownSignal(page, 'dead-letters');
    assert.deepEqual([none.value, none.state, none.rule], [0, 'ok', 'alert > 0']);
    assert.match((await shownSignal(page, 'dead-tuples')).text, /^≈ \d/, 'dead tuples come from statistics: marked as an estimate');

    // A session left in a REPEATABLE READ transaction holds the oldest snapshot.
    const holderName = 'dashboard-test:old-snapshot';
    const holder = await db.newPool(1, holderName).connect();
    try {
      await holder.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await holder.query('SELECT 1');
      const held = await waitForSignal(page, 'transaction', (s) => s.detail.includes(holderName));
      assert.ok(held.value > 0, `the transaction is older than 0 s: ${JSON.stringify(held)}`);
      assert.match(held.detail, /^held by dashboard-test:old-snapshot \(idle in transaction, pid \d+\)$/);
      assert.equal(held.state, 'ok', 'seconds old: under the 5 min threshold');
      assert.equal(held.rule, 'alert > 5 min · an old snapshot slows the claim');
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
    await waitForSignal(page, 'transaction', (s) => !s.detail.includes(holderName));

    // Every delivery fails: the event waits for its retry, then becomes a dead letter.
    await setFailRate(1);
    try {
      const res = await fetch(`${server.url}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ productId: 'widget', quantity: 1 }),
      });
      assert.equal(res.status, 201);
      const waiting = await waitForSignal(page, 'outbox-oldest', (s) => s.value > 0);
      assert.match(waiting.text, /^\d+(\.\d)? s$/);
      const deadLetter = await waitForSignal(page, 'dead-letters', (s) => s.value === 1, 60_000);
      assert.equal(deadLetter.state, 'warn', 'any dead letter is an alert');
      assert.match(deadLetter.detail, /^oldest: \d+(\.\d)? s$/);
      const stats = (await (await fetch(`${server.url}/stats?fresh=1`)).json()) as Stats;
      assert.equal(stats.deadLetters, 1);
      const late = await waitForSignal(page, 'pending-too-long', (s) => s.value === 1);
      assert.deepEqual([late.label, late.state], ['orders pending > 1 s', 'warn'], 'its order stays PENDING');
      assert.equal(await page.locator('[data-signal="dead-letters"][data-state="warn"] .value').evaluate((el) => getComputedStyle(el).color), 'rgb(250, 204, 21)', 'painted amber');
      const screenshot = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'outbox-dashboard-')), 'health-alert.png');
      await page.screenshot({ path: screenshot });
      t.diagnostic(`screenshot with a dead letter: ${screenshot}`);
    } finally {
      await setFailRate(0);
    }

    await page.getByRole('button', { name: '繁體中文' }).click();
    assert.equal(await page.textContent('#health > h2'), '健康狀態');
    assert.equal((await shownSignal(page, 'pending-too-long')).label, '處理中超過 1 秒 的訂單');
    assert.equal((await shownSignal(page, 'dead-letters')).rule, '警報：> 0');

    assert.deepEqual(problems, [], 'no errors in the page');
    await page.close();
  });
});
