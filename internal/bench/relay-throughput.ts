// 1 and 2: how fast the relay drains a pre-filled outbox, next to the ceiling for the same
// work: the consumer's own transactions issued back to back from as many connections, with
// no outbox, no claim and no delete in between. The ratio is the relay's overhead.
import { startWorkers } from '../app/workers.ts';
import type { Config, ConsumerMode } from '../config/config.ts';
import { closePool, createPool, type Pool } from '../db/pool.ts';
import { createBatchConsumer } from '../inventory/batch-consumer.ts';
import { createInventoryConsumer, type Delivery } from '../inventory/consumer.ts';
import { listProducts } from '../inventory/stock.ts';
import { createSilentLogger } from '../log/logger.ts';
import { placeOrdersInBulk, type NewOrder } from '../orders/orders.ts';
import { clearOutbox, countWaiting, ORDER_CREATED } from '../outbox/outbox.ts';
import type { BenchDatabases, FreshDatabase } from './databases.ts';
import { closedLoop, perSecond, until } from './load.ts';

export interface ThroughputResult {
  mode: ConsumerMode;
  batchSize: number;
  events: number;
  rounds: number;
  relayPerSecond: number;
  ceilingPerSecond: number;
  /** relay / ceiling */
  ratio: number;
}

const SEED_CHUNK = 2_000;

export async function measureThroughput(
  databases: BenchDatabases,
  config: Config,
  options: { events: number; mode: ConsumerMode; batchSize: number; rounds: number },
): Promise<ThroughputResult> {
  const settings: Config = { ...config, consumerMode: options.mode, batchSize: options.batchSize, pollIntervalMs: 1_000 };
  // Alternating rounds, best of each: on a shared machine a neighbour's burst during one run
  // says nothing about our code, and alternating keeps both sides exposed to the same noise.
  let relayPerSecond = 0;
  let ceilingPerSecond = 0;
  for (let round = 0; round < options.rounds; round++) {
    relayPerSecond = Math.max(relayPerSecond, await relayRun(databases, settings, options.events));
    ceilingPerSecond = Math.max(ceilingPerSecond, await ceilingRun(databases, settings, options.events));
  }
  return {
    mode: options.mode,
    batchSize: options.batchSize,
    events: options.events,
    rounds: options.rounds,
    relayPerSecond,
    ceilingPerSecond,
    ratio: relayPerSecond / ceilingPerSecond,
  };
}

async function relayRun(databases: BenchDatabases, config: Config, events: number): Promise<number> {
  const db = await databases.fresh(`relay_${config.consumerMode}`);
  try {
    return await drainOutbox(db, config, events);
  } finally {
    await db.drop();
  }
}

/**
 * Fills the outbox of `db` with `events` orders, then times `config`'s workers draining it
 * (consumed and deleted). `beforeStart` runs between the two. Returns events per second.
 */
export async function drainOutbox(
  db: FreshDatabase,
  config: Config,
  events: number,
  beforeStart: () => Promise<void> = async () => {},
): Promise<number> {
  const placed = await seedOrders(db.pool, events);
  await db.pool.query('ANALYZE');
  await beforeStart();
  let consumed = 0;
  let allConsumed: () => void;
  const done = new Promise<void>((resolve) => (allConsumed = resolve));
  const started = performance.now();
  const workers = await startWorkers(config, createSilentLogger(), {
    url: db.url,
    onConsumed: (ids) => {
      consumed += ids.length;
      if (consumed >= events) allConsumed();
    },
  });
  await done;
  // Drained means deleted too: the last batches' DELETEs follow their commits.
  const drained = await until(async () => (await countWaiting(db.pool, placed.map((p) => p.messageId))) === 0, 30_000);
  const elapsed = performance.now() - started;
  await workers.close();
  if (!drained) throw new Error('the outbox did not drain');
  return perSecond(events, elapsed);
}

/** The consumer's transactions back to back: per message, or per batch of the same size. */
async function ceilingRun(databases: BenchDatabases, config: Config, events: number): Promise<number> {
  const db = await databases.fresh(`ceiling_${config.consumerMode}`);
  // The same pool size the relay's consumer gets.
  const pool = createPool({ url: db.url, applicationName: 'outbox-bench:ceiling', max: config.workers + 1, connectionTimeoutMs: 10_000 }, createSilentLogger());
  try {
    const deliveries: Delivery[] = (await seedOrders(db.pool, events)).map(toDelivery);
    await db.pool.query('ANALYZE');
    await clearOutbox(db.pool); // not needed here, and the relay's ceiling has no outbox
    const logger = createSilentLogger();
    const single = createInventoryConsumer({ pool, logger });
    let elapsed: number;
    if (config.consumerMode === 'per-message') {
      elapsed = await closedLoop(events, config.workers, (i, loop) => single.handle(deliveries[i]!, `Ceiling-${loop + 1}`));
    } else {
      const batch = createBatchConsumer({ pool, logger, single });
      const batches = Math.ceil(events / config.batchSize);
      elapsed = await closedLoop(batches, config.workers, (i, loop) =>
        batch.handleBatch(deliveries.slice(i * config.batchSize, (i + 1) * config.batchSize), `Ceiling-${loop + 1}`),
      );
    }
    return perSecond(events, elapsed);
  } finally {
    await closePool(pool);
    await db.drop();
  }
}

/** `count` PENDING orders with their OrderCreated events, spread over every product. */
export async function seedOrders(pool: Pool, count: number): Promise<NewOrder[]> {
  const products = (await listProducts(pool)).map((p) => p.id);
  const placed: NewOrder[] = [];
  for (let from = 0; from < count; from += SEED_CHUNK) {
    const inputs = Array.from({ length: Math.min(SEED_CHUNK, count - from) }, (_, i) => ({
      productId: products[(from + i) % products.length]!,
      quantity: 1,
      userId: 'bench',
    }));
    placed.push(...(await placeOrdersInBulk(pool, inputs)));
  }
  return placed;
}

export function toDelivery({ order, messageId }: NewOrder): Delivery {
  return {
    messageId,
    eventType: ORDER_CREATED,
    payload: { orderId: order.id, productId: order.productId, quantity: order.quantity, userId: order.userId },
  };
}
