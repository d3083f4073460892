// dead_letters: where an event goes when it will not be delivered by trying again. Moving it
// is one statement (DELETE … RETURNING feeding an INSERT), so an event is always in exactly
// one of the two tables, whatever crashes when.
import type { Queryable } from '../db/pool.ts';
import type { OutboxEvent } from './outbox.ts';

export interface DeadLetter {
  messageId: string;
  eventType: string;
  attempts: number;
  lastError: string | null;
  deadAt: Date;
}

/** Moves a claimed event to dead_letters while `token` still holds its lease. */
export async function moveToDeadLetters(db: Queryable, event: Pick<OutboxEvent, 'id'>, token: string, error: string): Promise<boolean> {
  const { rowCount } = await db.query(
    `WITH moved AS (
       DELETE FROM outbox WHERE id = $1 AND lock_token = $2
       RETURNING message_id, event_type, aggregate_id, payload, headers, attempts, created_at
     )
     INSERT INTO dead_letters (message_id, event_type, aggregate_id, payload, headers, attempts, last_error, created_at)
     SELECT message_id, event_type, aggregate_id, payload, headers, attempts, left($3, 2000), created_at FROM moved`,
    [event.id, token, error],
  );
  return rowCount === 1;
}

/** A message that arrived over a broker and will not be applied (uuid-shaped ids only). */
export interface ReceivedDeadLetter {
  /** The stream it came from (dead_letters.received_from). */
  stream: string;
  messageId: string;
  eventType: string;
  aggregateId: string;
  payload: unknown;
  /** Its trace context, kept so the dead letter still belongs to its trace. */
  headers?: Record<string, string>;
  deliveries: number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const NO_AGGREGATE = '00000000-0000-0000-0000-000000000000';

/**
 * Records a received message that a subscriber gives up on, before the broker is told to drop
 * it. A message too malformed to carry a message id gets a fresh one (its raw id goes into the
 * error). Recording the same message twice keeps the first record.
 */
export async function recordReceivedDeadLetter(db: Queryable, message: ReceivedDeadLetter, error: string): Promise<void> {
  const idOk = UUID.test(message.messageId);
  await db.query(
    `INSERT INTO dead_letters (message_id, event_type, aggregate_id, payload, attempts, last_error, created_at, received_from, headers)
     VALUES (coalesce($1::uuid, gen_random_uuid()), $2, $3, $4, $5, left($6, 2000), now(), $7, $8)
     ON CONFLICT (message_id) DO NOTHING`,
    [
      idOk ? message.messageId : null,
      message.eventType || '(none)',
      UUID.test(message.aggregateId) ? message.aggregateId : NO_AGGREGATE,
      JSON.stringify(message.payload ?? null),
      message.deliveries,
      idOk ? error : `${error} (message id ${JSON.stringify(message.messageId)})`,
      message.stream,
      JSON.stringify(message.headers ?? {}),
    ],
  );
}

/**
 * Puts dead letters back into the outbox with a fresh attempt count, once their cause is
 * fixed: all of them, or those in `messageIds`. Returns the message ids re-driven. Messages
 * received from a broker (received_from set) stay: they belong to another service's stream.
 */
export async function redriveDeadLetters(db: Queryable, messageIds?: readonly string[]): Promise<string[]> {
  const { rows } = await db.query<{ message_id: string }>(
    `WITH moved AS (
       DELETE FROM dead_letters d
        WHERE ($1::uuid[] IS NULL OR d.message_id = ANY($1::uuid[]))
          AND d.received_from IS NULL
          -- Already back in the outbox (replayed meanwhile): leave the dead letter where it is.
          AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.message_id = d.message_id)
       RETURNING message_id, event_type, aggregate_id, payload, headers, last_error, created_at
     )
     INSERT INTO outbox (message_id, event_type, aggregate_id, payload, headers, created_at, last_error)
     SELECT message_id, event_type, aggregate_id, payload, headers, created_at, 're-driven after: ' || coalesce(last_error, '?') FROM moved
     ON CONFLICT (message_id) DO NOTHING
     RETURNING message_id`,
    [messageIds ?? null],
  );
  return rows.map((row) => row.message_id);
}

export async function listDeadLetters(db: Queryable, limit = 100): Promise<DeadLetter[]> {
  const { rows } = await db.query<{ message_id: string; event_type: string; attempts: number; last_error: string | null; dead_at: Date }>(
    `SELECT message_id, event_type, attempts, last_error, dead_at FROM dead_letters ORDER BY dead_at DESC, id DESC LIMIT $1`,
    [limit],
  );
  return rows.map((row) => ({
    messageId: row.message_id,
    eventType: row.event_type,
    attempts: row.attempts,
    lastError: row.last_error,
    deadAt: row.dead_at,
  }));
}

export async function countDeadLetters(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM dead_letters`);
  return rows[0]!.n;
}

export interface PurgedDeadLetter {
  messageId: string;
  eventType: string;
  aggregateId: string;
  lastError: string | null;
  deadAt: Date;
}

/**
 * Deletes up to `limit` dead letters that died more than `olderThanMs` ago (database clock),
 * oldest first, and returns them. Dead letters are never pruned by the janitor: only this,
 * run on purpose by a person, removes one without re-driving it.
 */
export async function purgeDeadLetters(db: Queryable, olderThanMs: number, limit: number): Promise<PurgedDeadLetter[]> {
  const { rows } = await db.query<{ message_id: string; event_type: string; aggregate_id: string; last_error: string | null; dead_at: Date }>(
    `DELETE FROM dead_letters
      WHERE id = ANY (ARRAY(
              SELECT id FROM dead_letters WHERE dead_at < now() - make_interval(secs => $1 / 1000.0)
               ORDER BY dead_at, id LIMIT $2))
     RETURNING message_id, event_type, aggregate_id, last_error, dead_at`,
    [olderThanMs, limit],
  );
  return rows
    .map((row) => ({ messageId: row.message_id, eventType: row.event_type, aggregateId: row.aggregate_id, lastError: row.last_error, deadAt: row.dead_at }))
    .sort((a, b) => a.deadAt.getTime() - b.deadAt.getTime());
}

export interface DeadLetterSummary {
  /** Exact up to the limit given; the limit itself means "at least". */
  count: number;
  /** Seconds since the oldest dead letter gave up (database clock); 0 when none. */
  oldestAgeSeconds: number;
}

/** Count and age of the oldest, in work bounded by `limit` rows (dead letters wait for a person). */
export async function summarizeDeadLetters(db: Queryable, limit: number): Promise<DeadLetterSummary> {
  const { rows } = await db.query<{ n: number; age: number }>(
    `SELECT (SELECT count(*)::int FROM (SELECT 1 FROM dead_letters LIMIT $1) d) AS n,
            coalesce((SELECT extract(epoch FROM now() - dead_at)::float8 FROM dead_letters ORDER BY id LIMIT 1), 0) AS age`,
    [limit],
  );
  return { count: rows[0]!.n, oldestAgeSeconds: Math.max(0, rows[0]!.age) };
}

/** Empties dead_letters: the demo's fresh start. */
export async function clearDeadLetters(tx: Queryable): Promise<void> {
  await tx.query(`DELETE FROM dead_letters`);
}

/** A dead letter a service received from a stream, as it is sent back there. */
export interface ReceivedDeadLetterCopy {
  messageId: string;
  eventType: string;
  aggregateId: string;
  payload: unknown;
  headers: Record<string, string>;
}

/** The dead letters received from `stream` (all, or those in `messageIds`), oldest first. */
export async function listReceivedDeadLetters(db: Queryable, stream: string, messageIds?: readonly string[]): Promise<ReceivedDeadLetterCopy[]> {
  const { rows } = await db.query<{ message_id: string; event_type: string; aggregate_id: string; payload: unknown; headers: Record<string, string> | null }>(
    `SELECT message_id, event_type, aggregate_id, payload, headers FROM dead_letters
      WHERE received_from = $1 AND ($2::uuid[] IS NULL OR message_id = ANY($2::uuid[]))
      ORDER BY dead_at, id`,
    [stream, messageIds ?? null],
  );
  return rows.map((row) => ({
    messageId: row.message_id, eventType: row.event_type, aggregateId: row.aggregate_id, payload: row.payload, headers: row.headers ?? {},
  }));
}

/** Forgets one received dead letter once it was published back to its stream. */
export async function forgetReceivedDeadLetter(db: Queryable, messageId: string): Promise<void> {
  await db.query(`DELETE FROM dead_letters WHERE message_id = $1 AND received_from IS NOT NULL`, [messageId]);
}
