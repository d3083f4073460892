// What keeping each aggregate's events in order costs the relay: the same number of events
// drained as N single-event aggregates, and as N/k aggregates of k events each (an order and
// its cancellation is k = 2). The claim takes one event per aggregate at a time (the next one
// waits until its predecessor is deleted), and every claim probes each row it walks, so this
// measures the price of the rule where it bites hardest: an aggregate's events written back to
// back, all waiting at once. The consumer is a stand-in (one round trip per event): the claim's
// share of the drain is what differs between the runs, not the inventory's transactions.
import { randomUUID } from 'node:crypto';
import type { Config } from '../config/config.ts';
import { closePool, createPool } from '../db/pool.ts';
import { createSilentLogger } from '../log/logger.ts';
import { countOutbox, createOutboxStore, enqueueEvents, type NewEvent } from '../outbox/outbox.ts';
import { Relay } from '../relay/relay.ts';
import type { BenchDatabases } from './databases.ts';
import { perSecond } from './load.ts';

export interface AggregateOrderResult {
  events: number;
  rounds: number;
  /** Best of the rounds, per events-per-aggregate (1 first: the baseline). */
  runs: Array<{ eventsPerAggregate: number; aggregates: number; perSecond: number; ratioToSingle: number }>;
}

const SEED_CHUNK = 2_000;

export async function measureAggregateOrder(
  databases: BenchDatabases,
  config: Config,
  options: { events: number; eventsPerAggregate: number[]; rounds: number },
): Promise<AggregateOrderResult> {
  const ks = [1, ...options.eventsPerAggregate.filter((k) => k > 1)];
  const best = new Map<number, number>();
  // Alternating rounds, best of each: a neighbour's burst hits every shape alike.
  for (let round = 0; round < options.rounds; round++) {
    for (const k of ks) best.set(k, Math.max(best.get(k) ?? 0, await drainRun(databases, config, options.events, k)));
  }
  const single = best.get(1)!;
  return {
    events: options.events,
    rounds: options.rounds,
    runs: ks.map((k) => ({ eventsPerAggregate: k, aggregates: Math.ceil(options.events / k), perSecond: best.get(k)!, ratioToSingle: best.get(k)! / single })),
  };
}

async function drainRun(databases: BenchDatabases, config: Config, events: number, k: number): Promise<number> {
  const db = await databases.fresh(`order_k${k}`);
  const relayPool = createPool({ url: db.url, applicationName: 'outbox-bench:order', max: config.workers + 1, connectionTimeoutMs: 10_000, customPlans: true }, createSilentLogger()); // planned per claim, as the relay's own (relayPoolOptions)
  try {
    // Each aggregate's events back to back, in their order (1 … k), as if written at once.
    for (let from = 0; from < events; from += SEED_CHUNK) {
      const chunk: NewEvent[] = [];
      for (let i = from; i < Math.min(from + SEED_CHUNK, events); i += k) {
        const aggregateId = randomUUID();
        for (let s = 1; s <= k && i + s - 1 < events; s++) {
          chunk.push({ messageId: randomUUID(), eventType: s === 1 ? 'OrderCreated' : 'OrderCancelled', aggregateId, payload: {}, sequence: s });
        }
      }
      await enqueueEvents(db.pool, chunk);
    }
    await db.pool.query('ANALYZE');
    const store = createOutboxStore(relayPool, { batchSize: config.batchSize, leaseMs: config.leaseMs });
    const deliver = async () => {
      await relayPool.query('SELECT 1'); // the consumer's round trip, without its work
      return 'applied';
    };
    const relay = new Relay({ store, deliver, logger: createSilentLogger() }, { workers: config.workers, pollIntervalMs: 1_000 });
    const started = performance.now();
    relay.start();
    try {
      while ((await countOutbox(db.pool)).pending > 0) await new Promise((resolve) => setTimeout(resolve, 10));
    } finally {
      await relay.stop();
    }
    return perSecond(events, performance.now() - started);
  } finally {
    await closePool(relayPool);
    await db.drop();
  }
}
