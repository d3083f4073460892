// The Inventory consumer: applies OrderCreated exactly once, however often it is delivered.
import type { Pool, Queryable } from '../db/pool.ts';
import { withTransaction } from '../db/transaction.ts';
import { AppError } from '../errors/errors.ts';
import type { CrashHook } from '../faults/faults.ts';
import type { Logger } from '../log/logger.ts';
import { settleOrder, type OrderCreatedPayload } from '../orders/orders.ts';
import { isUuid } from '../orders/validate.ts';
import { ORDER_CREATED } from '../outbox/outbox.ts';
import { traceTag } from '../tracing/context.ts';
import { recordFirstDelivery, recordSkippedDuplicate, setOutcome } from './processed.ts';
import { stockOf, takeStock } from './stock.ts';

/** What the relay hands over: the message envelope, nothing about outbox rows or leases. */
export interface Delivery {
  messageId: string;
  eventType: string;
  payload: unknown;
  /** The trace context it travels with; a reply written here carries it on. */
  headers?: Record<string, string>;
  /** Its position within its aggregate (absent: 1). */
  sequence?: number;
}

export type DeliveryResult = 'applied' | 'rejected' | 'duplicate';

export interface InventoryConsumer {
  /**
   * Handles one delivery in its own transaction. Resolves once the outcome is committed;
   * throws when it could not be (the relay retries later) or with POISON_MESSAGE when the
   * message can never succeed.
   */
  handle(delivery: Delivery, deliveredBy: string): Promise<DeliveryResult>;
}

/** What an order's outcome became, inside the consumer's transaction. */
export type StockOutcome =
  | { kind: 'applied'; order: OrderCreatedPayload; stockLeft: number }
  | { kind: 'rejected'; order: OrderCreatedPayload; reason: string };

/**
 * Makes the outcome known, in the consumer's transaction. In-process the consumer shares the
 * order database and settles the order itself (settleOrderInPlace, the default); as its own
 * service it writes a reply event to its own outbox instead (replies.ts).
 */
export type OutcomeWriter = (tx: Queryable, outcome: StockOutcome, headers?: Record<string, string>) => Promise<void>;

export interface ConsumerDeps {
  pool: Pool;
  logger: Logger;
  /** Fault injection: the crash point just before the consumer's COMMIT. */
  crash?: CrashHook;
  /** Default: settle the order in the same database (in-process transport). */
  writeOutcome?: OutcomeWriter;
}

/** The in-process consumer's last step: the order row is in its own database. */
export const settleOrderInPlace: OutcomeWriter = async (tx, outcome) => {
  const settled =
    outcome.kind === 'applied'
      ? await settleOrder(tx, outcome.order.orderId, 'CONFIRMED')
      : await settleOrder(tx, outcome.order.orderId, 'REJECTED', outcome.reason);
  if (!settled) throw orderNotPending(outcome.order.orderId);
};

export function createInventoryConsumer(deps: ConsumerDeps): InventoryConsumer {
  const log = deps.logger.child('Inventory');
  const writeOutcome = deps.writeOutcome ?? settleOrderInPlace;
  // In-process the order is settled in this very transaction; as a service it gets a reply.
  const settledAs = deps.writeOutcome ? { applied: 'reserved, StockReserved queued', rejected: 'StockRejected queued' } : { applied: 'CONFIRMED', rejected: 'REJECTED' };
  return {
    async handle(delivery, deliveredBy) {
      const payload = parseOrderCreated(delivery);
      const short = payload.orderId.slice(0, 8);
      const tag = traceTag(delivery.headers);
      const result = await withTransaction(deps.pool, async (tx) => {
        const outcome = await applyOnce(tx, delivery, payload, deliveredBy, writeOutcome);
        deps.crash?.('mid-consume');
        return outcome;
      });
      // Logged after COMMIT, so the log never claims something that was rolled back.
      if (result.kind === 'duplicate') {
        log.info(`SKIPPING duplicate message ${delivery.messageId} (order ${short}…, delivered by ${deliveredBy})${tag}`);
      } else if (result.kind === 'applied') {
        log.info(`order ${short}… stock ${payload.productId} ${result.before} → ${result.after} (${settledAs.applied})${tag}`);
      } else {
        log.info(`order ${short}… ${settledAs.rejected}: ${result.reason}${tag}`);
      }
      return result.kind;
    },
  };
}

/** The consumer's transaction body: idempotency record first, then the effect. */
async function applyOnce(tx: Queryable, delivery: Delivery, payload: OrderCreatedPayload, deliveredBy: string, writeOutcome: OutcomeWriter) {
  // The idempotency record comes first: if this message was seen, nothing else runs.
  if (!(await recordFirstDelivery(tx, delivery, deliveredBy))) {
    await recordSkippedDuplicate(tx, delivery.messageId, deliveredBy);
    return { kind: 'duplicate' as const };
  }
  const left = await takeStock(tx, payload.productId, payload.quantity);
  if (left !== undefined) {
    await writeOutcome(tx, { kind: 'applied', order: payload, stockLeft: left }, delivery.headers);
    return { kind: 'applied' as const, before: left + payload.quantity, after: left };
  }
  const have = (await stockOf(tx, payload.productId)) ?? 0;
  const reason = `insufficient stock for ${payload.productId}: wanted ${payload.quantity}, have ${have}`;
  await setOutcome(tx, delivery.messageId, 'rejected');
  await writeOutcome(tx, { kind: 'rejected', order: payload, reason }, delivery.headers);
  return { kind: 'rejected' as const, reason };
}

/** Checks the envelope and payload shape; anything off can never succeed, so it is poison. */
export function parseOrderCreated(delivery: Delivery): OrderCreatedPayload {
  // The message id is the inbox's key (a uuid): a message without one can never be recorded.
  if (!isUuid(delivery.messageId)) throw new AppError('POISON_MESSAGE', `message id ${JSON.stringify(delivery.messageId)} is not a uuid`);
  if (delivery.eventType !== ORDER_CREATED) {
    throw new AppError('POISON_MESSAGE', `unknown event type "${delivery.eventType}"`);
  }
  const p = delivery.payload as Partial<Record<keyof OrderCreatedPayload, unknown>> | null;
  const valid =
    typeof p === 'object' && p !== null &&
    typeof p.orderId === 'string' && isUuid(p.orderId) &&
    typeof p.productId === 'string' &&
    typeof p.quantity === 'number' && Number.isInteger(p.quantity) && p.quantity > 0 &&
    (p.userId === undefined || p.userId === null || typeof p.userId === 'string');
  if (!valid) throw new AppError('POISON_MESSAGE', `malformed ${ORDER_CREATED} payload`);
  return { orderId: p.orderId as string, productId: p.productId as string, quantity: p.quantity as number, userId: (p.userId as string | null | undefined) ?? null };
}

function orderNotPending(orderId: string): AppError {
  return new AppError('POISON_MESSAGE', `order ${orderId} does not exist or is no longer PENDING`);
}
