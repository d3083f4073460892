// The orders use case. "Place order" is ONE transaction that writes the order row and its
// OrderCreated outbox row through the same client: both commit, or neither exists.
import { randomUUID } from 'node:crypto';
import type { Pool, Queryable } from '../db/pool.ts';
import { withTransaction } from '../db/transaction.ts';
import { AppError } from '../errors/errors.ts';
import { enqueueEvent, enqueueEvents, ORDER_CREATED, type NewEvent } from '../outbox/outbox.ts';
import type { CrashHook } from '../faults/faults.ts';
import type { Wakeup } from '../outbox/wakeup.ts';
import { DEFAULT_IDEMPOTENCY_KEY_TTL_MS, requestHash, takeIdempotencyKey } from './idempotency.ts';
import { isUuid, type OrderInput } from './validate.ts';

export type OrderStatus = 'PENDING' | 'CONFIRMED' | 'REJECTED' | 'CANCELLED';

export interface Order {
  id: string;
  productId: string;
  quantity: number;
  userId: string | null;
  status: OrderStatus;
  rejectReason: string | null;
  /** The trace of the request that placed it (W3C, 32 hex); null when placed without one. */
  traceId: string | null;
  createdAt: Date;
  updatedAt: Date;
  /** When POST /orders/:id/cancel cancelled it; null otherwise. */
  cancelledAt: Date | null;
}

/** The OrderCreated event's payload: everything the consumer needs, nothing it must look up. */
export interface OrderCreatedPayload {
  orderId: string;
  productId: string;
  quantity: number;
  userId: string | null;
}

export interface OrderRow {
  id: string;
  product_id: string;
  quantity: number;
  user_id: string | null;
  status: OrderStatus;
  reject_reason: string | null;
  trace_id: string | null;
  created_at: Date;
  updated_at: Date;
  cancelled_at: Date | null;
}

export const ORDER_COLUMNS = 'id, product_id, quantity, user_id, status, reject_reason, trace_id, created_at, updated_at, cancelled_at';

/** A new order with its event's message id, or (replayed) the order an earlier request with the same Idempotency-Key created. */
export type PlacedOrder = NewOrder | { order: Order; replayed: true };
export interface NewOrder {
  order: Order;
  replayed: false;
  messageId: string;
}

export interface PlaceOrderOptions {
  idempotencyKey?: string;
  /** How long an Idempotency-Key holds (IDEMPOTENCY_KEY_TTL); after it, the key may be used again. Default 24 h. */
  idempotencyKeyTtlMs?: number;
  /** Fault injection: the crash point between the two inserts. */
  crash?: CrashHook;
  /**
   * Who is told of the new event, and how (WAKEUP). Without one, the event's INSERT announces it
   * inside the transaction, so a caller with no wiring (a tool, a test) still wakes the workers.
   */
  wakeup?: Pick<Wakeup, 'notifyInTransaction' | 'committed'>;
  /**
   * The trace this order belongs to: its id is kept on the order (GET /orders/:id shows it) and
   * `headers` (traceparent, tracestate) go into the event's row, in the same transaction.
   */
  trace?: { traceId: string | undefined; headers: Record<string, string> };
}

/** Writes the order and its event atomically; an unknown product is UNKNOWN_PRODUCT and writes nothing. */
export async function placeOrder(pool: Pool, input: OrderInput, options?: PlaceOrderOptions & { idempotencyKey?: undefined }): Promise<NewOrder>;
export async function placeOrder(pool: Pool, input: OrderInput, options: PlaceOrderOptions): Promise<PlacedOrder>;
export async function placeOrder(pool: Pool, input: OrderInput, options: PlaceOrderOptions = {}): Promise<PlacedOrder> {
  const orderId = randomUUID();
  const messageId = randomUUID();
  const notify = options.wakeup?.notifyInTransaction ?? true;
  let placed: PlacedOrder;
  try {
    placed = await withTransaction(pool, async (tx): Promise<PlacedOrder> => {
      if (options.idempotencyKey !== undefined) {
        const earlier = await takeIdempotencyKey(
          tx, options.idempotencyKey, requestHash(input), orderId, options.idempotencyKeyTtlMs ?? DEFAULT_IDEMPOTENCY_KEY_TTL_MS,
        );
        if (earlier) return { order: await getOrder(tx, earlier), replayed: true };
      }
      const { rows } = await tx.query<OrderRow>(
        `INSERT INTO orders (id, product_id, quantity, user_id, trace_id)
         VALUES ($1, $2, $3, $4, $5)
         RETURNING ${ORDER_COLUMNS}`,
        [orderId, input.productId, input.quantity, input.userId ?? null, options.trace?.traceId ?? null],
      );
      options.crash?.('mid-order');
      await enqueueEvent(tx, { ...orderCreated(orderId, messageId, input), headers: options.trace?.headers }, { notify });
      return { order: toOrder(rows[0]!), messageId, replayed: false };
    });
  } catch (error) {
    // 23503 foreign_key_violation on orders.product_id: the product does not exist.
    if ((error as { code?: string }).code === '23503') {
      throw new AppError('UNKNOWN_PRODUCT', `unknown product "${input.productId}"`, { productId: 'no such product' });
    }
    throw error;
  }
  // Committed: now the workers may look (a replay wrote nothing new).
  if (!placed.replayed) options.wakeup?.committed();
  return placed;
}

