// GET /metrics: the pipeline in Prometheus text format (prom-client).
//
// Two kinds of numbers, on purpose:
// - counters count what THIS process did since it started (deliveries, outcomes, failures,
//   dead-letterings, HTTP requests), so they only ever go up and Prometheus can sum them
//   across processes without counting anything twice; their labels come from a bounded set
//   (this process's worker names, fixed outcome words);
// - gauges are what the database says now, for every process at once (backlog, ages, the
//   xmin horizon, dead letters, orders, stock, the pipeline's totals since the last reset),
//   read by the shared StatsReader, so /metrics and /stats agree.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { JanitorObserver } from '../janitor/janitor.ts';
import type { RelayObserver } from '../relay/relay.ts';
import type { StatsReader } from '../stats/reader.ts';
import type { Stats } from '../stats/stats.ts';
import { createJanitorMetrics } from './janitor-metrics.ts';

export interface Metrics {
  /** Hand to the relay: claims, deliveries and failures as they happen. */
  readonly relayObserver: RelayObserver;
  /** Hand to the janitor: rows pruned, its passes and lag. */
  readonly janitorObserver: JanitorObserver;
  /** One finished HTTP request; `route` is the route pattern, never the raw path. */
  observeHttpRequest(method: string, route: string, status: number): void;
  /** Reads the numbers (through the shared reader), then renders every metric. */
  scrape(): Promise<string>;
  readonly contentType: string;
}

const OUTCOMES = new Set(['applied', 'rejected', 'duplicate']);

export function createMetrics(reader: StatsReader): Metrics {
  const registry = new Registry();
  const registers = [registry];
  const gauge = (name: string, help: string, labelNames: string[] = []) => new Gauge({ name, help, labelNames, registers });

  // What the database says now (all processes).
  const pending = gauge('outbox_pending_events', 'Events in the outbox, not yet delivered (in flight and retrying included).');
  const inFlight = gauge('outbox_in_flight_events', 'Outbox events under a live lease: a worker is delivering them.');
  const retrying = gauge('outbox_retrying_events', 'Outbox events waiting for a retry after a failed delivery.');
  const oldestEvent = gauge('outbox_oldest_event_age_seconds', 'Age of the oldest event waiting in the outbox (0 when empty). Alert when it keeps growing.');
  const deadTuples = gauge('outbox_dead_tuples', 'Dead row versions in the outbox (PostgreSQL statistics, an estimate): what each claim has to step over.');
  const oldestTx = gauge('postgres_oldest_transaction_age_seconds', 'Age of the oldest open transaction holding back the xmin horizon of this database (0 when none).');
  const xminAge = gauge('postgres_xmin_horizon_age_xids', 'Transaction ids between the xmin horizon and now (sessions, prepared transactions, replication slots).');
  const deadLetters = gauge('outbox_dead_letters_waiting', 'Dead letters waiting to be re-driven.');
  const oldestDead = gauge('outbox_dead_letter_oldest_age_seconds', 'Seconds since the oldest waiting dead letter gave up (0 when none).');
  const orders = gauge('orders', 'Orders by status (CONFIRMED and REJECTED: the consumer\'s totals since the last reset).', ['status']);
  const pendingTooLong = gauge('orders_pending_too_long', 'Orders PENDING for longer than the threshold in the label.', ['threshold_seconds']);
  const oldestPending = gauge('orders_oldest_pending_age_seconds', 'Age of the oldest PENDING order (0 when none).');
  const stock = gauge('product_stock', 'Units in stock, by product.', ['product']);
  const processedInDb = gauge('pipeline_messages_processed', 'Messages the consumer applied or rejected, all processes, since the last reset (database totals).', ['outcome']);
  const duplicatesInDb = gauge('pipeline_duplicates_skipped', 'Redelivered messages skipped as duplicates, all processes, since the last reset (database totals).');
  const estimated = gauge('stats_estimated', '1 when the number at this path is an estimate (a table past the exact-count limit, or PostgreSQL statistics).', ['path']);

  // What this process did since it started.
  const delivered = new Counter({
    name: 'outbox_events_delivered_total',
    help: 'Deliveries this process made that reached the consumer and committed, by worker (duplicates included).',
    labelNames: ['worker'],
    registers,
  });
  const outcomes = new Counter({
    name: 'inventory_messages_processed_total',
    help: 'Messages this process delivered that the consumer applied for the first time, by outcome.',
    labelNames: ['outcome'],
    registers,
  });
  const duplicates = new Counter({ name: 'inventory_duplicates_skipped_total', help: 'Redeliveries by this process that the consumer recognised and skipped.', registers });
  const deadLettered = new Counter({ name: 'outbox_dead_letters_total', help: 'Events this process gave up on and moved to dead_letters.', labelNames: ['worker'], registers });
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
  duplicates.inc(0);

  function applyStats(stats: Stats): void {
    pending.set(stats.outbox.pending);
    inFlight.set(stats.outbox.inFlight);
    retrying.set(stats.outbox.retrying);
    const s = stats.signals;
    oldestEvent.set(s.outboxOldestEventAgeSeconds);
    deadTuples.set(s.outboxDeadTuples);
    oldestTx.set(s.oldestTransactionAgeSeconds);
    xminAge.set(s.xminHorizonAgeXids);
    deadLetters.set(stats.deadLetters);
    oldestDead.set(s.deadLetterOldestAgeSeconds);
    oldestPending.set(s.oldestPendingOrderAgeSeconds);
    pendingTooLong.reset();
    pendingTooLong.set({ threshold_seconds: String(s.pendingOrderThresholdSeconds) }, s.ordersPendingTooLong);
    for (const status of ['PENDING', 'CONFIRMED', 'REJECTED'] as const) orders.set({ status }, stats.orders[status]);
    // Products are a small table someone may edit; rebuilt so a removed one disappears.
    stock.reset();
    for (const product of stats.products) stock.set({ product: product.id }, product.stock);
    for (const outcome of ['applied', 'rejected'] as const) processedInDb.set({ outcome }, stats.processed[outcome]);
    duplicatesInDb.set(stats.duplicatesSkipped);
    estimated.reset();
    for (const path of stats.estimated) estimated.set({ path }, 1);
  }

  const janitorObserver = createJanitorMetrics(registers);

  return {
    janitorObserver,
    relayObserver: {
      onClaimed: (_worker, batchSize) => claimSize.observe(batchSize),
      onDelivered: (worker, ms, outcome) => {
        latency.observe(ms / 1000);
        delivered.inc({ worker });
        if (outcome === 'duplicate') duplicates.inc();
        else if (outcome !== undefined && OUTCOMES.has(outcome)) outcomes.inc({ outcome });
      },
      onFailed: (worker) => failures.inc({ worker }),
      onDeadLettered: (worker) => deadLettered.inc({ worker }),
    },
    observeHttpRequest(method, route, status) {
      httpRequests.inc({ method, route, status: String(status) });
    },
    async scrape() {
      applyStats(await reader.read());
      return registry.metrics();
    },
    contentType: registry.contentType,
  };
}
