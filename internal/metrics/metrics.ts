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
import { Counter, Gauge, Registry } from 'prom-client';
import type { JanitorObserver } from '../janitor/janitor.ts';
import type { RelayObserver } from '../relay/relay.ts';
import type { StatsReader } from '../stats/reader.ts';
import type { Stats } from '../stats/stats.ts';
import type { HandlerObserver } from '../transport/observed.ts';
import { createBrokerHopMetrics } from './broker-metrics.ts';
import { createHandlerMetrics } from './handler-metrics.ts';
import { createJanitorMetrics } from './janitor-metrics.ts';
import { createRelayMetrics } from './relay-metrics.ts';

export interface Metrics {
  /** Hand to the relay: claims, deliveries and failures as they happen. */
  readonly relayObserver: RelayObserver;
  /** TRANSPORT=nats: hand to the reply subscriber (replies settled, by outcome). */
  readonly replyObserver: HandlerObserver | undefined;
  /** Hand to the janitor: rows pruned, its passes and lag. */
  readonly janitorObserver: JanitorObserver;
  /** One finished HTTP request; `route` is the route pattern, never the raw path. */
  observeHttpRequest(method: string, route: string, status: number): void;
  /** Reads the numbers (through the shared reader), then renders every metric. */
  scrape(): Promise<string>;
  readonly contentType: string;
}

export interface MetricsOptions {
  /** TRANSPORT: with nats, the relay publishes to a broker, replies settle orders, and the broker hop is read. */
  transport?: 'in-process' | 'nats';
}

export function createMetrics(reader: StatsReader, options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  const registers = [registry];
  const gauge = (name: string, help: string, labelNames: string[] = []) => new Gauge({ name, help, labelNames, registers });

  // What the database says now (all processes).
  const pending = gauge('outbox_pending_events', 'Events in the outbox, not yet delivered (in flight and retrying included).');
  const inFlight = gauge('outbox_in_flight_events', 'Outbox events under a live lease: a worker is delivering them.');
  const retrying = gauge('outbox_retrying_events', 'Outbox events waiting for a retry after a failed delivery.');
  const parked = gauge('outbox_parked_events', 'Outbox events parked behind a dead letter of their aggregate (an earlier event of the same order): they go through, in order, once it is re-driven.');
  const oldestEvent = gauge('outbox_oldest_event_age_seconds', 'Age of the oldest event waiting in the outbox (0 when empty). Alert when it keeps growing.');
  const deadTuples = gauge('outbox_dead_tuples', 'Dead row versions in the outbox (PostgreSQL statistics, an estimate): what each claim has to step over.');
  const oldestTx = gauge('postgres_oldest_transaction_age_seconds', 'Age of the oldest open transaction holding back the xmin horizon of this database (0 when none).');
  const xminAge = gauge('postgres_xmin_horizon_age_xids', 'Transaction ids between the xmin horizon and now (sessions, prepared transactions, replication slots).');
  const deadLetters = gauge('outbox_dead_letters_waiting', 'Dead letters waiting to be re-driven.');
  const oldestDead = gauge('outbox_dead_letter_oldest_age_seconds', 'Seconds since the oldest waiting dead letter gave up (0 when none).');
  const orders = gauge('orders', 'Orders by status (CONFIRMED and REJECTED: the consumer\'s totals since the last reset; an order confirmed, then cancelled, counts in CONFIRMED and CANCELLED).', ['status']);
  const pendingTooLong = gauge('orders_pending_too_long', 'Orders PENDING for longer than the threshold in the label.', ['threshold_seconds']);
  const oldestPending = gauge('orders_oldest_pending_age_seconds', 'Age of the oldest PENDING order (0 when none).');
  const stock = gauge('product_stock', 'Units in stock, by product.', ['product']);
  const processedInDb = gauge('pipeline_messages_processed', 'Messages the consumer applied or rejected, all processes, since the last reset (database totals).', ['outcome']);
  const duplicatesInDb = gauge('pipeline_duplicates_skipped', 'Redelivered messages skipped as duplicates, all processes, since the last reset (database totals).');
  const estimated = gauge('stats_estimated', '1 when the number at this path is an estimate (a table past the exact-count limit, or PostgreSQL statistics).', ['path']);

  // What this process did since it started.
  const nats = options.transport === 'nats';
  const relayObserver = createRelayMetrics(registers, nats ? 'broker' : 'in-process');
  const replyObserver = nats ? createReplyMetrics(registers) : undefined;
  const hop = nats ? createBrokerHopMetrics(registers) : undefined;
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
    parked.set(stats.outbox.parked);
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
    for (const status of ['PENDING', 'CONFIRMED', 'REJECTED', 'CANCELLED'] as const) orders.set({ status }, stats.orders[status]);
    // Products are a small table someone may edit; rebuilt so a removed one disappears.
    // TRANSPORT=nats: the stock is the inventory service's, on its own /metrics (this
    // database's products are only the catalog there).
    stock.reset();
    if (!nats) for (const product of stats.products) stock.set({ product: product.id }, product.stock);
    for (const outcome of ['applied', 'rejected'] as const) processedInDb.set({ outcome }, stats.processed[outcome]);
    duplicatesInDb.set(stats.duplicatesSkipped);
    estimated.reset();
    for (const path of stats.estimated) estimated.set({ path }, 1);
    hop?.apply(stats);
  }

  const janitorObserver = createJanitorMetrics(registers);

  return {
    janitorObserver,
    relayObserver,
    replyObserver,
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

/** The order service's reply side (TRANSPORT=nats): StockReserved / StockRejected settling orders. */
function createReplyMetrics(registers: Registry[]): HandlerObserver {
  return createHandlerMetrics(registers, {
    handled: 'order_replies_settled_total',
    handledHelp: 'Replies from the inventory service this process handled, by outcome: confirmed, rejected (the order settled so), cancelled (came after the order was cancelled: it stays so), duplicate (skipped by the inbox), dead_lettered.',
    outcomes: ['confirmed', 'rejected', 'cancelled', 'duplicate'],
    duration: 'order_reply_handle_duration_seconds',
    durationHelp: 'How long settling one reply took in this process, until its transaction committed.',
    failures: 'order_reply_failures_total',
    failuresHelp: 'Reply handlings that threw in this process (the reply comes again after a backoff, or is dead-lettered).',
  });
}
