// inbox_positions: per aggregate (an order), the position of the last event the consumer
// applied. An event is applied only when it is the next one (last_seq + 1; no row = 0), so
// an aggregate's events take effect in the order they were written, however they arrive:
// retries, several workers, a broker with several consumers. Kept as long as the aggregates
// are (never pruned with the inbox): a cancellation may come long after its order's creation.
import type { Queryable } from '../db/pool.ts';
import { AppError } from '../errors/errors.ts';
import type { MessageCopy, Outcome } from './processed.ts';

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
 * The position rule for one event: moves the aggregate's position to `sequence` when it is the
 * next one (advancePositions with one item; recordInOrder takes the same steps together with
 * the inbox row).
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
  return (await advancePositions(tx, [{ aggregateId, sequence }]))[0]!;
}

/** The judgement of one event, from what the position statement saw. */
function verdictOf(sequence: number, advanced: boolean, seen: number | null): PositionCheck {
  if (advanced) return { verdict: 'next', lastSeq: sequence };
  const lastSeq = seen ?? 0;
  // Sequence 1 not inserted means a committed row exists, even if this snapshot misses it.
  if (sequence === 1 || lastSeq >= sequence) return { verdict: 'stale', lastSeq: Math.max(lastSeq, 1) };
  return { verdict: 'early', lastSeq };
}

/**
 * recordInOrder's statement (exported for the plan test in positions.test.ts). It reads
 * inbox_positions only where it must: a creation (position 1) has no row to move, and last_seq
 * is needed only when nothing moved. With a plan the connection kept from while the table was
 * empty (until autovacuum analyses it again), each needless probe scanned the whole table, and a
 * drain of 10,000 messages ran at about half its speed before positions existed.
 */
export const RECORD_IN_ORDER_SQL = `WITH advanced AS (
   UPDATE inbox_positions SET last_seq = $7, updated_at = now()
    WHERE $7 > 1 AND aggregate_id = $6 AND last_seq = $7 - 1
   RETURNING 1
 ), started AS (
   INSERT INTO inbox_positions (aggregate_id, last_seq)
   SELECT $6, 1 WHERE $7 = 1
   ON CONFLICT (aggregate_id) DO NOTHING
   RETURNING 1
 ), moved AS (
   SELECT 1 FROM advanced UNION ALL SELECT 1 FROM started
 ), inbox AS (
   INSERT INTO processed_messages (message_id, outcome, handled_by, event_type, payload, headers, aggregate_id, aggregate_seq)
   SELECT $1, $8, $2, $3, $4, $5, $6, $7
    WHERE EXISTS (SELECT 1 FROM moved)
   ON CONFLICT (message_id) DO NOTHING
   RETURNING 1
 )
 SELECT EXISTS (SELECT 1 FROM inbox) AS recorded,
        EXISTS (SELECT 1 FROM moved) AS advanced,
        CASE WHEN EXISTS (SELECT 1 FROM moved) THEN NULL
             ELSE (SELECT last_seq FROM inbox_positions WHERE aggregate_id = $6) END AS last_seq`;

/** advancePositions' statement (exported for the plan test): reads inbox_positions only where it must, as above. */
export const ADVANCE_POSITIONS_SQL = `WITH input AS (
   SELECT * FROM unnest($1::uuid[], $2::int[]) AS t(aggregate_id, seq)
 ), advanced AS (
   UPDATE inbox_positions p SET last_seq = i.seq, updated_at = now()
     FROM input i
    WHERE i.seq > 1 AND p.aggregate_id = i.aggregate_id AND p.last_seq = i.seq - 1
   RETURNING p.aggregate_id
 ), started AS (
   INSERT INTO inbox_positions (aggregate_id, last_seq)
   SELECT aggregate_id, 1 FROM input WHERE seq = 1 ORDER BY aggregate_id
   ON CONFLICT (aggregate_id) DO NOTHING
   RETURNING aggregate_id
 ), moved AS (
   SELECT aggregate_id FROM advanced UNION ALL SELECT aggregate_id FROM started
 )
 SELECT i.aggregate_id, m.aggregate_id IS NOT NULL AS advanced,
        CASE WHEN m.aggregate_id IS NULL
             THEN (SELECT last_seq FROM inbox_positions p WHERE p.aggregate_id = i.aggregate_id) END AS last_seq
   FROM input i LEFT JOIN moved m ON m.aggregate_id = i.aggregate_id`;

export type InboxRecord = { isNew: false } | ({ isNew: true } & PositionCheck);

/**
 * The per-message consumer's first step in ONE statement (one round trip, as the inbox insert
 * alone was before positions existed). The position decides, with the locking rules of
 * advancePosition: only the next event of its aggregate is recorded in the inbox and moves the
 * position; an early one writes nothing (isNew with verdict 'early': defer it); one at a
 * position already applied is a copy, whatever its message id (the same message again, or a
 * copy that outlived its pruned inbox record: each position has exactly one message), so it is
 * reported as not new and skipped like any duplicate, never dead-lettered (a dead letter would
 * park the aggregate's later events behind an event that was in fact applied).
 */
export async function recordInOrder(
  tx: Queryable, message: MessageCopy, handledBy: string, aggregateId: string, sequence: number, outcome: Outcome,
): Promise<InboxRecord> {
  // Named (prepared once per connection): it runs once per message, and planning its four parts
  // again each time cost more than running them.
  const { rows } = await tx.query<{ recorded: boolean; advanced: boolean; last_seq: number | null }>({
    name: 'inbox-record-in-order',
    text: RECORD_IN_ORDER_SQL,
    values: [
      message.messageId, handledBy, message.eventType, JSON.stringify(message.payload), JSON.stringify(message.headers ?? {}),
      aggregateId, sequence, outcome,
    ],
  });
  const row = rows[0]!;
  const check = verdictOf(sequence, row.advanced, row.last_seq);
  if (check.verdict === 'stale') return { isNew: false };
  // The position moved, but this message id is already in the inbox: it was applied at another
  // position, which cannot happen with one message per position. Refuse (rolls back the move).
  if (check.verdict === 'next' && !row.recorded) {
    throw new AppError('POISON_MESSAGE', `message ${message.messageId} is already in the inbox at another position of order ${aggregateId}`);
  }
  return { isNew: true, ...check };
}

/**
 * advancePosition for many aggregates in one statement (the batch consumer): at most one event
 * per aggregate. Rows are inserted in aggregate id order; the UPDATE's row locks follow the
 * join's order, but two batches never hold events of the same aggregate at once (the claim
 * takes one event per aggregate at a time), and a deadlock would only fail the batch, which
 * then goes one by one. Returns one judgement per item, in order.
 */
export async function advancePositions(tx: Queryable, items: ReadonlyArray<{ aggregateId: string; sequence: number }>): Promise<PositionCheck[]> {
  if (items.length === 0) return [];
  const { rows } = await tx.query<{ aggregate_id: string; advanced: boolean; last_seq: number | null }>(
    ADVANCE_POSITIONS_SQL,
    [items.map((i) => i.aggregateId), items.map((i) => i.sequence)],
  );
  const byAggregate = new Map(rows.map((row) => [row.aggregate_id, row]));
  return items.map((item) => {
    const row = byAggregate.get(item.aggregateId)!;
    return verdictOf(item.sequence, row.advanced, row.last_seq);
  });
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
