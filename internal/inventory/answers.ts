// stock_answers: what the inventory did with each order's stock, one row per order, kept as
// long as orders are (both transports). A cancellation reads it to give back exactly what the
// order's reservation took, once; a second OrderCreated for an answered order is refused.
import type { Queryable } from '../db/pool.ts';

export interface StockAnswer {
  orderId: string;
  outcome: 'reserved' | 'rejected';
  /** The OrderCreated message that was answered. */
  messageId: string;
  productId: string;
  quantity: number;
}

/** One answer per order, ever: false when the order already has one. */
export async function recordAnswer(tx: Queryable, answer: StockAnswer): Promise<boolean> {
  const { rowCount } = await tx.query(
    `INSERT INTO stock_answers (order_id, outcome, message_id, product_id, quantity) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (order_id) DO NOTHING`,
    [answer.orderId, answer.outcome, answer.messageId, answer.productId, answer.quantity],
  );
  return rowCount === 1;
}

/**
 * Takes the order's quantity off its product's stock if enough is left (the guard and the
 * update are one statement, as takeStock) and, only if it did, records the 'reserved' answer:
 * one round trip for both. `stockLeft` undefined: not enough stock, nothing written.
 * `answered` false: the order already had an answer; the caller must roll back.
 */
export async function reserveAnswered(
  tx: Queryable, answer: Omit<StockAnswer, 'outcome'>,
): Promise<{ stockLeft: number | undefined; answered: boolean }> {
  const { rows } = await tx.query<{ stock_left: number | null; answered: boolean }>({
    name: 'stock-reserve-answered', // prepared once per connection: it runs once per order
    text: `WITH taken AS (
       UPDATE products SET stock = stock - $4, updated_at = now()
        WHERE id = $3 AND stock >= $4
       RETURNING stock
     ), answered AS (
       INSERT INTO stock_answers (order_id, outcome, message_id, product_id, quantity)
       SELECT $1, 'reserved', $2, $3, $4 FROM taken
       ON CONFLICT (order_id) DO NOTHING
       RETURNING 1
     )
     SELECT (SELECT stock FROM taken) AS stock_left, EXISTS (SELECT 1 FROM answered) AS answered`,
    values: [answer.orderId, answer.messageId, answer.productId, answer.quantity],
  });
  const row = rows[0]!;
  return { stockLeft: row.stock_left ?? undefined, answered: row.answered };
}

/** The batch form of recordAnswer: how many of `answers` were recorded (fewer: some order was already answered). */
export async function recordAnswers(tx: Queryable, answers: readonly StockAnswer[]): Promise<number> {
  if (answers.length === 0) return 0;
  const { rowCount } = await tx.query(
    `INSERT INTO stock_answers (order_id, outcome, message_id, product_id, quantity)
     SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::int[]) ORDER BY 1
     ON CONFLICT (order_id) DO NOTHING`,
    [answers.map((a) => a.orderId), answers.map((a) => a.outcome), answers.map((a) => a.messageId), answers.map((a) => a.productId), answers.map((a) => a.quantity)],
  );
  return rowCount ?? 0;
}

export interface Released {
  orderId: string;
  /** Null for answers recorded before 0011 (the caller falls back to the event's payload). */
  productId: string | null;
  quantity: number | null;
}

/**
 * Marks the reservations of `orderIds` released, each only if it was 'reserved' and not
 * released yet, and returns those (the stock to give back). A rejected order, one never
 * answered, or one already released is absent: nothing to give back. The row lock of the
 * UPDATE makes two cancellations of one order release it once.
 */
export async function releaseAnswers(tx: Queryable, orderIds: readonly string[]): Promise<Released[]> {
  if (orderIds.length === 0) return [];
  const { rows } = await tx.query<{ order_id: string; product_id: string | null; quantity: number | null }>(
    `UPDATE stock_answers SET released_at = now()
      WHERE order_id = ANY($1::uuid[]) AND outcome = 'reserved' AND released_at IS NULL
     RETURNING order_id, product_id, quantity`,
    [[...orderIds].sort()],
  );
  return rows.map((row) => ({ orderId: row.order_id, productId: row.product_id, quantity: row.quantity }));
}

/** The demo's and chaos run's fresh start. */
export async function clearStockAnswers(tx: Queryable): Promise<void> {
  await tx.query('TRUNCATE stock_answers');
}
