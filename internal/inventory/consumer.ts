// The Inventory consumer: applies each order event exactly once and in its order, however
// often and in whatever order it is delivered. OrderCreated (position 1) reserves or rejects
// stock; OrderCancelled (position 2) gives a reservation back. In ONE transaction: inbox
// record first (a duplicate stops there), then the order's position (an early event rolls
// back as DEFERRED and comes again; a stale one is poison), then the effect.
import type { Pool, Queryable } from '../db/pool.ts';
import { withTransaction } from '../db/transaction.ts';
import { AppError } from '../errors/errors.ts';
import type { CrashHook } from '../faults/faults.ts';
import type { Logger } from '../log/logger.ts';
import { getOrder, settleOrder, type OrderCreatedPayload } from '../orders/orders.ts';
import { isUuid } from '../orders/validate.ts';
import { ORDER_CANCELLED, ORDER_CREATED } from '../outbox/outbox.ts';
import { traceTag } from '../tracing/context.ts';
import { recordAnswer, releaseAnswers, reserveAnswered } from './answers.ts';
import { recordInOrder, type PositionCheck } from './positions.ts';
import { recordFirstDelivery, recordSkippedDuplicate, setOutcome } from './processed.ts';
import { giveStockBack, stockOf, takeStock } from './stock.ts';

/** What the relay hands over: the message envelope, nothing about outbox rows or leases. */
export interface Delivery {
  messageId: string;
  eventType: string;
  payload: unknown;
  /** The trace context it travels with; a reply written here carries it on. */
  headers?: Record<string, string>;
  /** Its position within its order (absent = 1: OrderCreated, or a message from before positions). */
  sequence?: number;
}

/**
 * applied / rejected: an OrderCreated reserved stock or was refused. released: an
 * OrderCancelled gave a reservation back; cancelled: it had nothing to give back.
 */
export type DeliveryResult = 'applied' | 'rejected' | 'released' | 'cancelled' | 'duplicate';

export interface InventoryConsumer {
  /**
   * Handles one delivery in its own transaction. Resolves once the outcome is committed;
   * throws when it could not be (the relay retries later), with DEFERRED when an earlier event
   * of its order was not applied yet (retried later, never counted as a failure), or with
   * POISON_MESSAGE when the message can never succeed.
   */
  handle(delivery: Delivery, deliveredBy: string): Promise<DeliveryResult>;
}

/** An order event, checked: which kind, its payload (the order) and its position. */
export interface OrderEvent {
  kind: 'created' | 'cancelled';
  order: OrderCreatedPayload;
  sequence: number;
}

/** What an order's outcome became, inside the consumer's transaction. */
export type StockOutcome =
  | { kind: 'applied'; order: OrderCreatedPayload; stockLeft: number }
  | { kind: 'rejected'; order: OrderCreatedPayload; reason: string };

/**
 * Makes the outcome known, in the consumer's transaction. In-process the consumer shares the
 * order database and settles the order itself (settleOrderInPlace, the default); as its own
 * service it writes a reply event to its own outbox instead (replies.ts). May return a note
 * for the consumer's log line.
 */
export type OutcomeWriter = (tx: Queryable, outcome: StockOutcome, headers?: Record<string, string>) => Promise<string | undefined>;

export interface ConsumerDeps {
  pool: Pool;
  logger: Logger;
  /** Fault injection: the crash point just before the consumer's COMMIT. */
  crash?: CrashHook;
  /** Default: settle the order in the same database (in-process transport). */
  writeOutcome?: OutcomeWriter;
  /**
   * TEST CONTROL, never used by the product: false builds a consumer without the position
   * check (inbox only, as before issue 16), to show the wrong stock it ends with when a
   * cancellation overtakes its order's creation. Default true.
   */
  ordering?: boolean;
}

/**
 * The in-process consumer's last step: the order row is in its own database. An order
 * cancelled while PENDING stays CANCELLED (its stock is still reserved here: the
 * OrderCancelled that follows gives it back).
 */
export const settleOrderInPlace: OutcomeWriter = async (tx, outcome) => {
  const { orderId } = outcome.order;
  const settled =
    outcome.kind === 'applied'
      ? await settleOrder(tx, orderId, 'CONFIRMED')
      : await settleOrder(tx, orderId, 'REJECTED', outcome.reason);
  if (settled) return undefined;
  const status: string | undefined = await getOrder(tx, orderId).then((order) => order.status, () => undefined);
  if (status === 'CANCELLED') return 'order already CANCELLED: it stays so; its OrderCancelled gives the stock back next';
  throw orderNotPending(orderId);
};