export async function getOrder(db: Queryable, id: string): Promise<Order> {
  if (!isUuid(id)) throw new AppError('NOT_FOUND', `order ${id} not found`);
  const { rows } = await db.query<OrderRow>(`SELECT ${ORDER_COLUMNS} FROM orders WHERE id = $1`, [id]);
  if (!rows[0]) throw new AppError('NOT_FOUND', `order ${id} not found`);
  return toOrder(rows[0]);
}

/** The orders among `ids` that exist (unknown ids are simply absent). */
export async function getOrders(db: Queryable, ids: readonly string[]): Promise<Order[]> {
  const { rows } = await db.query<OrderRow>(`SELECT ${ORDER_COLUMNS} FROM orders WHERE id = ANY($1::uuid[])`, [ids]);
  return rows.map(toOrder);
}

/**
 * Runs on the consumer's transaction client: moves a PENDING order to its final status.
 * Returns false when no PENDING order with that id exists.
 */
export async function settleOrder(
  tx: Queryable,
  orderId: string,
  status: 'CONFIRMED' | 'REJECTED',
  reason: string | null = null,
): Promise<boolean> {
  const { rowCount } = await tx.query({
    name: 'orders-settle', // prepared once per connection: it runs once per order
    text: `UPDATE orders SET status = $2, reject_reason = $3, updated_at = now()
      WHERE id = $1 AND status = 'PENDING'`,
    values: [orderId, status, reason],
  });
  return rowCount === 1;
}

export async function countOrdersByStatus(db: Queryable): Promise<Record<OrderStatus, number>> {
  const { rows } = await db.query<{ status: OrderStatus; count: number }>(
    `SELECT status, count(*)::int AS count FROM orders GROUP BY status`,
  );
  const counts: Record<OrderStatus, number> = { PENDING: 0, CONFIRMED: 0, REJECTED: 0, CANCELLED: 0 };
  for (const row of rows) counts[row.status] = row.count;
  return counts;
}

export interface PendingOrders {
  /** PENDING orders, counted exactly up to `limit`; `limit` itself means "at least". */
  count: number;
  /** Whether there were more than `limit` (then `count` is a lower bound). */
  capped: boolean;
  /** PENDING for longer than the threshold (same cap). */
  olderThanThreshold: number;
  /** Seconds since the oldest PENDING order was placed, on the database clock; 0 when none. */
  oldestAgeSeconds: number;
}

/**
 * PENDING orders through orders_pending_idx: work bounded by `limit`, never by the history
 * of settled orders. Used by GET /stats on every (cached) read.
 */
export async function countPendingOrders(db: Queryable, thresholdMs: number, limit: number): Promise<PendingOrders> {
  const { rows } = await db.query<{ n: number; old: number; age: number }>(
    `SELECT (SELECT count(*)::int FROM (SELECT 1 FROM orders WHERE status = 'PENDING' LIMIT $2 + 1) p) AS n,
            (SELECT count(*)::int FROM (SELECT 1 FROM orders
                WHERE status = 'PENDING' AND created_at < now() - make_interval(secs => $1 / 1000.0) LIMIT $2 + 1) o) AS old,
            coalesce((SELECT extract(epoch FROM now() - created_at)::float8 FROM orders
                WHERE status = 'PENDING' ORDER BY created_at LIMIT 1), 0) AS age`,
    [thresholdMs, limit],
  );
  const row = rows[0]!;
  return {
    count: Math.min(row.n, limit),
    capped: row.n > limit,
    olderThanThreshold: Math.min(row.old, limit),
    oldestAgeSeconds: Math.max(0, row.age),
  };
}

