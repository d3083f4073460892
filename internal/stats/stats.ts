// GET /stats: one JSON view of the pipeline, read from the database (the source of truth
// shared by every process: server, relays and CLIs).
import type { Queryable } from '../db/pool.ts';
import { countConsumed } from '../inventory/processed.ts';
import { listProducts, type Product } from '../inventory/stock.ts';
import { countOrdersByStatus, type OrderStatus } from '../orders/orders.ts';
import { countDeadLetters } from '../outbox/dead-letters.ts';
import { countOutbox, type OutboxCounts } from '../outbox/outbox.ts';

export interface Stats {
  orders: Record<OrderStatus, number> & { total: number };
  outbox: OutboxCounts;
  processed: { applied: number; rejected: number };
  duplicatesSkipped: number;
  /** Events that gave up (MAX_ATTEMPTS or poison) and wait to be re-driven. */
  deadLetters: number;
  /** Deliveries that reached the consumer, by worker (first deliveries and duplicates). */
  deliveriesByWorker: Record<string, number>;
  products: Product[];
}

export async function readStats(db: Queryable): Promise<Stats> {
  const [orders, outbox, consumed, products, deadLetters] = await Promise.all([
    countOrdersByStatus(db),
    countOutbox(db),
    countConsumed(db),
    listProducts(db),
    countDeadLetters(db),
  ]);
  return {
    orders: { ...orders, total: orders.PENDING + orders.CONFIRMED + orders.REJECTED },
    outbox,
    processed: consumed.processed,
    duplicatesSkipped: consumed.duplicatesSkipped,
    deadLetters,
    deliveriesByWorker: sortByWorker(consumed.deliveriesBy),
    products,
  };
}

function sortByWorker(counts: Record<string, number>): Record<string, number> {
  const entries = Object.entries(counts).sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }));
  return Object.fromEntries(entries);
}