export function createInventoryConsumer(deps: ConsumerDeps): InventoryConsumer {
  const log = deps.logger.child('Inventory');
  const writeOutcome = deps.writeOutcome ?? settleOrderInPlace;
  const ordering = deps.ordering ?? true;
  // In-process the order is settled in this very transaction; as a service it gets a reply.
  const settledAs = deps.writeOutcome ? { applied: 'reserved, StockReserved queued', rejected: 'StockRejected queued' } : { applied: 'CONFIRMED', rejected: 'REJECTED' };
  return {
    async handle(delivery, deliveredBy) {
      const event = parseOrderEvent(delivery);
      const short = event.order.orderId.slice(0, 8);
      const tag = traceTag(delivery.headers);
      const result = await withTransaction(deps.pool, async (tx) => {
        const outcome = await applyOnce(tx, delivery, event, deliveredBy, writeOutcome, ordering);
        deps.crash?.('mid-consume');
        return outcome;
      });
      // Logged after COMMIT, so the log never claims something that was rolled back.
      const note = 'note' in result && result.note ? ` (${result.note})` : '';
      if (result.kind === 'duplicate') {
        log.info(`SKIPPING duplicate message ${delivery.messageId} (order ${short}…, delivered by ${deliveredBy})${tag}`);
      } else if (result.kind === 'applied') {
        // Cancelled while PENDING: reserved all the same (in order), and not "CONFIRMED".
        const as = result.note ? 'reserved' : settledAs.applied;
        log.info(`order ${short}… stock ${event.order.productId} ${result.before} → ${result.after} (${as})${note}${tag}`);
      } else if (result.kind === 'rejected') {
        log.info(`order ${short}… ${settledAs.rejected}: ${result.reason}${note}${tag}`);
      } else if (result.kind === 'released') {
        log.info(`order ${short}… cancelled: stock ${result.productId} ${result.before} → ${result.after} (reservation given back)${tag}`);
      } else {
        log.info(`order ${short}… cancelled: nothing to give back (its stock was rejected, or already given back)${tag}`);
      }
      return result.kind;
    },
  };
}

/** The consumer's transaction body: idempotency record first, then the position, then the effect. */
async function applyOnce(tx: Queryable, delivery: Delivery, event: OrderEvent, deliveredBy: string, writeOutcome: OutcomeWriter, ordering: boolean) {
  const { order, sequence } = event;
  // The idempotency record comes first: if this message was seen, nothing else runs.
  // A cancellation is recorded as such, so the inbox's totals never count it as a confirmation.
  const outcome = event.kind === 'cancelled' ? 'cancelled' : 'applied';
  // With the ordering rule, the inbox row and the position step are one statement.
  const isNew = ordering
    ? await recordInOrder(tx, delivery, deliveredBy, order.orderId, sequence, outcome).then((record) => record.isNew && judge(event, record))
    : await recordFirstDelivery(tx, delivery, deliveredBy, { aggregateId: order.orderId, sequence }, outcome);
  if (!isNew) {
    await recordSkippedDuplicate(tx, delivery.messageId, deliveredBy);
    return { kind: 'duplicate' as const };
  }
  return event.kind === 'created' ? reserve(tx, delivery, order, writeOutcome) : release(tx, order);
}

/** True for the next event; throws DEFERRED for an early one, POISON_MESSAGE for a stale one. */
export function judge(event: OrderEvent, { verdict, lastSeq }: PositionCheck): true {
  const { orderId } = event.order;
  if (verdict === 'early') throw deferred(orderId, event.sequence);
  if (verdict === 'stale') {
    throw new AppError('POISON_MESSAGE', `event ${event.sequence} of order ${orderId} is stale: its events up to ${lastSeq} were already applied (by another message)`);
  }
  return true;
}

/** The early event's error; the relay and the subscriber log its message as it is. */
export function deferred(orderId: string, sequence: number): AppError {
  return new AppError('DEFERRED', `waiting for event ${sequence - 1} of order ${orderId}`);
}

