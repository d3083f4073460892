// TRANSPORT=nats end to end, both services in this process over a real nats-server, each on its
// own database: an order is CONFIRMED only when the inventory's reply has come back; stock
// changes only in the inventory's database; each side's inbox skips what the broker
// redelivers; nothing is left in either outbox.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jetstream } from '@nats-io/jetstream';
import { randomUUID } from 'node:crypto';
import { stockOf, setStock } from '../inventory/stock.ts';
import { createSilentLogger } from '../log/logger.ts';
import { recordReceivedDeadLetter } from '../outbox/dead-letters.ts';
import { redriveOverBroker } from '../replay/broker-redrive.ts';
import { connectNats, createNatsPublisher } from '../transport/nats.ts';
import { INVENTORY_STREAM, ORDERS_STREAM } from '../transport/nats-streams.ts';
import { createTestDatabase, type TestDatabase } from '../testkit/database.ts';
import { eventually } from '../testkit/eventually.ts';
import { natsAvailable, skipUnlessNats, startTestNatsServer, type TestNatsServer } from '../testkit/nats.ts';
import { natsTestConfig, startTestServices, type TestServices } from '../testkit/services.ts';
import { purgeDeadLettersOlderThan } from './replay.ts';

const quiet = createSilentLogger();
let orderDb: TestDatabase;
let inventoryDb: TestDatabase;
let nats: TestNatsServer | undefined;
let services: TestServices | undefined;

