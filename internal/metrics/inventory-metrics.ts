// GET /metrics of the inventory service (TRANSPORT=nats), on its own registry. Same two kinds
// of numbers as the order service's (metrics.ts): counters of THIS process (messages its
// handlers finished, by outcome; its relay's publishes of the replies; its janitor), and
// gauges of what its own database says now (reply outbox, dead letters, stock, inbox totals).
// The names are the order service's where the thing is the same kind (outbox_*, product_stock);
// Prometheus tells the two services apart by their job.
import { Gauge, Registry } from 'prom-client';
import type { JanitorObserver } from '../janitor/janitor.ts';
import type { RelayObserver } from '../relay/relay.ts';
import type { InventoryStats } from '../stats/inventory.ts';
import type { HandlerObserver } from '../transport/observed.ts';
import { createHandlerMetrics } from './handler-metrics.ts';
import { createJanitorMetrics } from './janitor-metrics.ts';
import { createRelayMetrics } from './relay-metrics.ts';

export interface InventoryMetrics {
  /** Hand to the subscriber on ORDERS: each OrderCreated handled, by outcome. */
  readonly handlerObserver: HandlerObserver;
  /** Hand to its relay (reply outbox → INVENTORY stream). */
  readonly relayObserver: RelayObserver;
  readonly janitorObserver: JanitorObserver;
  /** Reads the database's numbers, then renders every metric. */
  scrape(): Promise<string>;
  readonly contentType: string;
}

export function createInventoryMetrics(read: () => Promise<InventoryStats>): InventoryMetrics {
  const registry = new Registry();
  const registers = [registry];
  const gauge = (name: string, help: string, labelNames: string[] = []) => new Gauge({ name, help, labelNames, registers });

  // What its database says now (every process of the inventory service).
  const pending = gauge('outbox_pending_events', 'Replies in the inventory service\'s outbox, not yet published (in flight and retrying included).');
  const inFlight = gauge('outbox_in_flight_events', 'Replies under a live lease: a relay worker is publishing them.');
  const retrying = gauge('outbox_retrying_events', 'Replies waiting for a retry after a failed publish.');
  const oldest = gauge('outbox_oldest_event_age_seconds', 'Age of the oldest reply waiting in the outbox (0 when empty). Alert when it keeps growing.');
  const deadLetters = gauge('outbox_dead_letters_waiting', 'Dead letters in the inventory database: OrderCreated messages given up on (MAX_ATTEMPTS or poison) and replies that could not be published.');
  const stock = gauge('product_stock', 'Units in stock, by product (the inventory service owns the stock).', ['product']);
  const processed = gauge('pipeline_messages_processed', 'OrderCreated messages the inventory applied or rejected, all its processes, since the last reset (database totals).', ['outcome']);
  const duplicates = gauge('pipeline_duplicates_skipped', 'Redelivered OrderCreated messages its inbox skipped, all its processes, since the last reset (database totals).');

  const handlerObserver = createHandlerMetrics(registers, {
    handled: 'inventory_messages_handled_total',
    handledHelp: 'Order events this process\'s handlers finished, by outcome: applied (stock reserved), rejected (not enough stock), released (a cancellation gave stock back), cancelled (a cancellation with nothing to give back), duplicate (skipped by the inbox), deferred (came before its order\'s previous event: again later), dead_lettered.',
    outcomes: ['applied', 'rejected', 'released', 'cancelled', 'duplicate', 'deferred'],
    duration: 'inventory_message_handle_duration_seconds',
    durationHelp: 'How long handling one OrderCreated took in this process: inbox, stock and reply in one transaction, until it committed.',
    failures: 'inventory_message_failures_total',
    failuresHelp: 'Handlings that threw in this process (the message is nak\'ed and comes again after a backoff, or is dead-lettered).',
  });
  const relayObserver = createRelayMetrics(registers, 'broker');
  const janitorObserver = createJanitorMetrics(registers);

  function apply(stats: InventoryStats): void {
    pending.set(stats.replyOutbox.pending);
    inFlight.set(stats.replyOutbox.inFlight);
    retrying.set(stats.replyOutbox.retrying);
    oldest.set(stats.replyOutboxOldestAgeSeconds);
    deadLetters.set(stats.deadLetters);
    stock.reset();
    for (const product of stats.products) stock.set({ product: product.id }, product.stock);
    for (const outcome of ['applied', 'rejected'] as const) processed.set({ outcome }, stats.consumed.processed[outcome]);
    duplicates.set(stats.consumed.duplicatesSkipped);
  }

  return {
    handlerObserver,
    relayObserver,
    janitorObserver,
    async scrape() {
      apply(await read());
      return registry.metrics();
    },
    contentType: registry.contentType,
  };
}
