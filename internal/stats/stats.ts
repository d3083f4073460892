// GET /stats: one JSON view of the pipeline, read from the database (the source of truth
// shared by every process: server, relays and CLIs).
//
// Every number comes from a source whose cost does not grow with history: the consumer's
// running totals (consumer_counts), the PENDING orders' index, the outbox and dead letters
// counted only up to a limit, and the catalog. Beyond the limit a number is an estimate, and
// `estimated` names it.
import { readHorizon } from '../db/horizon.ts';
import type { Queryable } from '../db/pool.ts';
import { countConsumed } from '../inventory/processed.ts';
import { listProducts, type Product } from '../inventory/stock.ts';
import { countCancelledOrders, countPendingOrders, type OrderStatus } from '../orders/orders.ts';
import { summarizeDeadLetters } from '../outbox/dead-letters.ts';
import { outboxDeadTuples, summarizeOutbox, type OutboxCounts } from '../outbox/outbox.ts';
import type { BrokerStats } from './broker.ts';
import type { RemoteInventoryStats } from './inventory-remote.ts';

export interface Stats {
  /**
   * CONFIRMED and REJECTED are the consumer's totals (its decisions on OrderCreated); PENDING
   * and CANCELLED are counted (up to the limit). An order confirmed and then cancelled counts
   * in CONFIRMED and in CANCELLED: the first is what the inventory decided, the second what the
   * customer did afterwards. `total` is every order placed (PENDING + CONFIRMED + REJECTED; a
   * cancelled order is there once its creation was decided).
   */
  orders: Record<OrderStatus, number> & { total: number };
  outbox: OutboxCounts;
  processed: { applied: number; rejected: number };
  duplicatesSkipped: number;
  /** Events that gave up (MAX_ATTEMPTS or poison) and wait to be re-driven. */
  deadLetters: number;
  /** Deliveries that reached the consumer, by worker (first deliveries and duplicates). */
  deliveriesByWorker: Record<string, number>;
  /** Leased events by worker, right now. */
  inFlightByWorker: Record<string, number>;
  products: Product[];
  /** What to alert on (see the README's "What to alert on"). Ages are on the database clock. */
  signals: Signals;
  /** The numbers that are estimates rather than exact, as paths, e.g. "outbox.pending". */
  estimated: string[];
  /**
   * TRANSPORT=nats only (absent in-process): the broker hop between the two services, and the
   * inventory service's own numbers, its stock included. `products` above is then only the
   * order database's catalog; the stock is inventoryService.products.
   */
  broker?: BrokerStats;
  inventoryService?: RemoteInventoryStats;
}

export interface Signals {
  outboxOldestEventAgeSeconds: number;
  oldestTransactionAgeSeconds: number;
  /** Who holds the oldest transaction, when one is open. */
  oldestTransactionHeldBy: string | null;
  xminHorizonAgeXids: number;
  /** From PostgreSQL's statistics: always an estimate. */
  outboxDeadTuples: number;
  deadLetterOldestAgeSeconds: number;
  oldestPendingOrderAgeSeconds: number;
  /** Orders PENDING for longer than `pendingOrderThresholdSeconds`. */
  ordersPendingTooLong: number;
  pendingOrderThresholdSeconds: number;
}

export interface ReadStatsOptions {
  /** Rows counted exactly at most, per table; beyond it a number is an estimate. */
  exactCountLimit?: number;
  /** An order PENDING longer than this counts in signals.ordersPendingTooLong. */
  pendingOrderThresholdMs?: number;
}

export const STATS_DEFAULTS = { exactCountLimit: 10_000, pendingOrderThresholdMs: 60_000 } as const;

export async function readStats(db: Queryable, options: ReadStatsOptions = {}): Promise<Stats> {
  const limit = options.exactCountLimit ?? STATS_DEFAULTS.exactCountLimit;
  const thresholdMs = options.pendingOrderThresholdMs ?? STATS_DEFAULTS.pendingOrderThresholdMs;
  const [pending, cancelled, outbox, consumed, products, dead, horizon, deadTuples] = await Promise.all([
    countPendingOrders(db, thresholdMs, limit),
    countCancelledOrders(db, limit),
    summarizeOutbox(db, limit),
    countConsumed(db),
    listProducts(db),
    summarizeDeadLetters(db, limit),
    readHorizon(db),
    outboxDeadTuples(db),
  ]);
  const estimated = ['signals.outboxDeadTuples'];
  if (outbox.estimated) estimated.push('outbox.pending', 'outbox.inFlight', 'outbox.retrying');
  if (outbox.parkedCapped) estimated.push('outbox.parked');
  if (pending.capped) estimated.push('orders.PENDING', 'orders.total', 'signals.ordersPendingTooLong');
  if (cancelled.capped) estimated.push('orders.CANCELLED');
  if (dead.count >= limit) estimated.push('deadLetters');
  const { applied, rejected } = consumed.processed;
  return {
    orders: { PENDING: pending.count, CONFIRMED: applied, REJECTED: rejected, CANCELLED: cancelled.count, total: pending.count + applied + rejected },
    outbox: outbox.counts,
    processed: consumed.processed,
    duplicatesSkipped: consumed.duplicatesSkipped,
    deadLetters: dead.count,
    deliveriesByWorker: sortByWorker(consumed.deliveriesBy),
    inFlightByWorker: outbox.inFlightByWorker,
    products,
    signals: {
      outboxOldestEventAgeSeconds: round(outbox.oldestAgeSeconds),
      oldestTransactionAgeSeconds: round(horizon.oldestTransactionAgeSeconds),
      oldestTransactionHeldBy: horizon.heldBy ?? null,
      xminHorizonAgeXids: horizon.xminAgeXids,
      outboxDeadTuples: deadTuples,
      deadLetterOldestAgeSeconds: round(dead.oldestAgeSeconds),
      oldestPendingOrderAgeSeconds: round(pending.oldestAgeSeconds),
      ordersPendingTooLong: pending.olderThanThreshold,
      pendingOrderThresholdSeconds: thresholdMs / 1000,
    },
    estimated,
  };
}

function round(seconds: number): number {
  return Math.round(seconds * 1000) / 1000;
}

function sortByWorker(counts: Record<string, number>): Record<string, number> {
  const entries = Object.entries(counts).sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }));
  return Object.fromEntries(entries);
}
