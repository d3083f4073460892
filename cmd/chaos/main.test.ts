// `npm run chaos` wipes the database it runs on: on someone's DATABASE_URL it asks first.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { placeOrder } from '../../internal/orders/orders.ts';
import { createTestDatabase, type TestDatabase } from '../../internal/testkit/database.ts';
import { runScript } from '../../internal/testkit/process.ts';

describe('npm run chaos with DATABASE_URL', () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase(import.meta.filename);
  });
  after(() => db.drop());

  it('refuses without --yes, in one line, and deletes nothing', async () => {
    await placeOrder(db.pool, { productId: 'widget', quantity: 1 });
    const chaos = runScript('cmd/chaos/main.ts', ['--orders', '1', '--kills', '0'], { DATABASE_URL: db.url });
    assert.equal(await chaos.exited, 2, chaos.output());
    assert.match(chaos.output(), /DATABASE_URL is set: npm run chaos would delete .* pass --yes/);
    assert.equal(chaos.output().trim().split('\n').length, 1, chaos.output());
    const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM orders`);
    assert.equal(rows[0].n, 1, 'the order is still there');
  });
});
