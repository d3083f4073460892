// Batched consumption (CONSUMER_MODE=batch): a whole claimed batch in ONE transaction, so a
// batch of 50 costs one commit instead of 50. The idempotency is the per-message consumer's:
// the message ids are inserted first (ON CONFLICT DO NOTHING), only the new ones are applied,
// and each product's stock changes by the sum of what its confirmed orders took, decided in
// delivery order exactly as one-by-one handling would decide it.
//
// Order events follow the per-message rules (consumer.ts): inbox first, then each order's
// position, then the effect. An early event (its order's previous event not applied yet) is
// handed back DEFERRED, untouched, as the per-message consumer would (the relay retries it
// uncounted); so is a second event of an order already in this batch (the first must commit
// before the second can be judged), which also keeps every order to one effect per batch.
// A cancellation gives its reservation back into the batch's running stock, in delivery
// order, like one-by-one handling.
//
// If anything in the batch fails (a poison or stale message, an order that is not PENDING,
// a lost connection) the whole transaction rolls back and the batch is handled again one
// message at a time by the per-message consumer, so one bad event fails alone and the rest still commit.
// Each of those steps starts only while the caller says there is time for it (its lease):
// the messages left over fail with the batch's error and are retried later.
import type { Pool, Queryable } from '../db/pool.ts';
import { withTransaction } from '../db/transaction.ts';
import { AppError, isAppError } from '../errors/errors.ts';
import type { Logger } from '../log/logger.ts';
import { getOrders, settleOrders, type OrderCreatedPayload, type Settlement } from '../orders/orders.ts';
import { recordAnswers, releaseAnswers, type StockAnswer } from './answers.ts';
import { deferred, judge, parseOrderEvent, type Delivery, type DeliveryResult, type InventoryConsumer, type OrderEvent } from './consumer.ts';
import { advancePositions } from './positions.ts';
import { recordFirstDeliveries, recordSkippedDuplicates, setOutcomes } from './processed.ts';
import { lockStock, takeStockAmounts } from './stock.ts';

export interface BatchConsumer {
  /**
   * Handles `deliveries` in one transaction, or one by one when that fails. Resolves with one
   * settled result per delivery, in order: fulfilled once its outcome is committed, rejected
   * with the error the per-message consumer gave it (POISON_MESSAGE for a hopeless one,
   * DEFERRED for one that came before its order's previous event).
   * `mayStart` is asked before each one-by-one step; once it says no, the remaining messages
   * are rejected with the batch's error (never as poison: nothing was learnt about them alone).
   */
  handleBatch(
    deliveries: readonly Delivery[],
    deliveredBy: string,
    mayStart?: () => boolean,
  ): Promise<PromiseSettledResult<DeliveryResult>[]>;
}

export interface BatchConsumerDeps {
  pool: Pool;
  logger: Logger;
  single: InventoryConsumer;
  /** TEST CONTROL, never used by the product: false skips the position check (see ConsumerDeps.ordering). */
  ordering?: boolean;
}

