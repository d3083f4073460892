// processed_messages and skipped_duplicates: the consumer's memory of what it has handled.
import type { Queryable } from '../db/pool.ts';

export type Outcome = 'applied' | 'rejected';

/**
 * Runs on the consumer's transaction client. Inserts the message id and reports whether it
 * was new. INSERT … ON CONFLICT DO NOTHING is the check: a concurrent transaction inserting
 * the same id makes this one wait for it and then see the conflict, so two deliveries of one
 * message can never both be "new". (SELECT-then-INSERT cannot promise that: both SELECTs
 * can run before either INSERT.)
 */
export async function recordFirstDelivery(tx: Queryable, messageId: string, handledBy: string): Promise<boolean> {
  const { rowCount } = await tx.query(
    `INSERT INTO processed_messages (message_id, outcome, handled_by)
     VALUES ($1, 'applied', $2)
     ON CONFLICT (message_id) DO NOTHING`,
    [messageId, handledBy],
  );
  return rowCount === 1;
}

export async function setOutcome(tx: Queryable, messageId: string, outcome: Outcome): Promise<void> {
  await tx.query(`UPDATE processed_messages SET outcome = $2 WHERE message_id = $1`, [messageId, outcome]);
}

export async function recordSkippedDuplicate(db: Queryable, messageId: string, handledBy: string): Promise<void> {
  await db.query(`INSERT INTO skipped_duplicates (message_id, handled_by) VALUES ($1, $2)`, [messageId, handledBy]);
}

export interface ProcessedMessage {
  messageId: string;
  outcome: Outcome;
  handledBy: string;
  processedAt: Date;
}

/** The most recently processed messages, newest first. */
export async function recentProcessed(db: Queryable, limit: number): Promise<ProcessedMessage[]> {
  const { rows } = await db.query<{ message_id: string; outcome: Outcome; handled_by: string; processed_at: Date }>(
    `SELECT message_id, outcome, handled_by, processed_at FROM processed_messages
      ORDER BY processed_at DESC, message_id LIMIT $1`,
    [limit],
  );
  return rows.map((row) => ({
    messageId: row.message_id,
    outcome: row.outcome,
    handledBy: row.handled_by,
    processedAt: row.processed_at,
  }));
}

export interface ConsumerCounts {
  processed: Record<Outcome, number>;
  duplicatesSkipped: number;
  /** Deliveries that reached the consumer, by who delivered them (first deliveries + duplicates). */
  deliveriesBy: Record<string, number>;
}

export async function countConsumed(db: Queryable): Promise<ConsumerCounts> {
  const [processed, skipped] = await Promise.all([
    db.query<{ outcome: Outcome; handled_by: string; count: number }>(
      `SELECT outcome, handled_by, count(*)::int AS count FROM processed_messages GROUP BY outcome, handled_by`,
    ),
    db.query<{ handled_by: string; count: number }>(
      `SELECT handled_by, count(*)::int AS count FROM skipped_duplicates GROUP BY handled_by`,
    ),
  ]);
  const counts: ConsumerCounts = { processed: { applied: 0, rejected: 0 }, duplicatesSkipped: 0, deliveriesBy: {} };
  for (const row of processed.rows) {
    counts.processed[row.outcome] += row.count;
    counts.deliveriesBy[row.handled_by] = (counts.deliveriesBy[row.handled_by] ?? 0) + row.count;
  }
  for (const row of skipped.rows) {
    counts.duplicatesSkipped += row.count;
    counts.deliveriesBy[row.handled_by] = (counts.deliveriesBy[row.handled_by] ?? 0) + row.count;
  }
  return counts;
}
