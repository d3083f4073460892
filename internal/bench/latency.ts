// 3: commit-to-consume latency at a steady offered load. Orders are placed at a fixed rate
// (open loop) through placeOrder on a pool of their own, wired as the server wires its API:
// WAKEUP=notify nudges the workers of this process after each commit (and sends the coalesced
// NOTIFY their listener also hears), notify-in-transaction nudges them and notifies inside the
// order transaction, poll tells nobody (the workers find the orders at their next poll).
// Latency = when the consumer's transaction committed − when the order's commit returned,
// both on this process's clock (clamped at 0: a wake-up can beat the COMMIT's reply).
// Each run first offers the same load for a warm-up (default 2 s) that the percentiles leave
// out and report on their own line: the first second after a start is slower for reasons that
// have nothing to do with steady load (new backends with empty caches, V8 not yet optimised,
// the producer's pool opening) and, at 200/s, made up the whole p99 (issue 17).
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
  /** The warm-up before the measured window: same rate, left out of the percentiles above. */
  warmupMs: number;
  /** Its latencies: the cold start, shown, never hidden (count 0 without a warm-up). */
  coldStart: Percentiles;
}

export async function measureLatency(
  databases: BenchDatabases,
  config: Config,
  options: { wakeup: WakeupMode; consumerMode: ConsumerMode; rate: number; durationMs: number; pollIntervalMs: number; warmupMs?: number },
): Promise<LatencyResult> {
  const db = await databases.fresh(`latency_${options.wakeup}_${options.consumerMode}_${options.rate}`);
  const producer = createPool({ url: db.url, applicationName: 'outbox-bench:producer', max: 20, connectionTimeoutMs: 10_000 }, createSilentLogger());
  const committedAt = new Map<string, number>();
  const consumedAt = new Map<string, number>();
  const warmupMs = options.warmupMs ?? 0;
  const warmupOrders = Math.round((options.rate * warmupMs) / 1000);
  const warmupIds = new Set<string>();
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
      await openLoop(options.rate, warmupMs + options.durationMs, async (i) => {
        const { messageId } = await placeOrder(producer, { productId: products[i % products.length]!, quantity: 1, userId: 'bench' }, { wakeup });
        committedAt.set(messageId, performance.now());
        if (i < warmupOrders) warmupIds.add(messageId);
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
  const cold: number[] = [];
  let missing = 0;
  for (const [id, committed] of committedAt) {
    const consumed = consumedAt.get(id);
    if (consumed === undefined) missing += 1;
    else (warmupIds.has(id) ? cold : samples).push(Math.max(0, consumed - committed));
  }
  return {
    ...percentiles(samples),
    wakeup: options.wakeup,
    consumerMode: options.consumerMode,
    pollIntervalMs: options.pollIntervalMs,
    rate: options.rate,
    durationMs: options.durationMs,
    missing,
    warmupMs,
    coldStart: percentiles(cold),
  };
}
