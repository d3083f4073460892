// processed_messages and skipped_duplicates: the consumer's memory of what it has handled.
import type { Queryable } from '../db/pool.ts';
import { ORDER_CREATED } from '../outbox/outbox.ts';

/** applied: an order's stock reserved; rejected: refused; cancelled: an OrderCancelled applied (not a confirmation). */
export type Outcome = 'applied' | 'rejected' | 'cancelled';

/** The message as it was delivered, kept so it can be replayed. */
export interface MessageCopy {
  messageId: string;
  eventType: string;
  payload: unknown;
  /** The trace context it arrived with: a replay puts it back, so the skip shows in the original trace. */
  headers?: Record<string, string>;
  /** The aggregate and the event's position in it, when the consumer recorded them: a replay puts them back. */
  aggregateId?: string;
  sequence?: number;
}

/** Which aggregate a message belongs to and its position there (kept with the replay copy). */
export interface MessagePosition {
  aggregateId: string;
  sequence: number;
}

/**
 * Runs on the consumer's transaction client. Inserts the message id and reports whether it
 * was new. INSERT … ON CONFLICT DO NOTHING is the check: a concurrent transaction inserting
 * the same id makes this one wait for it and then see the conflict, so two deliveries of one
 * message can never both be "new". (SELECT-then-INSERT cannot promise that: both SELECTs
 * can run before either INSERT.)
 */
export async function recordFirstDelivery(
  tx: Queryable, message: MessageCopy, handledBy: string, position?: MessagePosition, outcome: Outcome = 'applied',
): Promise<boolean> {
  const { rowCount } = await tx.query(
    `INSERT INTO processed_messages (message_id, outcome, handled_by, event_type, payload, headers, aggregate_id, aggregate_seq)
     VALUES ($1, $8, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (message_id) DO NOTHING`,
    [
      message.messageId, handledBy, message.eventType, JSON.stringify(message.payload), JSON.stringify(message.headers ?? {}),
      position?.aggregateId ?? null, position?.sequence ?? null, outcome,
    ],
  );
  return rowCount === 1;
}

export async function setOutcome(tx: Queryable, messageId: string, outcome: Outcome): Promise<void> {
  await tx.query(`UPDATE processed_messages SET outcome = $2 WHERE message_id = $1`, [messageId, outcome]);
}

export async function recordSkippedDuplicate(db: Queryable, messageId: string, handledBy: string): Promise<void> {
  await db.query(`INSERT INTO skipped_duplicates (message_id, handled_by) VALUES ($1, $2)`, [messageId, handledBy]);
}

/**
 * `count` processed messages handled long ago by `handledBy`, in one statement (the triggers
 * count them in consumer_counts): a long history for the benchmark and the readers' test.
 */
export async function insertHistory(db: Queryable, count: number, handledBy: string): Promise<void> {
  await db.query(
    `INSERT INTO processed_messages (message_id, outcome, handled_by, processed_at)
     SELECT gen_random_uuid(), 'applied', $2, now() - interval '1 day' FROM generate_series(1, $1)`,
    [count, handledBy],
  );
}

export interface ProcessedMessage {
  messageId: string;
  outcome: Outcome;
  handledBy: string;
  processedAt: Date;
  /** Undefined for messages processed before copies were kept. */
  copy: MessageCopy | undefined;
}

interface ProcessedRow {
  message_id: string;
  outcome: Outcome;
  handled_by: string;
  processed_at: Date;
  event_type: string | null;
  payload: unknown;
  headers: Record<string, string> | null;
  aggregate_id: string | null;
  aggregate_seq: number | null;
}

const PROCESSED_COLUMNS = 'message_id, outcome, handled_by, processed_at, event_type, payload, headers, aggregate_id, aggregate_seq';

/** The most recently processed messages that can be replayed (a copy was kept), newest first. */
export async function recentProcessed(db: Queryable, limit: number): Promise<ProcessedMessage[]> {
  const { rows } = await db.query<ProcessedRow>(
    `SELECT ${PROCESSED_COLUMNS} FROM processed_messages
      WHERE event_type IS NOT NULL
      ORDER BY processed_at DESC, message_id LIMIT $1`,
    [limit],
  );
  return rows.map(toProcessed);
}

/** The processed messages among `messageIds` (unknown ids are absent). */
export async function findProcessed(db: Queryable, messageIds: readonly string[]): Promise<ProcessedMessage[]> {
  const { rows } = await db.query<ProcessedRow>(
    `SELECT ${PROCESSED_COLUMNS} FROM processed_messages WHERE message_id = ANY($1::uuid[])`,
    [messageIds],
  );
  return rows.map(toProcessed);
}

/** Who skipped which of `messageIds` after skipped_duplicates row `afterId`. */
export async function skipsSince(
  db: Queryable,
  afterId: string,
  messageIds: readonly string[],
): Promise<Array<{ messageId: string; handledBy: string }>> {
  const { rows } = await db.query<{ message_id: string; handled_by: string }>(
    `SELECT message_id, handled_by FROM skipped_duplicates
      WHERE id > $1 AND message_id = ANY($2::uuid[]) ORDER BY id`,
    [afterId, messageIds],
  );
  return rows.map((row) => ({ messageId: row.message_id, handledBy: row.handled_by }));
}

