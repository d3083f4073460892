// The dashboard in a real Chromium (Debian's `chromium`, driven by playwright-core): press the
// buttons and watch the page tell the truth. Without Chromium the test says so and skips,
// except in CI (CI=true), where it must run. SCREENSHOT_PATH=docs/dashboard.png refreshes
// the README's screenshot.
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { RunningServer } from '../app/wiring.ts';
import { browserTestSettings } from '../config/config.ts';
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
      orders: { total: m('orders-total'), PENDING: m('orders-pending'), CONFIRMED: m('orders-confirmed'), REJECTED: m('orders-rejected') },
      backlog: m('backlog'),
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
    orders: { total: stats.orders.total, PENDING: stats.orders.PENDING, CONFIRMED: stats.orders.CONFIRMED, REJECTED: stats.orders.REJECTED },
    backlog: stats.outbox.pending,
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

describe('the dashboard in Chromium', () => {
  it('"Place 50 orders": backlog drains to 0, 50 confirmed, the numbers match GET /stats; "Replay 3 duplicates" moves no stock', async (t) => {
    if (!executablePath) {
      if (settings.required) assert.fail('CI=true but no Chromium was found: apt-get install -y chromium, or set CHROMIUM_PATH');
      t.skip('no Chromium found (install Debian\'s chromium or set CHROMIUM_PATH); the dashboard was not tested in a browser');
      return;
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
});
