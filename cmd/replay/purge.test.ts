// End to end: `npm run replay -- --dead-letters --purge --older-than 30d` removes only dead
// letters older than that, asks nothing, and prints each one it removed.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase, type TestDatabase } from '../../internal/testkit/database.ts';
import { runScript } from '../../internal/testkit/process.ts';

let db: TestDatabase;
let env: Record<string, string>;
before(async () => {
  db = await createTestDatabase(import.meta.filename);
  env = { DATABASE_URL: db.url };
});
after(() => db.drop());

async function deadLetter(daysAgo: number): Promise<string> {
  const id = randomUUID();
  await db.pool.query(
    `INSERT INTO dead_letters (message_id, event_type, aggregate_id, payload, attempts, last_error, created_at, dead_at)
     VALUES ($1, 'OrderCreated', $2, '{}', 5, 'downstream kept failing', now() - make_interval(days => $3), now() - make_interval(days => $3))`,
    [id, randomUUID(), daysAgo],
  );
  return id;
}

describe('npm run replay -- --dead-letters --purge --older-than', () => {
  it('removes only dead letters older than the given age and prints each one', async () => {
    const old = [await deadLetter(45), await deadLetter(31)];
    const young = await deadLetter(29);
    const purge = runScript('cmd/replay/main.ts', ['--dead-letters', '--purge', '--older-than', '30d'], env);
    assert.equal(await purge.exited, 0, purge.output());
    assert.match(purge.stdout(), /Purged 2 dead letter\(s\) older than 30d:/);
    for (const id of old) assert.match(purge.stdout(), new RegExp(`${id}  OrderCreated .*last error: downstream kept failing`));
    assert.doesNotMatch(purge.stdout(), new RegExp(young));
    const { rows } = await db.pool.query(`SELECT message_id FROM dead_letters`);
    assert.deepEqual(rows, [{ message_id: young }]);

    const again = runScript('cmd/replay/main.ts', ['--dead-letters', '--purge', '--older-than', '30d', '--json'], env);
    assert.equal(await again.exited, 0, again.output());
    assert.deepEqual(JSON.parse(again.stdout()).purged, []);
  });

  it('refuses an incomplete or unclear request before touching anything', async () => {
    const noAge = runScript('cmd/replay/main.ts', ['--dead-letters', '--purge'], env);
    assert.equal(await noAge.exited, 2);
    assert.match(noAge.output(), /--older-than <duration>/);
    const bareNumber = runScript('cmd/replay/main.ts', ['--dead-letters', '--purge', '--older-than', '30'], env);
    assert.notEqual(await bareNumber.exited, 0);
    assert.match(bareNumber.output(), /a whole number and a unit \(ms, s, m, h, d\)/);
  });
});