async function post(url: string, body: unknown) {
  const res = await fetch(`${url}/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as { id: string; status: string } };
}

async function count(db: TestDatabase, sql: string): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>(`SELECT (${sql})::int AS n`);
  return rows[0]!.n;
}

describe('two services over NATS JetStream', () => {
  before(async () => {
    orderDb = await createTestDatabase(import.meta.filename);
    inventoryDb = await createTestDatabase(`${import.meta.filename}-inventory`);
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

  it('30 orders: every one CONFIRMED by the reply, stock taken once in the inventory database only', async (t) => {
    if (!services) return void (await skipUnlessNats(t));
    const before = (await stockOf(inventoryDb.pool, 'gadget'))!;
    const orderSideBefore = (await stockOf(orderDb.pool, 'gadget'))!;
    const placed = await Promise.all(Array.from({ length: 30 }, () => post(services!.orders.url, { productId: 'gadget', quantity: 2 })));
    assert.ok(placed.every((p) => p.status === 201));
    const ids = placed.map((p) => p.body.id);
    await eventually('all settled', async () => (await count(orderDb, `SELECT count(*) FROM orders WHERE id = ANY('{${ids}}'::uuid[]) AND status = 'CONFIRMED'`)) === 30);
    assert.equal(await stockOf(inventoryDb.pool, 'gadget'), before - 60);
    assert.equal(await stockOf(orderDb.pool, 'gadget'), orderSideBefore, 'the order database holds no stock of its own');
    // The inventory's inbox has each OrderCreated once; the order service's inbox each reply once.
    assert.equal(await count(inventoryDb, `SELECT count(*) FROM processed_messages WHERE payload->>'orderId' = ANY('{${ids}}')`), 30);
    assert.equal(await count(orderDb, `SELECT count(*) FROM processed_messages WHERE payload->>'orderId' = ANY('{${ids}}') AND event_type = 'StockReserved'`), 30);
    await eventually('both outboxes empty', async () => (await count(orderDb, 'SELECT count(*) FROM outbox')) === 0 && (await count(inventoryDb, 'SELECT count(*) FROM outbox')) === 0);
  });

  it('not enough stock: StockRejected comes back and the order is REJECTED with the reason', async (t) => {
    if (!services) return void (await skipUnlessNats(t));
    await setStock(inventoryDb.pool, { gizmo: 1 });
    const { body } = await post(services.orders.url, { productId: 'gizmo', quantity: 5 });
    await eventually('rejected', async () => (await count(orderDb, `SELECT count(*) FROM orders WHERE id = '${body.id}' AND status = 'REJECTED'`)) === 1);
    const { rows } = await orderDb.pool.query<{ reject_reason: string }>('SELECT reject_reason FROM orders WHERE id = $1', [body.id]);
    assert.match(rows[0]!.reject_reason, /insufficient stock for gizmo: wanted 5, have 1/);
    assert.equal(await stockOf(inventoryDb.pool, 'gizmo'), 1);
  });

  it('a copy of OrderCreated the broker does not catch (new Nats-Msg-Id, same message id) is skipped by the inventory inbox', async (t) => {
    if (!services || !nats) return void (await skipUnlessNats(t));
    const { body } = await post(services.orders.url, { productId: 'widget', quantity: 3 });
    await eventually('confirmed', async () => (await count(orderDb, `SELECT count(*) FROM orders WHERE id = '${body.id}' AND status = 'CONFIRMED'`)) === 1);
    const stock = await stockOf(inventoryDb.pool, 'widget');
    const { rows } = await inventoryDb.pool.query<{ message_id: string; payload: unknown }>(
      `SELECT message_id, payload FROM processed_messages WHERE payload->>'orderId' = $1`, [body.id],
    );
    const nc = await connectNats(nats.url, 'test-republisher', quiet);
    try {
      const headers = (await import('@nats-io/transport-node')).headers();
      headers.set('Outbox-Message-Id', rows[0]!.message_id);
      headers.set('Event-Type', 'OrderCreated');
      headers.set('Aggregate-Id', body.id);
      // Past the duplicate window, or republished by hand: the broker sees a new message.
      const ack = await jetstream(nc).publish('orders.created', JSON.stringify(rows[0]!.payload), { msgID: randomUUID(), headers });
      assert.equal(ack.duplicate, false);
    } finally {
      await nc.close();
    }
    await eventually('skipped by the inbox', async () => (await count(inventoryDb, `SELECT count(*) FROM skipped_duplicates WHERE message_id = '${rows[0]!.message_id}'`)) === 1);
    assert.equal(await stockOf(inventoryDb.pool, 'widget'), stock);
    assert.equal(await count(inventoryDb, `SELECT count(*) FROM outbox`), 0, 'a skipped duplicate writes no second reply');
  });

  it('a copy that comes back after the janitor pruned its inbox record is skipped by the order\'s position: stock unchanged, no dead letter', async (t) => {
    if (!services || !nats) return void (await skipUnlessNats(t));
    const { body } = await post(services.orders.url, { productId: 'doohickey', quantity: 4 });
    await eventually('confirmed', async () => (await count(orderDb, `SELECT count(*) FROM orders WHERE id = '${body.id}' AND status = 'CONFIRMED'`)) === 1);
    const stock = await stockOf(inventoryDb.pool, 'doohickey');
    const { rows } = await inventoryDb.pool.query<{ message_id: string; payload: unknown }>(
      `DELETE FROM processed_messages WHERE payload->>'orderId' = $1 RETURNING message_id, payload`, [body.id],
    ); // what INBOX_RETENTION does, days later
    const nc = await connectNats(nats.url, 'test-late-copy', quiet);
    try {
      const headers = (await import('@nats-io/transport-node')).headers();
      headers.set('Outbox-Message-Id', rows[0]!.message_id);
      headers.set('Event-Type', 'OrderCreated');
      headers.set('Aggregate-Id', body.id);
      await jetstream(nc).publish('orders.created', JSON.stringify(rows[0]!.payload), { msgID: randomUUID(), headers });
    } finally {
      await nc.close();
    }
    // The inbox forgot it, the order's position (never pruned) did not: a copy, skipped.
    await eventually('skipped as a duplicate', async () => (await count(inventoryDb, `SELECT count(*) FROM skipped_duplicates WHERE message_id = '${rows[0]!.message_id}'`)) === 1);
    assert.equal(await count(inventoryDb, `SELECT count(*) FROM dead_letters WHERE message_id = '${rows[0]!.message_id}'`), 0);
    assert.equal(await stockOf(inventoryDb.pool, 'doohickey'), stock, 'never a second decrement');
    assert.equal(await count(inventoryDb, `SELECT count(*) FROM stock_answers WHERE order_id = '${body.id}'`), 1);
  });

  it('the dashboard button "Place 50 orders" checks the stock where it is: the inventory service', async (t) => {
    if (!services) return void (await skipUnlessNats(t));
    const res = await fetch(`${services.orders.url}/dashboard/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(res.status, 200);
    const result = (await res.json()) as { ok: boolean; confirmed: number; rejected: number; problems: string[] };
    assert.deepEqual(result.problems, []);
    assert.equal(result.ok, true);
    assert.equal(result.confirmed + result.rejected, 50); // gizmo was left with 1 in stock above
  });

  it('re-drive: an OrderCreated the inventory gave up on goes back to ORDERS and is applied; the order is settled', async (t) => {
    if (!services || !nats) return void (await skipUnlessNats(t));
    // An order whose OrderCreated the inventory dead-lettered (say a product row locked through
    // every attempt): it is PENDING in the order database, its message in the inventory's.
    const orderId = randomUUID();
    const messageId = randomUUID();
    await orderDb.pool.query(`INSERT INTO orders (id, product_id, quantity) VALUES ($1, 'widget', 7)`, [orderId]);
    const payload = { orderId, productId: 'widget', quantity: 7, userId: null };
    await recordReceivedDeadLetter(inventoryDb.pool, { stream: 'ORDERS', messageId, eventType: 'OrderCreated', aggregateId: orderId, payload, deliveries: 5 }, 'lock timeout');
    const stock = (await stockOf(inventoryDb.pool, 'widget'))!;
    const nc = await connectNats(nats.url, 'test-redrive', quiet);
    try {
      const publisher = (stream: typeof ORDERS_STREAM) => createNatsPublisher(nc, { stream, timeoutMs: 5_000 });
      const result = await redriveOverBroker(
        [
          { service: 'order service', pool: orderDb.pool, receivedFrom: 'INVENTORY', publisher: publisher(INVENTORY_STREAM) },
          { service: 'inventory service', pool: inventoryDb.pool, receivedFrom: 'ORDERS', publisher: publisher(ORDERS_STREAM) },
        ],
        [messageId],
        quiet,
      );
      assert.deepEqual(result.republished.ORDERS, [messageId]);
      assert.equal(result.ok, true);
    } finally {
      await nc.close();
    }
    await eventually('settled', async () => (await count(orderDb, `SELECT count(*) FROM orders WHERE id = '${orderId}' AND status = 'CONFIRMED'`)) === 1);
    assert.equal(await stockOf(inventoryDb.pool, 'widget'), stock - 7);
    assert.equal(await count(inventoryDb, `SELECT count(*) FROM dead_letters WHERE message_id = '${messageId}'`), 0);
    assert.equal(await count(inventoryDb, `SELECT count(*) FROM processed_messages WHERE message_id = '${messageId}'`), 1);
  });

  it('replay --dead-letters --purge removes old dead letters from both services\' databases', async (t) => {
    if (!services || !nats) return void (await skipUnlessNats(t));
    const old = async (db: TestDatabase) => {
      const id = randomUUID();
      await db.pool.query(
        `INSERT INTO dead_letters (message_id, event_type, aggregate_id, payload, attempts, created_at, dead_at)
         VALUES ($1, 'OrderCreated', $1, '{}', 5, now() - interval '40 days', now() - interval '40 days')`,
        [id],
      );
      return id;
    };
    const ids = [await old(orderDb), await old(inventoryDb)];
    const result = await purgeDeadLettersOlderThan(natsTestConfig(orderDb, inventoryDb, nats.url), 30 * 86_400_000, quiet);
    assert.deepEqual(result.purged.map((p) => p.messageId).sort(), ids.sort());
    assert.equal(await count(inventoryDb, `SELECT count(*) FROM dead_letters WHERE message_id = '${ids[1]}'`), 0);
  });

  it('a poison OrderCreated is dead-lettered in the inventory database and not delivered again', async (t) => {
    if (!services || !nats) return void (await skipUnlessNats(t));
    const messageId = randomUUID();
    const nc = await connectNats(nats.url, 'test-poison', quiet);
    try {
      const headers = (await import('@nats-io/transport-node')).headers();
      headers.set('Outbox-Message-Id', messageId);
      headers.set('Event-Type', 'OrderCreated');
      headers.set('Aggregate-Id', randomUUID());
      await jetstream(nc).publish('orders.created', JSON.stringify({ orderId: 'x', quantity: 'lots' }), { msgID: messageId, headers });
    } finally {
      await nc.close();
    }
    await eventually('dead-lettered', async () => (await count(inventoryDb, `SELECT count(*) FROM dead_letters WHERE message_id = '${messageId}'`)) === 1);
    assert.equal(await count(inventoryDb, `SELECT count(*) FROM processed_messages WHERE message_id = '${messageId}'`), 0);
  });
});
