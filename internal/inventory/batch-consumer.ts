// Batched consumption (CONSUMER_MODE=batch): a whole claimed batch in ONE transaction, so a
// batch of 50 costs one commit instead of 50. The idempotency is the per-message consumer's:
// the message ids are inserted first (ON CONFLICT DO NOTHING), only the new ones are applied,
// and each product's stock changes by the sum of what its confirmed orders took, decided in
// delivery order exactly as one-by-one handling would decide it.
//
// If anything in the batch fails (a poison message, an order that is not PENDING, a lost
// connection) the whole transaction rolls back and the batch is handled again one message at
// a time by the per-message consumer, so one bad event fails alone and the rest still commit.
// Each of those steps starts only while the caller says there is time for it (its lease):
// the messages left over fail with the batch's error and are retried later.
import type { Pool } from '../db/pool.ts';
import { withTransaction } from '../db/transaction.ts';
import { AppError } from '../errors/errors.ts';
import type { Logger } from '../log/logger.ts';
import { settleOrders, type OrderCreatedPayload, type Settlement } from '../orders/orders.ts';
import { parseOrderCreated, type Delivery, type DeliveryResult, type InventoryConsumer } from './consumer.ts';
import { recordFirstDeliveries, recordSkippedDuplicates, setOutcomes } from './processed.ts';
import { lockStock, takeStockAmounts } from './stock.ts';

export interface BatchConsumer {
  /**
   * Handles `deliveries` in one transaction, or one by one when that fails. Resolves with one
   * settled result per delivery, in order: fulfilled once its outcome is committed, rejected
   * with the error the per-message consumer gave it (POISON_MESSAGE for a hopeless one).
   * `mayStart` is asked before each one-by-one step; once it says no, the remaining messages
   * are rejected with the batch's error (never as poison: nothing was learnt about them alone).
   */
  handleBatch(
    deliveries: readonly Delivery[],
    deliveredBy: string,
    mayStart?: () => boolean,
  ): Promise<PromiseSettledResult<DeliveryResult>[]>;
}

export function createBatchConsumer(deps: { pool: Pool; logger: Logger; single: InventoryConsumer }): BatchConsumer {
  const log = deps.logger.child('Inventory');
  return {
    async handleBatch(deliveries, deliveredBy, mayStart = () => true) {
      let applied: AppliedBatch;
      try {
        applied = await applyBatch(deps.pool, deliveries, deliveredBy);
      } catch (error) {
        const rolledBack = `batch of ${deliveries.length} from ${deliveredBy} rolled back (${(error as Error).message})`;
        if (mayStart()) log.warn(`${rolledBack}; handling its messages one by one`);
        const results = await oneByOne(deps.single, deliveries, deliveredBy, mayStart);
        const left = deliveries.length - results.length;
        if (left === 0) return results;
        log.warn(
          `${results.length === 0 ? rolledBack : `${deliveredBy}'s lease is running out`}: not enough lease left to ` +
            `try ${left} message${left === 1 ? '' : 's'} one by one; they are retried later`,
        );
        // A plain error, even if the batch's was POISON_MESSAGE: it says nothing about these alone.
        const reason = new Error(`${rolledBack}; not tried alone before the lease ran out`);
        return [...results, ...Array.from({ length: left }, () => ({ status: 'rejected' as const, reason }))];
      }
      // Logged after COMMIT, so the log never claims something that was rolled back.
      for (const [index, result] of applied.results.entries()) {
        if (result !== 'duplicate') continue;
        log.info(`SKIPPING duplicate message ${deliveries[index]!.messageId} (delivered by ${deliveredBy})`);
      }
      log.info(`batch of ${deliveries.length} from ${deliveredBy} in one transaction: ${summarize(applied)}`);
      return applied.results.map((value) => ({ status: 'fulfilled', value }));
    },
  };
}

interface AppliedBatch {
  results: DeliveryResult[];
  /** Per product: stock before and after this batch. */
  stock: Map<string, { before: number; after: number }>;
}

async function applyBatch(pool: Pool, deliveries: readonly Delivery[], deliveredBy: string): Promise<AppliedBatch> {
  // Outside the transaction: a malformed message fails the batch before it touches anything.
  const payloads = deliveries.map(parseOrderCreated);
  return withTransaction(pool, async (tx) => {
    const fresh = await recordFirstDeliveries(tx, deliveries, deliveredBy);
    // The same id twice in one batch: the first occurrence is the delivery, the second a duplicate.
    const isNew = deliveries.map((d) => fresh.delete(d.messageId));
    await recordSkippedDuplicates(tx, deliveries.filter((_, i) => !isNew[i]).map((d) => d.messageId), deliveredBy);

    const wanted = payloads.filter((_, i) => isNew[i]);
    const stock = await lockStock(tx, [...new Set(wanted.map((p) => p.productId))]);
    const before = new Map(stock);
    const taken = new Map<string, number>();
    const settlements: Settlement[] = [];
    const rejected: string[] = [];
    const results = payloads.map((payload, i): DeliveryResult => {
      if (!isNew[i]) return 'duplicate';
      const decision = decide(payload, stock, taken);
      settlements.push({ orderId: payload.orderId, status: decision.status, reason: decision.reason });
      if (decision.status === 'CONFIRMED') return 'applied';
      rejected.push(deliveries[i]!.messageId);
      return 'rejected';
    });

    await takeStockAmounts(tx, taken);
    if ((await settleOrders(tx, settlements)) !== settlements.length) {
      throw new AppError('POISON_MESSAGE', 'an order in the batch does not exist or is no longer PENDING');
    }
    await setOutcomes(tx, rejected, 'rejected');
    const changes = new Map([...taken.keys()].map((id) => [id, { before: before.get(id)!, after: stock.get(id)! }]));
    return { results, stock: changes };
  });
}

/** The per-message consumer's rule, on the batch's running stock: take it if enough is left. */
function decide(
  payload: OrderCreatedPayload,
  stock: Map<string, number>,
  taken: Map<string, number>,
): { status: Settlement['status']; reason: string | null } {
  const have = stock.get(payload.productId) ?? 0;
  if (stock.has(payload.productId) && have >= payload.quantity) {
    stock.set(payload.productId, have - payload.quantity);
    taken.set(payload.productId, (taken.get(payload.productId) ?? 0) + payload.quantity);
    return { status: 'CONFIRMED', reason: null };
  }
  return {
    status: 'REJECTED',
    reason: `insufficient stock for ${payload.productId}: wanted ${payload.quantity}, have ${have}`,
  };
}

/** One result per delivery it started, in order; it starts the next only while `mayStart()`. */
async function oneByOne(
  single: InventoryConsumer,
  deliveries: readonly Delivery[],
  deliveredBy: string,
  mayStart: () => boolean,
): Promise<PromiseSettledResult<DeliveryResult>[]> {
  const results: PromiseSettledResult<DeliveryResult>[] = [];
  for (const delivery of deliveries) {
    if (!mayStart()) break;
    try {
      results.push({ status: 'fulfilled', value: await single.handle(delivery, deliveredBy) });
    } catch (error) {
      results.push({ status: 'rejected', reason: error });
    }
  }
  return results;
}

function summarize(batch: AppliedBatch): string {
  const counts = new Map<DeliveryResult, number>();
  for (const result of batch.results) counts.set(result, (counts.get(result) ?? 0) + 1);
  const outcomes = [...counts].map(([result, n]) => `${n} ${result}`).join(', ');
  const stock = [...batch.stock].map(([id, s]) => `${id} ${s.before} → ${s.after}`).join(', ');
  return stock ? `${outcomes}; stock ${stock}` : outcomes;
}