export function createBatchConsumer(deps: BatchConsumerDeps): BatchConsumer {
  const log = deps.logger.child('Inventory');
  const ordering = deps.ordering ?? true;
  return {
    async handleBatch(deliveries, deliveredBy, mayStart = () => true) {
      let applied: AppliedBatch;
      try {
        applied = await applyBatch(deps.pool, deliveries, deliveredBy, ordering);
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
      return applied.results.map((value): PromiseSettledResult<DeliveryResult> =>
        value instanceof AppError ? { status: 'rejected', reason: value } : { status: 'fulfilled', value });
    },
  };
}

interface AppliedBatch {
  /** Per delivery: its outcome, or the DEFERRED error it is handed back with. */
  results: Array<DeliveryResult | AppError>;
  /** Per product: stock before and after this batch. */
  stock: Map<string, { before: number; after: number }>;
}

async function applyBatch(pool: Pool, deliveries: readonly Delivery[], deliveredBy: string, ordering: boolean): Promise<AppliedBatch> {
  // Outside the transaction: a malformed message fails the batch before it touches anything.
  const events = deliveries.map(parseOrderEvent);
  // Handed back DEFERRED, untouched: a deferral must leave no trace (no inbox row, no count).
  const held = new Map<number, AppError>();
  // An early event found inside the transaction rolls it back, and the batch runs again
  // without it: at most once per event, and deferrals are rare (a predecessor in backoff).
  for (;;) {
    try {
      return await withTransaction(pool, (tx) => applyInTransaction(tx, deliveries, events, deliveredBy, ordering, held));
    } catch (error) {
      if (!(error instanceof EarlyEvents)) throw error;
      for (const [index, reason] of error.found) held.set(index, reason);
    }
  }
}

/** Thrown inside the batch's transaction to roll it back: these events are early. */
class EarlyEvents extends Error {
  constructor(readonly found: ReadonlyMap<number, AppError>) {
    super(`${found.size} early event(s)`);
  }
}

async function applyInTransaction(
  tx: Queryable,
  deliveries: readonly Delivery[],
  events: readonly OrderEvent[],
  deliveredBy: string,
  ordering: boolean,
  held: ReadonlyMap<number, AppError>,
): Promise<AppliedBatch> {
  const taking = deliveries.map((_, i) => !held.has(i));
  const positions = events.map((e) => ({ aggregateId: e.order.orderId, sequence: e.sequence }));
  const fresh = await recordFirstDeliveries(
    tx,
    deliveries.filter((_, i) => taking[i]),
    deliveredBy,
    positions.filter((_, i) => taking[i]),
  );
  // The same id twice in one batch: the first occurrence is the delivery, the second a duplicate.
  const isNew = deliveries.map((d, i) => taking[i]! && fresh.delete(d.messageId));
  await recordSkippedDuplicates(tx, deliveries.filter((_, i) => taking[i] && !isNew[i]).map((d) => d.messageId), deliveredBy);
  if (ordering) await checkPositions(tx, events, isNew);

  const applying = events.filter((_, i) => isNew[i]);
  const cancelled = applying.filter((e) => e.kind === 'cancelled').map((e) => e.order.orderId);
  const stock = await lockStock(tx, [...new Set(applying.map((e) => e.order.productId))]);
  const released = new Map((await releaseAnswers(tx, cancelled)).map((r) => [r.orderId, r]));
  const before = new Map(stock);
  const delta = new Map<string, number>();
  const settlements: Settlement[] = [];
  const answers: StockAnswer[] = [];
  const rejected: string[] = [];
  const results = events.map((event, i): DeliveryResult | AppError => {
    const early = held.get(i);
    if (early) return early;
    if (!isNew[i]) return 'duplicate';
    const { order } = event;
    if (event.kind === 'cancelled') {
      const r = released.get(order.orderId);
      if (!r) return 'cancelled';
      giveBack(r.productId ?? order.productId, r.quantity ?? order.quantity, stock, delta);
      return 'released';
    }
    const decision = decide(order, stock, delta);
    settlements.push({ orderId: order.orderId, status: decision.status, reason: decision.reason });
    const outcome = decision.status === 'CONFIRMED' ? 'reserved' : 'rejected';
    answers.push({ orderId: order.orderId, outcome, messageId: deliveries[i]!.messageId, productId: order.productId, quantity: order.quantity });
    if (decision.status === 'CONFIRMED') return 'applied';
    rejected.push(deliveries[i]!.messageId);
    return 'rejected';
  });

  await takeStockAmounts(tx, delta);
  // Fewer settled than asked: some order is not PENDING. One cancelled while PENDING stays
  // CANCELLED (its stock is reserved; its cancellation gives it back), as one by one; any
  // other rolls the batch back and it goes one by one.
  const settled = await settleOrders(tx, settlements);
  if (settled !== settlements.length) {
    const cancelled = (await getOrders(tx, settlements.map((s) => s.orderId))).filter((o) => (o.status as string) === 'CANCELLED').length;
    if (settled + cancelled !== settlements.length) {
      throw new AppError('POISON_MESSAGE', 'an order in the batch does not exist or is no longer PENDING');
    }
  }
  if ((await recordAnswers(tx, answers)) !== answers.length) {
    throw new AppError('POISON_MESSAGE', 'an order in the batch was already answered');
  }
  await setOutcomes(tx, rejected, 'rejected');
  // Cancellations are not confirmations in the inbox's totals (one statement, only when there are any).
  await setOutcomes(tx, events.flatMap((e, i) => (isNew[i] && e.kind === 'cancelled' ? [deliveries[i]!.messageId] : [])), 'cancelled');
  const changes = new Map([...delta.keys()].map((id) => [id, { before: before.get(id)!, after: stock.get(id)! }]));
  return { results, stock: changes };
}

/**
 * Moves the positions of the batch's new events, in order id order (two batches sharing
 * orders then wait for each other instead of deadlocking). Early ones roll the transaction
 * back (EarlyEvents), and so does a new event of an order with an earlier new event in this
 * batch: it is judged after that one commits, which also keeps each order to one effect per
 * batch. A stale one throws POISON_MESSAGE, and the batch goes one by one.
 */
async function checkPositions(tx: Queryable, events: readonly OrderEvent[], isNew: readonly boolean[]): Promise<void> {
  const earliest = new Map<string, number>();
  for (const [i, event] of events.entries()) {
    const seen = earliest.get(event.order.orderId);
    if (isNew[i] && (seen === undefined || event.sequence < seen)) earliest.set(event.order.orderId, event.sequence);
  }
  const early = new Map<number, AppError>();
  for (const [i, event] of events.entries()) {
    if (isNew[i] && event.sequence > earliest.get(event.order.orderId)!) early.set(i, deferred(event.order.orderId, event.sequence));
  }
  const order = events.map((_, i) => i).filter((i) => isNew[i] && !early.has(i));
  order.sort((a, b) => compare(events[a]!.order.orderId, events[b]!.order.orderId));
  // One statement for the whole batch (one event per order here), not one per event.
  const checks = await advancePositions(tx, order.map((i) => ({ aggregateId: events[i]!.order.orderId, sequence: events[i]!.sequence })));
  for (const [k, i] of order.entries()) {
    try {
      judge(events[i]!, checks[k]!);
    } catch (error) {
      if (!isAppError(error, 'DEFERRED')) throw error;
      early.set(i, error);
    }
  }
  if (early.size > 0) throw new EarlyEvents(early);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A cancellation's reservation back into the batch's running stock. */
function giveBack(productId: string, quantity: number, stock: Map<string, number>, delta: Map<string, number>): void {
  stock.set(productId, (stock.get(productId) ?? 0) + quantity);
  delta.set(productId, (delta.get(productId) ?? 0) - quantity);
}

/** The per-message consumer's rule, on the batch's running stock: take it if enough is left. */
function decide(
  payload: OrderCreatedPayload,
  stock: Map<string, number>,
  /** Per product, what the batch takes (negative: gives back). */
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
  const counts = new Map<string, number>();
  for (const result of batch.results) {
    const word = result instanceof AppError ? 'deferred' : result;
    counts.set(word, (counts.get(word) ?? 0) + 1);
  }
  const outcomes = [...counts].map(([result, n]) => `${n} ${result}`).join(', ');
  const stock = [...batch.stock].map(([id, s]) => `${id} ${s.before} → ${s.after}`).join(', ');
  return stock ? `${outcomes}; stock ${stock}` : outcomes;
}
