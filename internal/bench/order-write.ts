// 6: what announcing an event costs the order write. The same order transaction, issued directly
// from as many callers as the API test, three ways: with no notification at all, with today's
// pg_notify inside the transaction (PostgreSQL serialises the commits of notifying
// transactions), and with the after-commit wake-up (no NOTIFY in the transaction; one coalesced
// NOTIFY at most every few ms, from a connection of its own). A LISTEN session is open
// throughout, as the server's listener would be. Alternating rounds on fresh databases, best of each.
import { closePool, createPool } from '../db/pool.ts';
import { listProducts } from '../inventory/stock.ts';
import { createSilentLogger } from '../log/logger.ts';
import { placeOrder } from '../orders/orders.ts';
import { OutboxListener } from '../outbox/listener.ts';
import { createWakeup } from '../outbox/wakeup.ts';
import type { BenchDatabases } from './databases.ts';
import { closedLoop, perSecond } from './load.ts';

export const ORDER_WRITE_MODES = ['no-notify', 'in-transaction', 'after-commit'] as const;
export type OrderWriteMode = (typeof ORDER_WRITE_MODES)[number];

export interface OrderWriteResult {
  orders: number;
  concurrency: number;
  connections: number;
  rounds: number;
  /** Best orders/s of each mode. */
  perSecond: Record<OrderWriteMode, number>;
  /** Every round's orders/s, per mode, in the order run. */
  runs: Record<OrderWriteMode, number[]>;
  /** after-commit ÷ no-notify */
  ratio: number;
}

export async function measureOrderWrite(
  databases: BenchDatabases,
  options: { orders: number; concurrency: number; connections: number; rounds: number },
): Promise<OrderWriteResult> {
  const runs: Record<OrderWriteMode, number[]> = { 'no-notify': [], 'in-transaction': [], 'after-commit': [] };
  for (let round = 0; round < options.rounds; round++) {
    // Rotate who goes first: a neighbour's burst should not always land on the same mode.
    const order = ORDER_WRITE_MODES.map((_, i) => ORDER_WRITE_MODES[(i + round) % ORDER_WRITE_MODES.length]!);
    for (const mode of order) runs[mode].push(await run(databases, mode, options));
  }
  const best = (mode: OrderWriteMode) => Math.max(...runs[mode]);
  const perSecond = { 'no-notify': best('no-notify'), 'in-transaction': best('in-transaction'), 'after-commit': best('after-commit') };
  return {
    ...options,
    perSecond,
    runs,
    ratio: perSecond['after-commit'] / perSecond['no-notify'],
  };
}

async function run(
  databases: BenchDatabases,
  mode: OrderWriteMode,
  options: { orders: number; concurrency: number; connections: number },
): Promise<number> {
  const db = await databases.fresh(`order_write_${mode}`);
  const logger = createSilentLogger();
  const pool = createPool({ url: db.url, applicationName: 'outbox-bench:orders', max: options.connections, connectionTimeoutMs: 30_000 }, logger);
  const listener = new OutboxListener({ url: db.url, logger, onNotify: () => {} });
  const wakeup = createWakeup({ mode: mode === 'after-commit' ? 'notify' : mode === 'in-transaction' ? 'notify-in-transaction' : 'poll', url: db.url, logger });
  try {
    await listener.start();
    const products = (await listProducts(db.pool)).map((p) => p.id);
    const ms = await closedLoop(options.orders, options.concurrency, (i) =>
      placeOrder(pool, { productId: products[i % products.length]!, quantity: 1, userId: 'bench' }, { wakeup }),
    );
    return perSecond(options.orders, ms);
  } finally {
    await wakeup.close();
    await listener.close();
    await closePool(pool);
    await db.drop();
  }
}
