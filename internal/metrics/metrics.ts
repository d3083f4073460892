// GET /metrics: the pipeline in Prometheus text format (prom-client).
//
// Two kinds of numbers, on purpose:
// - everything GET /stats shows (backlog, deliveries, duplicates, dead letters, orders, stock)
//   is read from the database at scrape time, with the very same readStats, so /metrics and
//   /stats can never disagree and every process's work counts (the replay CLI's too);
// - what only this process sees as it happens (claim sizes, delivery latency, failed
//   deliveries, HTTP requests) is observed in memory since start-up.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Queryable } from '../db/pool.ts';
import type { JanitorObserver } from '../janitor/janitor.ts';
import type { RelayObserver } from '../relay/relay.ts';
import { readStats, type Stats } from '../stats/stats.ts';
import { createJanitorMetrics } from './janitor-metrics.ts';

export interface Metrics {
  /** Hand to the relay: claims, deliveries and failures as they happen. */
  readonly relayObserver: RelayObserver;
  /** Hand to the janitor: rows pruned, its passes and lag. */
  readonly janitorObserver: JanitorObserver;
  /** One finished HTTP request; `route` is the route pattern, never the raw path. */
  observeHttpRequest(method: string, route: string, status: number): void;
  /** Reads the database once, then renders every metric. Concurrent scrapes share one read. */
  scrape(): Promise<string>;
  readonly contentType: string;
}

export function createMetrics(db: Queryable): Metrics {
  const registry = new Registry();
  const registers = [registry];

  const pending = new Gauge({ name: 'outbox_pending_events', help: 'Events in the outbox, not yet delivered (in flight and retrying included).', registers });
  const inFlight = new Gauge({ name: 'outbox_in_flight_events', help: 'Outbox events under a live lease: a worker is delivering them.', registers });
  const retrying = new Gauge({ name: 'outbox_retrying_events', help: 'Outbox events waiting for a retry after a failed delivery.', registers });
  const delivered = new Counter({
    name: 'outbox_events_delivered_total',
    help: 'Deliveries that reached the Inventory consumer and committed, by worker (duplicates included).',
    labelNames: ['worker'],
    registers,
  });
  const duplicates = new Counter({ name: 'inventory_duplicates_skipped_total', help: 'Redelivered messages the consumer recognised and skipped.', registers });
  const processed = new Counter({
    name: 'inventory_messages_processed_total',
    help: 'Messages the consumer applied for the first time, by outcome.',
    labelNames: ['outcome'],
    registers,
  });
  const orders = new Gauge({ name: 'orders', help: 'Orders by status.', labelNames: ['status'], registers });
  const stock = new Gauge({ name: 'product_stock', help: 'Units in stock, by product.', labelNames: ['product'], registers });
  // Dead letters exist only once the server reports them (stats.deadLetters); until then the
  // metric is absent rather than a misleading zero.
  let deadLetters: Counter | undefined;

  const failures = new Counter({
    name: 'outbox_delivery_failures_total',
    help: 'Deliveries that threw in this process (the event stays in the outbox for a retry), by worker.',
    labelNames: ['worker'],
    registers,
  });
  const claimSize = new Histogram({
    name: 'outbox_claim_batch_size',
    help: 'Events taken by one non-empty claim in this process.',
    buckets: [1, 2, 3, 5, 10, 20, 50, 100],
    registers,
  });
  const latency = new Histogram({
    name: 'outbox_delivery_duration_seconds',
    help: 'How long one delivery to the consumer took, until its transaction committed, in this process.',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers,
  });
  const httpRequests = new Counter({
    name: 'http_requests_total',
    help: 'HTTP requests answered by this process, by method, route and status.',
    labelNames: ['method', 'route', 'status'],
    registers,
  });

  function applyStats(stats: Stats): void {
    pending.set(stats.outbox.pending);
    inFlight.set(stats.outbox.inFlight);
    retrying.set(stats.outbox.retrying);
    setCounter(delivered, Object.entries(stats.deliveriesByWorker).map(([worker, n]) => [{ worker }, n]));
    setCounter(duplicates, [[{}, stats.duplicatesSkipped]]);
    setCounter(processed, Object.entries(stats.processed).map(([outcome, n]) => [{ outcome }, n]));
    orders.reset();
    for (const status of ['PENDING', 'CONFIRMED', 'REJECTED'] as const) orders.set({ status }, stats.orders[status]);
    stock.reset();
    for (const product of stats.products) stock.set({ product: product.id }, product.stock);
    const dead = deadLetterCount(stats);
    if (dead !== undefined) {
      deadLetters ??= new Counter({ name: 'outbox_dead_letters_total', help: 'Events given up on and moved aside as dead letters.', registers });
      setCounter(deadLetters, [[{}, dead]]);
    }
  }

  const janitorObserver = createJanitorMetrics(registers);

  let scraping: Promise<string> | undefined;
  return {
    janitorObserver,
    relayObserver: {
      onClaimed: (_worker, batchSize) => claimSize.observe(batchSize),
      onDelivered: (_worker, ms) => latency.observe(ms / 1000),
      onFailed: (worker) => failures.inc({ worker }),
    },
    observeHttpRequest(method, route, status) {
      httpRequests.inc({ method, route, status: String(status) });
    },
    scrape() {
      scraping ??= (async () => {
        applyStats(await readStats(db));
        return registry.metrics();
      })().finally(() => {
        scraping = undefined;
      });
      return scraping;
    },
    contentType: registry.contentType,
  };
}

/** stats.deadLetters when the server reports dead letters (a number), else undefined. */
export function deadLetterCount(stats: Stats): number | undefined {
  const value = (stats as Stats & { deadLetters?: unknown }).deadLetters;
  return typeof value === 'number' ? value : undefined;
}

/** A counter whose running total lives in the database: set it to the total read just now. */
function setCounter<L extends string>(counter: Counter<L>, values: Array<[Partial<Record<L, string>>, number]>): void {
  counter.reset();
  for (const [labels, value] of values) counter.inc(labels, value);
}
