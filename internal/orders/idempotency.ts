// idempotency_keys: lets a client retry POST /orders safely. A retry whose response was lost
// (timeout, crash after commit) gets the original order back instead of creating a second.
import { createHash } from 'node:crypto';
import type { Queryable } from '../db/pool.ts';
import { AppError } from '../errors/errors.ts';
import type { OrderInput } from './validate.ts';

const KEY_PATTERN = /^[\x21-\x7e]{1,200}$/;

/** Header value → key; a malformed key is a 400, never silently ignored. */
export function validateIdempotencyKey(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  if (!KEY_PATTERN.test(raw)) {
    throw new AppError('VALIDATION_FAILED', 'Idempotency-Key must be 1 to 200 visible ASCII characters', {
      'Idempotency-Key': 'visible ASCII, 1 to 200 characters',
    });
  }
  return raw;
}

/** What makes two requests "the same": the validated order, not the raw bytes. */
export function requestHash(input: OrderInput): string {
  return createHash('sha256').update(JSON.stringify([input.productId, input.quantity, input.userId ?? null])).digest('hex');
}

/**
 * Runs in the order's transaction, before the order is written. Returns undefined when the
 * key is new (and now taken by `orderId`), or the order id an earlier request stored. A
 * concurrent request with the same key waits here until the first one commits or rolls back.
 */
export async function takeIdempotencyKey(tx: Queryable, key: string, hash: string, orderId: string): Promise<string | undefined> {
  const inserted = await tx.query(
    `INSERT INTO idempotency_keys (key, request_hash, order_id) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING`,
    [key, hash, orderId],
  );
  if (inserted.rowCount === 1) return undefined;
  const { rows } = await tx.query<{ request_hash: string; order_id: string }>(
    `SELECT request_hash, order_id FROM idempotency_keys WHERE key = $1`,
    [key],
  );
  const earlier = rows[0];
  // The first request's transaction rolled back between our INSERT and this SELECT: retryable.
  if (!earlier) throw new AppError('CONFLICT', 'a request with this Idempotency-Key was in flight; retry');
  if (earlier.request_hash !== hash) {
    throw new AppError('IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was already used for a different order', {
      'Idempotency-Key': 'already used with a different body',
    });
  }
  return earlier.order_id;
}

export async function deleteAllIdempotencyKeys(tx: Queryable): Promise<void> {
  await tx.query(`DELETE FROM idempotency_keys`);
}
