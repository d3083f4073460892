// The inventory service's answer to an order, written to ITS outbox in the same transaction
// as the stock change and the inbox record: the reply exists exactly when the effect does.
// Its own relay publishes it (stream INVENTORY); the order service settles the order on it.
import { randomUUID } from 'node:crypto';
import type { Queryable } from '../db/pool.ts';
import { AppError } from '../errors/errors.ts';
import { enqueueEvent } from '../outbox/outbox.ts';
import type { OutcomeWriter } from './consumer.ts';

export const STOCK_RESERVED = 'StockReserved';
export const STOCK_REJECTED = 'StockRejected';

export interface StockReply {
  orderId: string;
  productId: string;
  quantity: number;
  /** StockReserved: what the product has left after this order. */
  stockLeft?: number;
  /** StockRejected: why. */
  reason?: string;
}

/** `headers`: the consumer's trace context, so the reply continues the order's trace. */
export const writeStockReply: OutcomeWriter = async (tx, outcome, headers) => {
  const { orderId, productId, quantity } = outcome.order;
  const replyId = randomUUID();
  if (!(await recordAnswer(tx, orderId, outcome.kind === 'applied' ? 'reserved' : 'rejected', replyId))) {
    // Its inbox record is gone (pruned after INBOX_RETENTION), but the order was answered:
    // refuse, so the whole transaction rolls back, the stock taken above included.
    throw new AppError('POISON_MESSAGE', `order ${orderId} was already answered: a copy of its OrderCreated came back after its inbox record was pruned`);
  }
  const reply: StockReply =
    outcome.kind === 'applied'
      ? { orderId, productId, quantity, stockLeft: outcome.stockLeft }
      : { orderId, productId, quantity, reason: outcome.reason };
  await enqueueEvent(
    tx,
    { messageId: replyId, eventType: outcome.kind === 'applied' ? STOCK_RESERVED : STOCK_REJECTED, aggregateId: orderId, payload: reply, headers },
    // The service nudges its own relay after the commit; no NOTIFY inside this transaction.
    { notify: false },
  );
};

/** One answer per order, ever: false when the order already has one. */
async function recordAnswer(tx: Queryable, orderId: string, outcome: 'reserved' | 'rejected', replyId: string): Promise<boolean> {
  const { rowCount } = await tx.query(
    `INSERT INTO stock_answers (order_id, outcome, message_id) VALUES ($1, $2, $3) ON CONFLICT (order_id) DO NOTHING`,
    [orderId, outcome, replyId],
  );
  return rowCount === 1;
}

/** The demo's and chaos run's fresh start. */
export async function clearStockAnswers(tx: Queryable): Promise<void> {
  await tx.query('TRUNCATE stock_answers');
}
