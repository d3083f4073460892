// The order service's side of the reply (TRANSPORT=nats): StockReserved / StockRejected from
// the inventory service settle the order CONFIRMED / REJECTED. The order's status is the
// consumer's answer coming back. Same rules as every consumer here: the reply's message id
// goes into this service's inbox first, in the same transaction as the status change, so a
// reply delivered twice settles once. A reply for an order cancelled while it was PENDING is
// recorded and acknowledged, and the order stays CANCELLED (the inventory gives the stock
// back when the cancellation reaches it).
import type { Pool } from '../db/pool.ts';
import { withTransaction } from '../db/transaction.ts';
import { AppError } from '../errors/errors.ts';
import { recordFirstDelivery, recordSkippedDuplicate, setOutcome } from '../inventory/processed.ts';
import { STOCK_REJECTED, STOCK_RESERVED, type StockReply } from '../inventory/replies.ts';
import type { Logger } from '../log/logger.ts';
import type { Received } from '../transport/transport.ts';
import { traceTag } from '../tracing/context.ts';
import { getOrder, settleOrder } from './orders.ts';
import { isUuid } from './validate.ts';

export interface ReplyConsumer {
  /** Settles the reply's order once; resolves "confirmed", "rejected", "cancelled" (the order stays so) or "duplicate". */
  handle(reply: Received, receivedBy: string): Promise<string>;
}

export function createReplyConsumer(deps: { pool: Pool; logger: Logger }): ReplyConsumer {
  return {
    async handle(reply, receivedBy) {
      const body = parseReply(reply);
      const status = reply.eventType === STOCK_RESERVED ? 'CONFIRMED' : 'REJECTED';
      const result = await withTransaction(deps.pool, async (tx) => {
        if (!(await recordFirstDelivery(tx, reply, receivedBy))) {
          await recordSkippedDuplicate(tx, reply.messageId, receivedBy);
          return 'duplicate';
        }
        const settled = await settleOrder(tx, body.orderId, status, body.reason ?? null);
        // The inbox's totals are what /stats counts as CONFIRMED and REJECTED.
        if (status === 'REJECTED') await setOutcome(tx, reply.messageId, 'rejected');
        if (settled) return status === 'CONFIRMED' ? 'confirmed' : 'rejected';
        const current: string | undefined = await getOrder(tx, body.orderId).then((order) => order.status, () => undefined);
        if (current === 'CANCELLED') return 'cancelled';
        throw new AppError('POISON_MESSAGE', `order ${body.orderId} does not exist here or is no longer PENDING`);
      });
      const log = deps.logger.child(receivedBy);
      const short = body.orderId.slice(0, 8);
      const tag = traceTag(reply.headers);
      if (result === 'duplicate') log.info(`SKIPPING duplicate reply ${reply.messageId} (order ${short}…)${tag}`);
      else if (result === 'cancelled') log.info(`order ${short}… stays CANCELLED (${reply.eventType} came after the cancellation; the inventory gives the stock back)${tag}`);
      else if (status === 'CONFIRMED') log.info(`order ${short}… CONFIRMED (${reply.eventType}: ${body.productId} has ${body.stockLeft} left)${tag}`);
      else log.info(`order ${short}… REJECTED (${reply.eventType}: ${body.reason})${tag}`);
      return result;
    },
  };
}

function parseReply(reply: Received): StockReply {
  if (!isUuid(reply.messageId)) throw new AppError('POISON_MESSAGE', `message id ${JSON.stringify(reply.messageId)} is not a uuid`);
  if (reply.eventType !== STOCK_RESERVED && reply.eventType !== STOCK_REJECTED) {
    throw new AppError('POISON_MESSAGE', `unknown reply type "${reply.eventType}"`);
  }
  const p = reply.payload as Partial<StockReply> | null;
  if (typeof p !== 'object' || p === null || typeof p.orderId !== 'string' || !isUuid(p.orderId) || typeof p.productId !== 'string') {
    throw new AppError('POISON_MESSAGE', `malformed ${reply.eventType} payload`);
  }
  return p as StockReply;
}
