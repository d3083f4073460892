// "Cancel order": like placing one, ONE transaction that changes the order row and writes its
// event (OrderCancelled) through the same client. The order row's lock serialises everything
// that writes an event of this order, so the event's position (orders.event_seq + 1) is
// assigned without gaps or duplicates, and the relay and the consumer can keep that order.
import { randomUUID } from 'node:crypto';
import type { Pool } from '../db/pool.ts';
import { withTransaction } from '../db/transaction.ts';
import { AppError } from '../errors/errors.ts';
import { enqueueEvent, ORDER_CANCELLED } from '../outbox/outbox.ts';
import { cancelRequestHash, DEFAULT_IDEMPOTENCY_KEY_TTL_MS, findIdempotencyKey, takeIdempotencyKey } from './idempotency.ts';
import { ORDER_COLUMNS, toOrder, type Order, type OrderCreatedPayload, type OrderRow, type PlaceOrderOptions } from './orders.ts';
import { isUuid } from './validate.ts';

/** The OrderCancelled event's payload: what the inventory needs to give the stock back. */
export type OrderCancelledPayload = OrderCreatedPayload;

/**
 * - `cancelled`: this request cancelled it (order updated, OrderCancelled written);
 * - `already-cancelled`: it was CANCELLED before, nothing written;
 * - `replayed`: an earlier request with the same Idempotency-Key did it, nothing written.
 */
export type CancelResult =
  | { outcome: 'cancelled'; order: Order; messageId: string; sequence: number }
  | { outcome: 'already-cancelled' | 'replayed'; order: Order; messageId?: undefined };

export type CancelOrderOptions = Pick<PlaceOrderOptions, 'idempotencyKey' | 'idempotencyKeyTtlMs' | 'wakeup' | 'trace'>;

/**
 * Cancels a PENDING or CONFIRMED order. Malformed id: VALIDATION_FAILED; unknown: NOT_FOUND;
 * REJECTED: ORDER_NOT_CANCELLABLE (nothing was reserved, so there is nothing to undo). Every
 * outcome but `cancelled` writes nothing, not even the Idempotency-Key.
 */
export async function cancelOrder(pool: Pool, orderId: string, options: CancelOrderOptions = {}): Promise<CancelResult> {
  if (!isUuid(orderId)) throw new AppError('VALIDATION_FAILED', `"${orderId.slice(0, 64)}" is not an order id`, { id: 'an order id (uuid)' });
  const hash = cancelRequestHash(orderId);
  const ttlMs = options.idempotencyKeyTtlMs ?? DEFAULT_IDEMPOTENCY_KEY_TTL_MS;
  const notify = options.wakeup?.notifyInTransaction ?? true;
  const result = await withTransaction(pool, async (tx): Promise<CancelResult> => {
    const { rows } = await tx.query<OrderRow>(`SELECT ${ORDER_COLUMNS} FROM orders WHERE id = $1 FOR UPDATE`, [orderId]);
    if (!rows[0]) throw new AppError('NOT_FOUND', `order ${orderId} not found`);
    const current = toOrder(rows[0]);
    if (options.idempotencyKey !== undefined && (await findIdempotencyKey(tx, options.idempotencyKey, hash, ttlMs))) {
      return { outcome: 'replayed', order: current };
    }
    if (current.status === 'CANCELLED') return { outcome: 'already-cancelled', order: current };
    if (current.status === 'REJECTED') {
      throw new AppError('ORDER_NOT_CANCELLABLE', `order ${orderId} was rejected: there is nothing to cancel`);
    }
    // A concurrent request with the same key (for another order or a create) waits here, and
    // one of the two gets IDEMPOTENCY_KEY_REUSED; with the same order, the row lock above
    // already made it wait, and it found the key.
    if (options.idempotencyKey !== undefined) await takeIdempotencyKey(tx, options.idempotencyKey, hash, orderId, ttlMs);
    const updated = await tx.query<OrderRow & { event_seq: number }>(
      `UPDATE orders SET status = 'CANCELLED', cancelled_at = now(), updated_at = now(), event_seq = event_seq + 1
        WHERE id = $1
       RETURNING ${ORDER_COLUMNS}, event_seq`,
      [orderId],
    );
    const row = updated.rows[0]!;
    const order = toOrder(row);
    const messageId = randomUUID();
    const payload: OrderCancelledPayload = { orderId, productId: order.productId, quantity: order.quantity, userId: order.userId };
    await enqueueEvent(
      tx,
      { messageId, eventType: ORDER_CANCELLED, aggregateId: orderId, payload, headers: options.trace?.headers, sequence: row.event_seq },
      { notify },
    );
    return { outcome: 'cancelled', order, messageId, sequence: row.event_seq };
  });
  // Committed: now the workers may look (nothing new otherwise).
  if (result.outcome === 'cancelled') options.wakeup?.committed();
  return result;
}
