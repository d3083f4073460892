// The stress test with TRANSPORT=nats: both services in this process over a real nats-server,
// each on its own database. Stock must be read where it lives (the inventory's database); the
// two controls show the check would fail if it were read from the order database.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { inventorySide } from '../app/stress.ts';
import { createApiClient } from '../client/api-client.ts';
import { runScript } from '../testkit/process.ts';
import { setStock } from '../inventory/stock.ts';
import { createTestDatabase, type TestDatabase } from '../testkit/database.ts';
import { natsAvailable, skipUnlessNats, startTestNatsServer, type TestNatsServer } from '../testkit/nats.ts';
import { startTestServices, type TestServices } from '../testkit/services.ts';
import { runStressTest, type StressOptions } from './stress.ts';

let orderDb: TestDatabase;
let inventoryDb: TestDatabase;
let nats: TestNatsServer | undefined;
let services: TestServices | undefined;

const options = (overrides: Partial<StressOptions> = {}): StressOptions => ({
  orders: 50, concurrency: 50, quantity: 1, productIds: [], wait: true, waitTimeoutMs: 60_000, userId: 'stress-nats', ...overrides,
});

describe('the stress test over NATS JetStream (two services, two databases)', () => {
  before(async () => {
    orderDb = await createTestDatabase(import.meta.filename);
    inventoryDb = await createTestDatabase(`${import.meta.filename}-inventory`);
    await setStock(inventoryDb.pool, { widget: 100_000, gadget: 100_000, gizmo: 100_000, doohickey: 100_000 });
    if (!(await natsAvailable())) return;
    nats = await startTestNatsServer();
    services = await startTestServices(orderDb, inventoryDb, nats.url);
  });
  after(async () => {
    await services?.close();
    await nats?.stop();
    await orderDb.drop();
    await inventoryDb.drop();
  });

  it('50 orders: all CONFIRMED, stock read from the inventory database, both sides\' workers shown, invariant holds', async (t) => {
    if (!services) return void (await skipUnlessNats(t));
    const result = await runStressTest(options(), { client: createApiClient(services.orders.url), inventory: inventorySide(inventoryDb.pool) });
    assert.ok(result.invariant.holds, result.invariant.problems.join('; '));
    assert.ok(result.ok);
    assert.equal(result.transport, 'nats');
    assert.equal(result.stockSource, 'inventory-database');
    assert.equal(result.drain.confirmed, 50);
    const sum = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);
    // Who published: the order service's relay workers; who handled: the inventory's handlers.
    assert.ok(Object.keys(result.publishedByWorker).every((w) => /^Worker-\d+$/.test(w)), JSON.stringify(result.publishedByWorker));
    assert.equal(sum(result.publishedByWorker), 50);
    assert.ok(Object.keys(result.deliveriesByWorker).every((w) => /^Inventory-\d+$/.test(w)), JSON.stringify(result.deliveriesByWorker));
    assert.equal(sum(result.deliveriesByWorker), 50);
    assert.equal(result.stock.reduce((s, c) => s + (c.before - c.after), 0), 50);
    // And the databases agree: the stock moved in the inventory's, never in the order's catalog.
    const { rows } = await inventoryDb.pool.query(`SELECT sum(100000 - stock)::int AS taken FROM products`);
    assert.equal(rows[0].taken, 50);
    const { rows: orderSide } = await orderDb.pool.query(
      `SELECT count(*)::int AS confirmed FROM orders WHERE user_id = 'stress-nats' AND status = 'CONFIRMED'`,
    );
    assert.equal(orderSide[0].confirmed, 50);
  });

  it('--cancel-ratio 0.4 over the broker: cancellations applied by the inventory after their orders, stock moved only by the CONFIRMED ones', async (t) => {
    if (!services) return void (await skipUnlessNats(t));
    const result = await runStressTest(options({ orders: 30, cancelRatio: 0.4, userId: 'stress-nats-cancel' }), {
      client: createApiClient(services.orders.url), inventory: inventorySide(inventoryDb.pool),
    });
    assert.ok(result.invariant.holds, result.invariant.problems.join('; '));
    assert.ok(result.ok);
    assert.deepEqual(result.cancellations, { requested: 12, early: 6, afterSettling: 6, notCancellable: 0, failed: 0 });
    assert.equal(result.drain.cancelled, 12);
    assert.equal(result.drain.confirmed, 18);
    // The inventory's own rows: 12 aggregates past their first event, each cancelled order's
    // reservation given back once.
    const { rows } = await inventoryDb.pool.query(
      `SELECT (SELECT count(*)::int FROM inbox_positions WHERE last_seq = 2) AS cancels_applied,
              (SELECT count(*)::int FROM stock_answers WHERE released_at IS NOT NULL) AS released,
              (SELECT count(*)::int FROM dead_letters) AS dead`,
    );
    assert.deepEqual(rows[0], { cancels_applied: 12, released: 12, dead: 0 });
  });

  it('control: stock read from the order database (its catalog) does not move, and the invariant fails', async (t) => {
    if (!services) return void (await skipUnlessNats(t));
    const wrong = await runStressTest(options({ orders: 10, userId: 'stress-wrong-db' }), {
      client: createApiClient(services.orders.url), inventory: inventorySide(orderDb.pool),
    });
    assert.equal(wrong.drain.confirmed, 10);
    assert.equal(wrong.invariant.holds, false);
    assert.ok(wrong.stock.every((c) => c.before === c.after));
    // Without the inventory side at all (the in-process reading), it fails too, and says why.
    const inProcess = await runStressTest(options({ orders: 10, userId: 'stress-in-process' }), { client: createApiClient(services.orders.url) });
    assert.equal(inProcess.invariant.holds, false);
    assert.match(inProcess.invariant.problems.join('\n'), /--transport nats/);
  });

  it('`npm run stress` with neither --transport nor TRANSPORT follows the running server: over NATS it checks the inventory\'s stock', async (t) => {
    if (!services) return void (await skipUnlessNats(t));
    const run = runScript('cmd/stress-test/main.ts', ['--url', services.orders.url, '--orders', '20', '--concurrency', '10'], {
      TRANSPORT: undefined, DATABASE_URL: orderDb.url, INVENTORY_DATABASE_URL: inventoryDb.url, NATS_URL: nats!.url,
    });
    assert.equal(await run.exited, 0, run.output());
    assert.match(run.output(), /runs TRANSPORT=nats: doing the same/);
    assert.match(run.output(), /stock \(the inventory service's database\)/);
  });
});
