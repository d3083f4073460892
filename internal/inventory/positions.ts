// inbox_positions: per aggregate (an order), the position of the last event the consumer
// applied. An event is applied only when it is the next one (last_seq + 1; no row = 0), so
// an aggregate's events take effect in the order they were written, however they arrive:
// retries, several workers, a broker with several consumers. Kept as long as the aggregates
// are (never pruned with the inbox): a cancellation may come long after its order's creation.
import type { Queryable } from '../db/pool.ts';

export type PositionVerdict =
  /** It was the next event: the position now points at it; apply it in this transaction. */
  | 'next'
  /** An earlier event has not been applied yet: roll back and try again later. */
  | 'early'
  /** An event at or before this position was already applied (with another message id). */
  | 'stale';

export interface PositionCheck {
  verdict: PositionVerdict;
  /** The aggregate's position as this transaction saw it (0: no event applied yet). */
  lastSeq: number;
}

/**
 * Runs on the consumer's transaction client, after its inbox insert: moves the aggregate's
 * position to `sequence` when it is the next one. One statement, one round trip.
 *
 * Concurrency (READ COMMITTED). Every path that changes a position goes through a row lock or
 * a unique-index insert, so two transactions can never both take the same step:
 * - sequence 1 inserts the row (ON CONFLICT DO NOTHING). A concurrent transaction inserting
 *   the same aggregate waits for this one; if it commits, the other sees the conflict (stale).
 * - sequence n > 1 updates the row WHERE last_seq = n - 1. The UPDATE waits for any
 *   transaction holding the row and then re-checks the condition on the committed version,
 *   so seq 2 advances only once seq 1's transaction has COMMITTED its position. While seq 1's
 *   insert is uncommitted the row is invisible to seq 2's UPDATE: 0 rows, so seq 2 is early
 *   and rolls back. Seq 2 can therefore never be applied before, or alongside, seq 1.
 * When nothing moved, `lastSeq` comes from this statement's snapshot: if it says "already
 * there" the event is stale for certain (positions only grow); otherwise it is deferred, and
 * a position that moved meanwhile is judged again on the next delivery.
 */
export async function advancePosition(tx: Queryable, aggregateId: string, sequence: number): Promise<PositionCheck> {
  const { rows } = await tx.query<{ advanced: boolean; last_seq: number | null }>(
    `WITH advanced AS (
       UPDATE inbox_positions SET last_seq = $2, updated_at = now()
        WHERE aggregate_id = $1 AND last_seq = $2 - 1
       RETURNING 1
     ), started AS (
       INSERT INTO inbox_positions (aggregate_id, last_seq)
       SELECT $1, 1 WHERE $2 = 1
       ON CONFLICT (aggregate_id) DO NOTHING
       RETURNING 1
     )
     SELECT EXISTS (SELECT 1 FROM advanced) OR EXISTS (SELECT 1 FROM started) AS advanced,
            (SELECT last_seq FROM inbox_positions WHERE aggregate_id = $1) AS last_seq`,
    [aggregateId, sequence],
  );
  const row = rows[0]!;
  if (row.advanced) return { verdict: 'next', lastSeq: sequence };
  const lastSeq = row.last_seq ?? 0;
  // Sequence 1 not inserted means a committed row exists, even if this snapshot misses it.
  if (sequence === 1 || lastSeq >= sequence) return { verdict: 'stale', lastSeq: Math.max(lastSeq, 1) };
  return { verdict: 'early', lastSeq };
}

/** An aggregate's position (0 when none of its events was applied). */
export async function positionOf(db: Queryable, aggregateId: string): Promise<number> {
  const { rows } = await db.query<{ last_seq: number }>(`SELECT last_seq FROM inbox_positions WHERE aggregate_id = $1`, [aggregateId]);
  return rows[0]?.last_seq ?? 0;
}

/** Forgets every position: the demo's fresh start (with the orders and the inbox). */
export async function clearPositions(tx: Queryable): Promise<void> {
  await tx.query('TRUNCATE inbox_positions');
}