/** The newest skipped_duplicates id ("0" when none): a watermark for skipsSince. */
export async function lastSkipId(db: Queryable): Promise<string> {
  const { rows } = await db.query<{ id: string }>(`SELECT coalesce(max(id), 0)::text AS id FROM skipped_duplicates`);
  return rows[0]!.id;
}

/**
 * Orders whose OrderCreated was applied more than once: must always be 0. It can only see
 * messages that still have their replay copy (the payload names the order); rows whose copy
 * the janitor dropped are left out rather than counted as one big NULL order.
 */
export async function countOrdersAppliedTwice(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM (
       SELECT payload->>'orderId' FROM processed_messages WHERE outcome = 'applied' AND event_type = $1 AND payload ? 'orderId'
        GROUP BY payload->>'orderId' HAVING count(*) > 1) twice`,
    // Only the creation: an order's cancellation is its second applied message, not a second creation.
    [ORDER_CREATED],
  );
  return rows[0]!.n;
}

/** Forgets every processed message and skipped duplicate: the demo's fresh start. */
export async function forgetAllMessages(tx: Queryable): Promise<void> {
  await tx.query(`DELETE FROM skipped_duplicates`);
  await tx.query(`DELETE FROM processed_messages`);
  await tx.query(`DELETE FROM consumer_counts`);
}

function toProcessed(row: ProcessedRow): ProcessedMessage {
  return {
    messageId: row.message_id,
    outcome: row.outcome,
    handledBy: row.handled_by,
    processedAt: row.processed_at,
    copy:
      row.event_type === null
        ? undefined
        : {
            messageId: row.message_id, eventType: row.event_type, payload: row.payload, headers: row.headers ?? {},
            ...(row.aggregate_id === null ? {} : { aggregateId: row.aggregate_id }),
            ...(row.aggregate_seq === null ? {} : { sequence: row.aggregate_seq }),
          },
  };
}

export interface ConsumerCounts {
  processed: Record<Outcome, number>;
  duplicatesSkipped: number;
  /** Deliveries that reached the consumer, by who delivered them (first deliveries + duplicates). */
  deliveriesBy: Record<string, number>;
}

/**
 * The consumer's running totals (consumer_counts, kept by triggers in each writer's own
 * transaction): one small row per deliverer and outcome, however long the history. Exact.
 */
export async function countConsumed(db: Queryable): Promise<ConsumerCounts> {
  const { rows } = await db.query<{ handled_by: string; outcome: Outcome | 'duplicate'; n: string }>(
    `SELECT handled_by, outcome, n FROM consumer_counts WHERE n <> 0`,
  );
  const counts: ConsumerCounts = { processed: { applied: 0, rejected: 0, cancelled: 0 }, duplicatesSkipped: 0, deliveriesBy: {} };
  for (const row of rows) {
    const n = Number(row.n);
    if (row.outcome === 'duplicate') counts.duplicatesSkipped += n;
    else counts.processed[row.outcome] += n;
    counts.deliveriesBy[row.handled_by] = (counts.deliveriesBy[row.handled_by] ?? 0) + n;
  }
  return counts;
}

/**
 * The batch form of recordFirstDelivery, on the consumer's transaction client: one INSERT …
 * ON CONFLICT DO NOTHING for every message, returning the ids that were new. The same
 * guarantee holds: of two concurrent transactions inserting one id, only one sees it as new.
 */
export async function recordFirstDeliveries(
  tx: Queryable,
  messages: readonly MessageCopy[],
  handledBy: string,
  positions?: readonly MessagePosition[],
): Promise<Set<string>> {
  const { rows } = await tx.query<{ message_id: string }>(
    `INSERT INTO processed_messages (message_id, outcome, handled_by, event_type, payload, headers, aggregate_id, aggregate_seq)
     SELECT id, 'applied', $2, type, payload, headers, aggregate_id, aggregate_seq
       FROM unnest($1::uuid[], $3::text[], $4::jsonb[], $5::jsonb[], $6::uuid[], $7::int[]) AS m(id, type, payload, headers, aggregate_id, aggregate_seq)
      -- Always in id order: two batches sharing ids then wait for each other instead of deadlocking.
      ORDER BY id
     ON CONFLICT (message_id) DO NOTHING
     RETURNING message_id`,
    [
      messages.map((m) => m.messageId),
      handledBy,
      messages.map((m) => m.eventType),
      messages.map((m) => JSON.stringify(m.payload)),
      messages.map((m) => JSON.stringify(m.headers ?? {})),
      messages.map((_, i) => positions?.[i]?.aggregateId ?? null),
      messages.map((_, i) => positions?.[i]?.sequence ?? null),
    ],
  );
  return new Set(rows.map((row) => row.message_id));
}

export async function setOutcomes(tx: Queryable, messageIds: readonly string[], outcome: Outcome): Promise<void> {
  if (messageIds.length === 0) return;
  await tx.query(`UPDATE processed_messages SET outcome = $2 WHERE message_id = ANY($1::uuid[])`, [messageIds, outcome]);
}

export async function recordSkippedDuplicates(db: Queryable, messageIds: readonly string[], handledBy: string): Promise<void> {
  if (messageIds.length === 0) return;
  await db.query(
    `INSERT INTO skipped_duplicates (message_id, handled_by) SELECT id, $2 FROM unnest($1::uuid[]) AS id`,
    [messageIds, handledBy],
  );
}

// Retention (run by the janitor, in small batches). Ages are compared with now(), the
// database clock, never this process's clock. Each DELETE picks at most `limit` ids through
// an index in a sub-select, then re-checks the age on the row it deletes, so a row changed
// meanwhile is judged on its new version.

/**
 * Deletes up to `limit` processed_messages older than `retentionMs` whose message is neither
 * in the outbox nor in dead_letters: while a message can still be delivered, its record is
 * what makes the delivery a recognised duplicate. Returns how many rows were deleted.
 */
export async function pruneProcessedMessages(db: Queryable, retentionMs: number, limit: number): Promise<number> {
  const { rowCount } = await db.query(
    `DELETE FROM processed_messages
      WHERE message_id = ANY (ARRAY(
              SELECT p.message_id FROM processed_messages p
               WHERE p.processed_at < now() - make_interval(secs => $1 / 1000.0)
                 AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.message_id = p.message_id)
                 AND NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.message_id = p.message_id)
               ORDER BY p.processed_at LIMIT $2))
        AND processed_at < now() - make_interval(secs => $1 / 1000.0)`,
    [retentionMs, limit],
  );
  return rowCount ?? 0;
}

/** Drops the replay copy (type, payload) of up to `limit` messages processed more than `retentionMs` ago; the rows stay. */
export async function dropReplayCopies(db: Queryable, retentionMs: number, limit: number): Promise<number> {
  const { rowCount } = await db.query(
    `UPDATE processed_messages SET event_type = NULL, payload = NULL, headers = '{}'
      WHERE message_id = ANY (ARRAY(
              SELECT message_id FROM processed_messages
               WHERE event_type IS NOT NULL AND processed_at < now() - make_interval(secs => $1 / 1000.0)
               ORDER BY processed_at LIMIT $2))
        AND event_type IS NOT NULL`,
    [retentionMs, limit],
  );
  return rowCount ?? 0;
}

/** Deletes up to `limit` skipped_duplicates rows older than `retentionMs`. */
export async function pruneSkippedDuplicates(db: Queryable, retentionMs: number, limit: number): Promise<number> {
  const { rowCount } = await db.query(
    `DELETE FROM skipped_duplicates
      WHERE id = ANY (ARRAY(
              SELECT id FROM skipped_duplicates
               WHERE skipped_at < now() - make_interval(secs => $1 / 1000.0)
               ORDER BY skipped_at LIMIT $2))`,
    [retentionMs, limit],
  );
  return rowCount ?? 0;
}

/**
 * How long (seconds, database clock) the oldest row the janitor may remove has been waiting
 * for it, across processed_messages, their replay copies and skipped_duplicates; 0 when none.
 * A janitor that keeps up keeps this below its interval.
 */
export async function inboxRetentionLagSeconds(db: Queryable, retentionMs: number, copyRetentionMs: number): Promise<number> {
  const { rows } = await db.query<{ lag: number }>(
    `SELECT greatest(0,
       extract(epoch FROM now() - make_interval(secs => $1 / 1000.0) - (
         SELECT p.processed_at FROM processed_messages p
          WHERE p.processed_at < now() - make_interval(secs => $1 / 1000.0)
            AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.message_id = p.message_id)
            AND NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.message_id = p.message_id)
          ORDER BY p.processed_at LIMIT 1)),
       extract(epoch FROM now() - make_interval(secs => $2 / 1000.0) - (
         SELECT processed_at FROM processed_messages
          WHERE event_type IS NOT NULL AND processed_at < now() - make_interval(secs => $2 / 1000.0)
          ORDER BY processed_at LIMIT 1)),
       extract(epoch FROM now() - make_interval(secs => $1 / 1000.0) - (
         SELECT min(skipped_at) FROM skipped_duplicates WHERE skipped_at < now() - make_interval(secs => $1 / 1000.0)))
     )::float8 AS lag`,
    [retentionMs, copyRetentionMs],
  );
  return rows[0]!.lag;
}

/**
 * How many times each order's `eventType` message is in this inbox (by the payload's orderId),
 * for the chaos audit: each order's OrderCreated must be in the inventory's inbox exactly once.
 */
export async function countInboxByOrder(db: Queryable, eventType: string): Promise<Map<string, number>> {
  const { rows } = await db.query<{ order_id: string; n: number }>(
    `SELECT payload->>'orderId' AS order_id, count(*)::int AS n FROM processed_messages
      WHERE event_type = $1 AND payload ? 'orderId' GROUP BY payload->>'orderId'`,
    [eventType],
  );
  return new Map(rows.map((row) => [row.order_id, row.n]));
}
