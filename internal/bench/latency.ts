// 3: commit-to-consume latency at a steady offered load. Orders are placed at a fixed rate
// (open loop) through placeOrder on a pool of their own, wired as the server wires its API:
// WAKEUP=notify nudges the workers of this process after each commit (and sends the coalesced
// NOTIFY their listener also hears), notify-in-transaction nudges them and notifies inside the
// order transaction, poll tells nobody (the workers find the orders at their next poll).
// Latency = when the consumer's transaction committed − when the order's commit returned,
// both on this process's clock (clamped at 0: a wake-up can beat the COMMIT's reply).
import { startWorkers } from '../app/workers.ts';
import type { Config, ConsumerMode, WakeupMode } from '../config/config.ts';
import { closePool, createPool } from '../db/pool.ts';
import { listProducts } from '../inventory/stock.ts';
import { createSilentLogger } from '../log/logger.ts';
import { placeOrder } from '../orders/orders.ts';
import { createWakeup } from '../outbox/wakeup.ts';
import type { BenchDatabases } from './databases.ts';
import { openLoop, percentiles, sleep, until, type Percentiles } from './load.ts';

export interface LatencyResult extends Percentiles {
  wakeup: WakeupMode;
  consumerMode: ConsumerMode;
  pollIntervalMs: number;
  rate: number;
  durationMs: number;
  /** Orders whose consumption was not seen before the wait ended. */
  missing: number;
}

export async function measureLatency(
  databases: BenchDatabases,
  config: Config,
  options: { wakeup: WakeupMode; consumerMode: ConsumerMode; rate: number; durationMs: number; pollIntervalMs: number },
): Promise<LatencyResult> {
  const db = await databases.fresh(`latency_${options.wakeup}_${options.consumerMode}_${options.rate}`);
  const producer = createPool({ url: db.url, applicationName: 'outbox-bench:producer', max: 20, connectionTimeoutMs: 10_000 }, createSilentLogger());
  const committedAt = new Map<string, number>();
  const consumedAt = new Map<string, number>();
  try {
    const products = (await listProducts(db.pool)).map((p) => p.id);
    const workers = await startWorkers(
      { ...config, wakeup: options.wakeup, pollIntervalMs: options.pollIntervalMs, consumerMode: options.consumerMode },
      createSilentLogger(),
      {
        url: db.url,
        onConsumed: (ids) => {
          const now = performance.now();
          for (const id of ids) consumedAt.set(id, now);
        },
      },
    );
    const wakeup = createWakeup({ mode: options.wakeup, url: db.url, logger: createSilentLogger(), nudgeLocal: () => workers.relay.nudge(), origin: workers.wakeupOrigin });
    try {
      // Let every worker make its first (empty) claim and fall asleep, as in a quiet system.
      await sleep(200);
      await openLoop(options.rate, options.durationMs, async (i) => {
        const { messageId } = await placeOrder(producer, { productId: products[i % products.length]!, quantity: 1, userId: 'bench' }, { wakeup });
        committedAt.set(messageId, performance.now());
      });
      await until(async () => consumedAt.size >= committedAt.size, options.pollIntervalMs * 3 + 5_000, 20);
    } finally {
      await wakeup.close();
      await workers.close();
    }
  } finally {
    await closePool(producer);
    await db.drop();
  }
  const samples: number[] = [];
  for (const [id, committed] of committedAt) {
    const consumed = consumedAt.get(id);
    if (consumed !== undefined) samples.push(Math.max(0, consumed - committed));
  }
  return {
    ...percentiles(samples),
    wakeup: options.wakeup,
    consumerMode: options.consumerMode,
    pollIntervalMs: options.pollIntervalMs,
    rate: options.rate,
    durationMs: options.durationMs,
    missing: committedAt.size - samples.length,
  };
}
