// Replay over NATS against both real services: layer (a), the broker drops a copy with the same
// Nats-Msg-Id; layer (b), a copy with a new Nats-Msg-Id is delivered and the inventory's inbox
// skips it. Counted on the inventory database's rows.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { inventoryBacklog } from '../app/broker.ts';
import { createSilentLogger } from '../log/logger.ts';
import { createTestDatabase, type TestDatabase } from '../testkit/database.ts';
import { eventually } from '../testkit/eventually.ts';
import { natsAvailable, skipUnlessNats, startTestNatsServer, type TestNatsServer } from '../testkit/nats.ts';
import { startTestServices, type TestServices } from '../testkit/services.ts';
import { connectNats, createNatsPublisher } from '../transport/nats.ts';
import { ORDERS_STREAM } from '../transport/nats-streams.ts';
import { runBrokerReplay } from './broker-replay.ts';

const quiet = createSilentLogger();
let orderDb: TestDatabase;
let inventoryDb: TestDatabase;
let nats: TestNatsServer | undefined;
let services: TestServices | undefined;
let nc: NatsConnection | undefined;

async function count(db: TestDatabase, sql: string): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>(`SELECT (${sql})::int AS n`);
  return rows[0]!.n;
}

describe('replay over NATS JetStream: both layers of de-duplication', () => {
  before(async () => {
    orderDb = await createTestDatabase(import.meta.filename);
    inventoryDb = await createTestDatabase(`${import.meta.filename}-inventory`);
    if (!(await natsAvailable())) return;
    nats = await startTestNatsServer();
    services = await startTestServices(orderDb, inventoryDb, nats.url);
    nc = await connectNats(nats.url, 'test-replay', quiet);
  });
  after(async () => {
    await nc?.close();
    await services?.close();
    await nats?.stop();
    await orderDb.drop();
    await inventoryDb.drop();
  });

  it('same Nats-Msg-Id: dropped by the broker; new Nats-Msg-Id: skipped by the inbox; stock and inbox unchanged', async (t) => {
    if (!services || !nc) return void (await skipUnlessNats(t));
    for (const quantity of [1, 2, 3]) {
      const res: Response = await fetch(`${services.orders.url}/orders`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ productId: 'widget', quantity }),
      });
      assert.equal(res.status, 201);
    }
    await eventually('three orders confirmed', async () => (await count(orderDb, `SELECT count(*) FROM orders WHERE status = 'CONFIRMED'`)) === 3);
    const stock = await count(inventoryDb, `SELECT stock FROM products WHERE id = 'widget'`);
    const seqBefore = await streamLastSeq(nc);

    const publisher = createNatsPublisher(nc, { stream: ORDERS_STREAM, timeoutMs: 5_000 });
    const result = await runBrokerReplay(
      { count: 3, messageIds: [], waitTimeoutMs: 30_000 },
      { inventoryPool: inventoryDb.pool, publisher, consumerBacklog: () => inventoryBacklog(nc!), logger: quiet },
    );
    await publisher.close();

    assert.ok(result.ok, JSON.stringify(result));
    assert.equal(result.replayed.length, 3);
    assert.deepEqual(result.sameId.droppedByBroker.sort(), [...result.replayed].sort(), '(a) every same-id copy dropped by JetStream');
    assert.deepEqual(result.sameId.stored, []);
    // Only the three new-id copies were stored in the stream: the duplicates never were.
    assert.equal(await streamLastSeq(nc), seqBefore + 3);
    // (b) each message skipped exactly once, by an inventory handler, and nothing moved.
    assert.equal(result.skips.length, 3);
    assert.ok(result.skips.every((s) => /^Inventory-\d+$/.test(s.handledBy)), JSON.stringify(result.skips));
    assert.equal(await count(inventoryDb, `SELECT count(*) FROM skipped_duplicates WHERE message_id = ANY('{${result.replayed}}'::uuid[])`), 3);
    assert.equal(await count(inventoryDb, `SELECT stock FROM products WHERE id = 'widget'`), stock);
    assert.equal(await count(inventoryDb, 'SELECT count(*) FROM processed_messages'), 3);
    assert.equal(await count(inventoryDb, 'SELECT count(*) FROM outbox'), 0, 'a skipped copy writes no second reply');
    assert.equal(await count(orderDb, `SELECT count(*) FROM processed_messages`), 3, 'the order service got one reply per order');
  });
});

async function streamLastSeq(nc: NatsConnection): Promise<number> {
  return (await (await jetstreamManager(nc)).streams.info(ORDERS_STREAM.name)).state.last_seq;
}
