// What the inventory service reports about itself (GET /stats on INVENTORY_PORT): its stock,
// its inbox, its reply outbox and its dead letters, all from its own database.
import type { Queryable } from '../db/pool.ts';
import { countAggregatesPast } from '../inventory/positions.ts';
import { countConsumed, type ConsumerCounts } from '../inventory/processed.ts';
import { listProducts, type Product } from '../inventory/stock.ts';
import { countDeadLetters } from '../outbox/dead-letters.ts';
import { summarizeOutbox, type OutboxCounts } from '../outbox/outbox.ts';
import { STATS_DEFAULTS } from './stats.ts';

export interface InventoryStats {
  service: 'inventory';
  products: Product[];
  /** Messages applied, rejected and skipped as duplicates, by the inbox's counters. */
  consumed: ConsumerCounts;
  /** Replies (StockReserved / StockRejected) not yet published. */
  replyOutbox: OutboxCounts;
  /** Seconds the oldest unpublished reply has waited (database clock); 0 when none. */
  replyOutboxOldestAgeSeconds: number;
  deadLetters: number;
  /** Orders whose OrderCancelled this service applied (their position is past OrderCreated). */
  cancellationsApplied: number;
}

export async function readInventoryStats(db: Queryable): Promise<InventoryStats> {
  const [products, consumed, replyOutbox, deadLetters, cancellationsApplied] = await Promise.all([
    listProducts(db), countConsumed(db), summarizeOutbox(db, STATS_DEFAULTS.exactCountLimit), countDeadLetters(db),
    countAggregatesPast(db, 1),
  ]);
  return {
    service: 'inventory', products, consumed, replyOutbox: replyOutbox.counts,
    replyOutboxOldestAgeSeconds: Math.round(replyOutbox.oldestAgeSeconds * 1000) / 1000, deadLetters,
    cancellationsApplied,
  };
}