/**
 * CANCELLED orders through orders_status_idx, counted exactly up to `limit` (then `capped`):
 * bounded work on every /stats read, like the PENDING count.
 */
export async function countCancelledOrders(db: Queryable, limit: number): Promise<{ count: number; capped: boolean }> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM (SELECT 1 FROM orders WHERE status = 'CANCELLED' LIMIT $1 + 1) c`,
    [limit],
  );
  return { count: Math.min(rows[0]!.n, limit), capped: rows[0]!.n > limit };
}

/** Sum of CONFIRMED quantities per product: what stock must have gone down by. */
export async function confirmedQuantityByProduct(db: Queryable): Promise<Record<string, number>> {
  const { rows } = await db.query<{ product_id: string; quantity: number }>(
    `SELECT product_id, sum(quantity)::int AS quantity FROM orders WHERE status = 'CONFIRMED' GROUP BY product_id`,
  );
  return Object.fromEntries(rows.map((row) => [row.product_id, row.quantity]));
}

/** Removes every order: the demo's fresh start. */
export async function deleteAllOrders(tx: Queryable): Promise<number> {
  const { rowCount } = await tx.query(`DELETE FROM orders`);
  return rowCount ?? 0;
}

function orderCreated(orderId: string, messageId: string, input: OrderInput): NewEvent {
  const payload: OrderCreatedPayload = {
    orderId,
    productId: input.productId,
    quantity: input.quantity,
    userId: input.userId ?? null,
  };
  // An order's first event: position 1 (orders.event_seq starts there).
  return { messageId, eventType: ORDER_CREATED, aggregateId: orderId, payload, sequence: 1 };
}

export function toOrder(row: OrderRow): Order {
  return {
    id: row.id,
    productId: row.product_id,
    quantity: row.quantity,
    userId: row.user_id,
    status: row.status,
    rejectReason: row.reject_reason,
    traceId: row.trace_id,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    cancelledAt: row.cancelled_at,
  };
}

export interface Settlement {
  orderId: string;
  status: 'CONFIRMED' | 'REJECTED';
  reason: string | null;
}

/**
 * The batch form of settleOrder, on the consumer's transaction client: one UPDATE for every
 * order. Returns how many PENDING orders it settled (fewer than asked means some were not PENDING).
 */
export async function settleOrders(tx: Queryable, settlements: readonly Settlement[]): Promise<number> {
  if (settlements.length === 0) return 0;
  const { rowCount } = await tx.query(
    `UPDATE orders o SET status = s.status, reject_reason = s.reason, updated_at = now()
       FROM unnest($1::uuid[], $2::text[], $3::text[]) AS s(id, status, reason)
      WHERE o.id = s.id AND o.status = 'PENDING'`,
    [settlements.map((s) => s.orderId), settlements.map((s) => s.status), settlements.map((s) => s.reason)],
  );
  return rowCount ?? 0;
}

/**
 * Many orders and their events in one transaction of two statements (the benchmark and the
 * scale-out test load thousands at once; the API places them one by one with placeOrder).
 */
export async function placeOrdersInBulk(pool: Pool, inputs: readonly OrderInput[]): Promise<NewOrder[]> {
  const placed = inputs.map((input) => ({ input, orderId: randomUUID(), messageId: randomUUID() }));
  return withTransaction(pool, async (tx) => {
    const { rows } = await tx.query<OrderRow>(
      `INSERT INTO orders (id, product_id, quantity, user_id)
       SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[])
       RETURNING ${ORDER_COLUMNS}`,
      [
        placed.map((p) => p.orderId),
        placed.map((p) => p.input.productId),
        placed.map((p) => p.input.quantity),
        placed.map((p) => p.input.userId ?? null),
      ],
    );
    await enqueueEvents(
      tx,
      placed.map(({ input, orderId, messageId }) => orderCreated(orderId, messageId, input)),
    );
    const byId = new Map(rows.map((row) => [row.id, toOrder(row)]));
    return placed.map((p) => ({ order: byId.get(p.orderId)!, messageId: p.messageId, replayed: false as const }));
  });
}
