// idempotency_keys: lets a client retry POST /orders safely. A retry whose response was lost
// (timeout, crash after commit) gets the original order back instead of creating a second.
import { createHash } from 'node:crypto';
import type { Queryable } from '../db/pool.ts';
import { AppError } from '../errors/errors.ts';
import type { OrderInput } from './validate.ts';

/** IDEMPOTENCY_KEY_TTL's default (internal/config): a day covers any sensible client retry. */
export const DEFAULT_IDEMPOTENCY_KEY_TTL_MS = 86_400_000;

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
 * What makes two cancellations "the same": the order they cancel. The method and route are in
 * the hash, so a key first used to place an order (whose hash is of a 3-element array) never
 * matches a cancellation: reusing it answers IDEMPOTENCY_KEY_REUSED.
 */
export function cancelRequestHash(orderId: string): string {
  return createHash('sha256').update(JSON.stringify(['POST /orders/:id/cancel', orderId])).digest('hex');
}

/**
 * Looks a key up without taking it (a cancellation that may write nothing, so must not store
 * the key either): undefined when absent or expired, the order id when an earlier request with
 * the same hash stored it; IDEMPOTENCY_KEY_REUSED when the hash differs.
 */
export async function findIdempotencyKey(tx: Queryable, key: string, hash: string, ttlMs: number): Promise<string | undefined> {
  const { rows } = await tx.query<{ request_hash: string; order_id: string }>(
    `SELECT request_hash, order_id FROM idempotency_keys
      WHERE key = $1 AND created_at > now() - make_interval(secs => $2 / 1000.0)`,
    [key, ttlMs],
  );
  const earlier = rows[0];
  if (!earlier) return undefined;
  if (earlier.request_hash !== hash) throw keyReused();
  return earlier.order_id;
}

function keyReused(): AppError {
  return new AppError('IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was already used for a different request', {
    'Idempotency-Key': 'already used for a different request',
  });
}

/**
 * Runs in the order's transaction, before the order is written. Returns undefined when the
 * key is new (and now taken by `orderId`), or the order id an earlier request stored. A
 * concurrent request with the same key waits here until the first one commits or rolls back.
 *
 * A key older than `ttlMs` (database clock) counts as absent even before the janitor deleted
 * it: the same statement takes it over for this order, so two requests reusing one expired
 * key still end with one new order (the second waits for the first and then sees a live key).
 */
export async function takeIdempotencyKey(
  tx: Queryable,
  key: string,
  hash: string,
  orderId: string,
  ttlMs: number,
): Promise<string | undefined> {
  const taken = await tx.query(
    `INSERT INTO idempotency_keys AS k (key, request_hash, order_id) VALUES ($1, $2, $3)
     ON CONFLICT (key) DO UPDATE SET request_hash = excluded.request_hash, order_id = excluded.order_id, created_at = now()
      WHERE k.created_at <= now() - make_interval(secs => $4 / 1000.0)`,
    [key, hash, orderId, ttlMs],
  );
  if (taken.rowCount === 1) return undefined;
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

/**
 * Deletes up to `limit` keys older than `ttlMs` (the janitor's batch). The age is checked again
 * on the row being deleted: a key a request has just taken over is young again and stays.
 */
export async function pruneExpiredIdempotencyKeys(db: Queryable, ttlMs: number, limit: number): Promise<number> {
  const { rowCount } = await db.query(
    `DELETE FROM idempotency_keys
      WHERE key = ANY (ARRAY(
              SELECT key FROM idempotency_keys
               WHERE created_at <= now() - make_interval(secs => $1 / 1000.0)
               ORDER BY created_at LIMIT $2))
        AND created_at <= now() - make_interval(secs => $1 / 1000.0)`,
    [ttlMs, limit],
  );
  return rowCount ?? 0;
}

/** Seconds (database clock) since the oldest expired key expired; 0 when none is left. */
export async function idempotencyKeyLagSeconds(db: Queryable, ttlMs: number): Promise<number> {
  const { rows } = await db.query<{ lag: number }>(
    `SELECT coalesce(extract(epoch FROM now() - make_interval(secs => $1 / 1000.0) - min(created_at)), 0)::float8 AS lag
       FROM idempotency_keys WHERE created_at <= now() - make_interval(secs => $1 / 1000.0)`,
    [ttlMs],
  );
  return rows[0]!.lag;
}

export async function deleteAllIdempotencyKeys(tx: Queryable): Promise<void> {
  await tx.query(`DELETE FROM idempotency_keys`);
}