async function reserve(tx: Queryable, delivery: Delivery, order: OrderCreatedPayload, writeOutcome: OutcomeWriter) {
  const answer = { orderId: order.orderId, messageId: delivery.messageId, productId: order.productId, quantity: order.quantity };
  // The stock taken and its answer recorded in one statement (one round trip).
  const reserved = await reserveAnswered(tx, answer);
  if (reserved.stockLeft !== undefined) {
    if (!reserved.answered) throw alreadyAnswered(order.orderId);
    const left = reserved.stockLeft;
    const note = await writeOutcome(tx, { kind: 'applied', order, stockLeft: left }, delivery.headers);
    return { kind: 'applied' as const, before: left + order.quantity, after: left, note };
  }
  const have = (await stockOf(tx, order.productId)) ?? 0;
  const reason = `insufficient stock for ${order.productId}: wanted ${order.quantity}, have ${have}`;
  await setOutcome(tx, delivery.messageId, 'rejected');
  await answerOnce(tx, { ...answer, outcome: 'rejected' });
  const note = await writeOutcome(tx, { kind: 'rejected', order, reason }, delivery.headers);
  return { kind: 'rejected' as const, reason, note };
}

async function answerOnce(tx: Queryable, answer: Parameters<typeof recordAnswer>[1]): Promise<void> {
  if (!(await recordAnswer(tx, answer))) throw alreadyAnswered(answer.orderId);
}

// Its inbox record is gone (pruned after INBOX_RETENTION), but the order was answered: refuse,
// so the whole transaction rolls back, the stock taken included.
function alreadyAnswered(orderId: string): AppError {
  return new AppError('POISON_MESSAGE', `order ${orderId} was already answered: a copy of its OrderCreated came back after its inbox record was pruned`);
}

/** OrderCancelled: gives back what the order's reservation took, once; nothing if it had none. */
async function release(tx: Queryable, order: OrderCreatedPayload) {
  const [released] = await releaseAnswers(tx, [order.orderId]);
  if (!released) return { kind: 'cancelled' as const };
  const productId = released.productId ?? order.productId;
  const quantity = released.quantity ?? order.quantity;
  const after = (await giveStockBack(tx, productId, quantity)) ?? 0;
  return { kind: 'released' as const, productId, before: after - quantity, after };
}

/** Checks the envelope, payload and position; anything off can never succeed, so it is poison. */
export function parseOrderEvent(delivery: Delivery): OrderEvent {
  // The message id is the inbox's key (a uuid): a message without one can never be recorded.
  if (!isUuid(delivery.messageId)) throw new AppError('POISON_MESSAGE', `message id ${JSON.stringify(delivery.messageId)} is not a uuid`);
  const kind = delivery.eventType === ORDER_CREATED ? 'created' : delivery.eventType === ORDER_CANCELLED ? 'cancelled' : undefined;
  if (!kind) throw new AppError('POISON_MESSAGE', `unknown event type "${delivery.eventType}"`);
  const p = delivery.payload as Partial<Record<keyof OrderCreatedPayload, unknown>> | null;
  const valid =
    typeof p === 'object' && p !== null &&
    typeof p.orderId === 'string' && isUuid(p.orderId) &&
    typeof p.productId === 'string' &&
    typeof p.quantity === 'number' && Number.isInteger(p.quantity) && p.quantity > 0 &&
    (p.userId === undefined || p.userId === null || typeof p.userId === 'string');
  if (!valid) throw new AppError('POISON_MESSAGE', `malformed ${delivery.eventType} payload`);
  // A creation is always its order's first event (absent: written before positions existed);
  // a cancellation without its position could not be ordered after the creation.
  const sequence = delivery.sequence ?? (kind === 'created' ? 1 : undefined);
  if (sequence === undefined) throw new AppError('POISON_MESSAGE', `${ORDER_CANCELLED} without its position (sequence) in the order`);
  if (!Number.isInteger(sequence) || sequence < 1 || (kind === 'created') !== (sequence === 1)) {
    throw new AppError('POISON_MESSAGE', `${delivery.eventType} at position ${sequence} of its order: a creation is 1, a later event more`);
  }
  const order = { orderId: p.orderId as string, productId: p.productId as string, quantity: p.quantity as number, userId: (p.userId as string | null | undefined) ?? null };
  return { kind, order, sequence };
}

/** An OrderCreated's payload, checked (the replay tools' shorthand). */
export function parseOrderCreated(delivery: Delivery): OrderCreatedPayload {
  const event = parseOrderEvent(delivery);
  if (event.kind !== 'created') throw new AppError('POISON_MESSAGE', `not an ${ORDER_CREATED}: "${delivery.eventType}"`);
  return event.order;
}

function orderNotPending(orderId: string): AppError {
  return new AppError('POISON_MESSAGE', `order ${orderId} does not exist or is no longer PENDING`);
}
