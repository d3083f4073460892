// Across machines: both services over a three-node NATS cluster (streams with three replicas),
// a few hundred orders placed concurrently, and one node killed mid-run: the leader of the
// ORDERS stream, so publishes, the inventory's consumer and the acks all see a leader change.
// Nothing accepted is lost, nothing is applied twice, every order settles, stock is exact.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import pLimit from 'p-limit';
import { setStock, stockOf } from '../inventory/stock.ts';
import { createTestDatabase, type TestDatabase } from '../testkit/database.ts';
import { eventually } from '../testkit/eventually.ts';
import { natsAvailable, skipUnlessNats, startTestNatsCluster, type TestNatsCluster, type TestNatsNode } from '../testkit/nats.ts';
import { natsTestConfig, startTestServices, type TestServices } from '../testkit/services.ts';
import { ORDERS_STREAM } from '../transport/nats-streams.ts';

const ORDERS = 300;
const CONCURRENCY = 12;
const KILL_AFTER = 80;
const STOCK = 100_000;

let orderDb: TestDatabase;
let inventoryDb: TestDatabase;
let cluster: TestNatsCluster | undefined;
let services: TestServices | undefined;
let victim: TestNatsNode | undefined;

async function count(db: TestDatabase, sql: string, params: unknown[] = []): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>(`SELECT (${sql})::int AS n`, params);
  return rows[0]!.n;
}

/** The node that leads the ORDERS stream now (the one its publishes and acks go through). */
async function streamLeader(urls: string[]): Promise<string | undefined> {
  const nc = await connect({ servers: urls });
  try {
    const info = await (await jetstreamManager(nc)).streams.info(ORDERS_STREAM.name);
    return info.cluster?.leader;
  } finally {
    await nc.close();
  }
}

describe('two services across a three-node NATS cluster', () => {
  before(async () => {
    orderDb = await createTestDatabase(import.meta.filename);
    inventoryDb = await createTestDatabase(`${import.meta.filename}-inventory`);
    if (!(await natsAvailable())) return;
    cluster = await startTestNatsCluster(3);
    const natsUrl = cluster.urls.join(',');
    const { broker } = natsTestConfig(orderDb, inventoryDb, natsUrl);
    // Short publish and ack timeouts: a publish lost in the election is retried soon.
    services = await startTestServices(orderDb, inventoryDb, natsUrl, { broker: { ...broker, replicas: 3, publishTimeoutMs: 2_000 } });
  });
  after(async () => {
    await services?.close();
    await victim?.restart().catch(() => undefined);
    await cluster?.stop();
    await orderDb.drop();
    await inventoryDb.drop();
  });

  it(`${ORDERS} orders while the ORDERS stream's leader node is killed: all settled, none lost, none applied twice`, async (t) => {
    if (!services || !cluster) return void (await skipUnlessNats(t));
    await setStock(inventoryDb.pool, { gadget: STOCK });
    const leader = await streamLeader(cluster.urls);
    victim = cluster.nodes.find((node) => node.name === leader);
    assert.ok(victim, `the ORDERS stream's leader (${leader}) is one of our nodes`);

    const limit = pLimit(CONCURRENCY);
    const accepted: string[] = [];
    let failed = 0;
    let kill: Promise<void> | undefined;
    await Promise.all(
      Array.from({ length: ORDERS }, (_, i) =>
        limit(async () => {
          if (i === KILL_AFTER) kill = victim!.kill();
          const res = await fetch(`${services!.orders.url}/orders`, {
            method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ productId: 'gadget', quantity: 1 + (i % 3) }),
          });
          const body = (await res.json()) as { id: string };
          if (res.status === 201) accepted.push(body.id);
          else failed += 1;
        }),
      ),
    );
    await kill;
    // The API writes to PostgreSQL only: a broker node going away refuses no order.
    assert.equal(failed, 0);
    assert.equal(accepted.length, ORDERS);
    const ids = `{${accepted.join(',')}}`;

    await eventually(
      'every accepted order settled',
      async () => (await count(orderDb, `SELECT count(*) FROM orders WHERE id = ANY($1::uuid[]) AND status = 'CONFIRMED'`, [ids])) === ORDERS,
      180_000,
    );
    // Nothing applied twice: each OrderCreated once in the inventory's inbox, each reply once in the order service's.
    assert.equal(await count(inventoryDb, `SELECT count(*) FROM processed_messages WHERE payload->>'orderId' = ANY($1)`, [ids]), ORDERS);
    assert.equal(await count(inventoryDb, `SELECT count(DISTINCT payload->>'orderId') FROM processed_messages WHERE payload->>'orderId' = ANY($1)`, [ids]), ORDERS);
    assert.equal(await count(orderDb, `SELECT count(*) FROM processed_messages WHERE payload->>'orderId' = ANY($1) AND event_type = 'StockReserved'`, [ids]), ORDERS);
    // Stock exact: what left the inventory database is what the order database confirmed.
    const confirmed = await count(orderDb, `SELECT coalesce(sum(quantity), 0) FROM orders WHERE id = ANY($1::uuid[]) AND status = 'CONFIRMED'`, [ids]);
    assert.equal(STOCK - (await stockOf(inventoryDb.pool, 'gadget'))!, confirmed);
    assert.equal(await count(orderDb, 'SELECT count(*) FROM dead_letters'), 0);
    assert.equal(await count(inventoryDb, 'SELECT count(*) FROM dead_letters'), 0);
    await eventually('both outboxes empty', async () => (await count(orderDb, 'SELECT count(*) FROM outbox')) === 0 && (await count(inventoryDb, 'SELECT count(*) FROM outbox')) === 0);

    // The node comes back and catches up; the services keep working through the cluster.
    await victim.restart();
    victim = undefined;
    const res = await fetch(`${services.orders.url}/orders`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ productId: 'gadget', quantity: 1 }),
    });
    const { id } = (await res.json()) as { id: string };
    await eventually('an order after the restart settled', async () => (await count(orderDb, `SELECT count(*) FROM orders WHERE id = $1 AND status = 'CONFIRMED'`, [id])) === 1);
  });
});
