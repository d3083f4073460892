// The inventory service's answer to an order, written to ITS outbox in the same transaction
// as the stock change and the inbox record: the reply exists exactly when the effect does.
// Its own relay publishes it (stream INVENTORY); the order service settles the order on it.
// The answer itself (stock_answers) is recorded by the consumer, in both transports; a
// cancellation gets no reply (the order service cancelled the order itself).
import { randomUUID } from 'node:crypto';
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
  const reply: StockReply =
    outcome.kind === 'applied'
      ? { orderId, productId, quantity, stockLeft: outcome.stockLeft }
      : { orderId, productId, quantity, reason: outcome.reason };
  await enqueueEvent(
    tx,
    { messageId: randomUUID(), eventType: outcome.kind === 'applied' ? STOCK_RESERVED : STOCK_REJECTED, aggregateId: orderId, payload: reply, headers },
    // The service nudges its own relay after the commit; no NOTIFY inside this transaction.
    { notify: false },
  );
  return undefined;
};
