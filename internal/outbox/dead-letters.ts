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

/**
 * Moves a claimed event to dead_letters while `token` still holds its lease, and in the same
 * statement parks the later events of its aggregate already in the outbox (available_at =
 * 'infinity'): the claim would skip them anyway while the dead letter waits, parked they stay
 * out of its index walk and show as parked in /stats. A row whose live lease another worker
 * holds is left alone (it was claimed before this event came back, by a replay); the janitor's
 * pass parks it once that lease is over. Events written later (a cancellation of an order whose
 * creation is dead) are parked by the same pass; until then the claim's rule holds them back.
 */
export async function moveToDeadLetters(db: Queryable, event: Pick<OutboxEvent, 'id'>, token: string, error: string): Promise<boolean> {
  const { rows } = await db.query<{ moved: number }>(
    `WITH moved AS (
       DELETE FROM outbox WHERE id = $1 AND lock_token = $2
       RETURNING message_id, event_type, aggregate_id, aggregate_seq, payload, headers, attempts, created_at
     ),
     dead AS (
       INSERT INTO dead_letters (message_id, event_type, aggregate_id, aggregate_seq, payload, headers, attempts, last_error, created_at)
       SELECT message_id, event_type, aggregate_id, aggregate_seq, payload, headers, attempts, left($3, 2000), created_at FROM moved
       RETURNING 1
     ),
     parked AS (
       UPDATE outbox o SET available_at = 'infinity'
         FROM moved m
        WHERE o.aggregate_id = m.aggregate_id AND o.aggregate_seq > m.aggregate_seq
          AND (o.lock_token IS NULL OR o.locked_until <= now())
       RETURNING 1
     )
     SELECT (SELECT count(*)::int FROM dead) AS moved, (SELECT count(*)::int FROM parked) AS parked`,
    [event.id, token, error],
  );
  return rows[0]!.moved === 1;
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
  /** Its position within its aggregate (absent: 1), so a re-drive sends it back with it. */
  sequence?: number;
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
    `INSERT INTO dead_letters (message_id, event_type, aggregate_id, payload, attempts, last_error, created_at, received_from, headers, aggregate_seq)
     VALUES (coalesce($1::uuid, gen_random_uuid()), $2, $3, $4, $5, left($6, 2000), now(), $7, $8, $9)
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
      Number.isInteger(message.sequence) && message.sequence! >= 1 ? message.sequence : 1,
    ],
  );
}

/**
 * Puts dead letters back into the outbox with a fresh attempt count, once their cause is
 * fixed: all of them, or those in `messageIds`. Returns the message ids re-driven. Messages
 * received from a broker (received_from set) stay: they belong to another service's stream.
 *
 * The same statement un-parks the events their dead-lettering parked (available now), unless
 * an earlier dead letter of that aggregate stays behind. They still wait for the re-driven
 * event by the claim's rule, so the aggregate's events go through in their order.
 */
export async function redriveDeadLetters(db: Queryable, messageIds?: readonly string[]): Promise<string[]> {
  const { rows } = await db.query<{ message_id: string }>(
    `WITH moved AS (
       DELETE FROM dead_letters d
        WHERE ($1::uuid[] IS NULL OR d.message_id = ANY($1::uuid[]))
          AND d.received_from IS NULL
          -- Already back in the outbox (replayed meanwhile): leave the dead letter where it is.
          AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.message_id = d.message_id)
       RETURNING message_id, event_type, aggregate_id, aggregate_seq, payload, headers, last_error, created_at
     ),
     unparked AS (
       -- One statement sees one snapshot: dead letters it deletes still look present here, so
       -- they are excluded by name.
       UPDATE outbox o SET available_at = now()
        WHERE o.available_at = 'infinity'
          AND o.aggregate_id IN (SELECT aggregate_id FROM moved)
          AND NOT EXISTS (SELECT 1 FROM dead_letters d
                           WHERE d.aggregate_id = o.aggregate_id AND d.aggregate_seq < o.aggregate_seq
                             AND d.received_from IS NULL AND d.message_id NOT IN (SELECT message_id FROM moved))
       RETURNING 1
     )
     INSERT INTO outbox (message_id, event_type, aggregate_id, aggregate_seq, payload, headers, created_at, last_error)
     SELECT message_id, event_type, aggregate_id, aggregate_seq, payload, headers, created_at, 're-driven after: ' || coalesce(last_error, '?') FROM moved
     ON CONFLICT (message_id) DO NOTHING
     RETURNING message_id`,
    [messageIds ?? null],
  );
  return rows.map((row) => row.message_id);
}

/**
 * The janitor's repair of parking, both ways, so that nothing is ever stuck: parks events that
 * wait behind one of this outbox's dead letters but are not parked (written after the
 * dead-lettering, or leased then), and un-parks parked events whose dead letter is gone (purged
 * or re-driven by hand). Each direction touches at most `limit` rows. Parking is only ever an
 * optimisation of the claim's rule, so a pass that comes late costs a few probes, never order.
 */
export async function repairParking(db: Queryable, limit: number): Promise<{ parked: number; unparked: number }> {
  const { rows } = await db.query<{ parked: number; unparked: number }>(
    `WITH strays AS (
       UPDATE outbox o SET available_at = 'infinity'
        WHERE o.id = ANY (ARRAY(
                SELECT s.id FROM (SELECT DISTINCT ON (aggregate_id) aggregate_id, aggregate_seq FROM dead_letters
                                   WHERE received_from IS NULL ORDER BY aggregate_id, aggregate_seq) d
                  JOIN outbox s ON s.aggregate_id = d.aggregate_id AND s.aggregate_seq > d.aggregate_seq
                 WHERE s.available_at < 'infinity' AND (s.lock_token IS NULL OR s.locked_until <= now())
                 LIMIT $1))
       RETURNING 1
     ),
     orphans AS (
       UPDATE outbox o SET available_at = now()
        WHERE o.id = ANY (ARRAY(
                SELECT p.id FROM outbox p
                 WHERE p.available_at = 'infinity'
                   AND NOT EXISTS (SELECT 1 FROM dead_letters d
                                    WHERE d.aggregate_id = p.aggregate_id AND d.aggregate_seq < p.aggregate_seq AND d.received_from IS NULL)
                 LIMIT $1))
       RETURNING 1
     )
     SELECT (SELECT count(*)::int FROM strays) AS parked, (SELECT count(*)::int FROM orphans) AS unparked`,
    [limit],
  );
  return rows[0]!;
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
  /** Its position within its aggregate. */
  sequence: number;
  lastError: string | null;
  deadAt: Date;
  /**
   * Not a dead letter itself: a later event of the same aggregate that was parked behind one
   * purged here. It could never be applied in order after it, so it is given up on with it.
   */
  behind: boolean;
}

/**
 * Deletes up to `limit` dead letters that died more than `olderThanMs` ago (database clock),
 * oldest first, and returns them. Dead letters are never pruned by the janitor: only this,
 * run on purpose by a person, removes one without re-driving it.
 *
 * Giving up on an event gives up on its place in its aggregate's order, in one statement:
 * - the later events of its aggregate parked in this outbox behind it are deleted with it
 *   (returned with `behind`): re-driven never, they would wait for it forever;
 * - the inbox position of its aggregate in this database moves past it (and past the events
 *   deleted behind it): a later event of that aggregate, written after the purge (the order
 *   cancelled after its creation was given up) or still coming from the broker (a dead letter
 *   this service RECEIVED), is then the next one instead of being deferred forever. In-process
 *   the consumer shares this database; a service's own outbox moves a position nobody reads.
 */
export async function purgeDeadLetters(db: Queryable, olderThanMs: number, limit: number): Promise<PurgedDeadLetter[]> {
  const { rows } = await db.query<{ message_id: string; event_type: string; aggregate_id: string; aggregate_seq: number; last_error: string | null; dead_at: Date; behind: boolean }>(
    `WITH purged AS (
       DELETE FROM dead_letters
        WHERE id = ANY (ARRAY(
                SELECT id FROM dead_letters WHERE dead_at < now() - make_interval(secs => $1 / 1000.0)
                 ORDER BY dead_at, id LIMIT $2))
       RETURNING message_id, event_type, aggregate_id, aggregate_seq, last_error, dead_at, received_from
     ), behind AS (
       DELETE FROM outbox o USING purged p
        WHERE p.received_from IS NULL AND o.aggregate_id = p.aggregate_id AND o.aggregate_seq > p.aggregate_seq
       RETURNING o.message_id, o.event_type, o.aggregate_id, o.aggregate_seq, o.last_error, p.dead_at
     ), passed AS (
       INSERT INTO inbox_positions (aggregate_id, last_seq)
       SELECT aggregate_id, max(aggregate_seq)
         FROM (SELECT aggregate_id, aggregate_seq FROM purged UNION ALL SELECT aggregate_id, aggregate_seq FROM behind) given_up
        GROUP BY aggregate_id
       ON CONFLICT (aggregate_id) DO UPDATE SET last_seq = greatest(inbox_positions.last_seq, excluded.last_seq), updated_at = now()
     )
     SELECT message_id, event_type, aggregate_id, aggregate_seq, last_error, dead_at, false AS behind FROM purged
     UNION ALL
     SELECT message_id, event_type, aggregate_id, aggregate_seq, last_error, dead_at, true FROM behind`,
    [olderThanMs, limit],
  );
  return rows
    .map((row) => ({
      messageId: row.message_id, eventType: row.event_type, aggregateId: row.aggregate_id, sequence: row.aggregate_seq,
      lastError: row.last_error, deadAt: row.dead_at, behind: row.behind,
    }))
    .sort((a, b) => a.deadAt.getTime() - b.deadAt.getTime() || a.aggregateId.localeCompare(b.aggregateId) || a.sequence - b.sequence);
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
  sequence: number;
}

/** The dead letters received from `stream` (all, or those in `messageIds`), oldest first. */
export async function listReceivedDeadLetters(db: Queryable, stream: string, messageIds?: readonly string[]): Promise<ReceivedDeadLetterCopy[]> {
  const { rows } = await db.query<{ message_id: string; event_type: string; aggregate_id: string; payload: unknown; headers: Record<string, string> | null; aggregate_seq: number }>(
    `SELECT message_id, event_type, aggregate_id, payload, headers, aggregate_seq FROM dead_letters
      WHERE received_from = $1 AND ($2::uuid[] IS NULL OR message_id = ANY($2::uuid[]))
      ORDER BY dead_at, id`,
    [stream, messageIds ?? null],
  );
  return rows.map((row) => ({
    messageId: row.message_id, eventType: row.event_type, aggregateId: row.aggregate_id, payload: row.payload, headers: row.headers ?? {},
    sequence: row.aggregate_seq,
  }));
}

/** Forgets one received dead letter once it was published back to its stream. */
export async function forgetReceivedDeadLetter(db: Queryable, messageId: string): Promise<void> {
  await db.query(`DELETE FROM dead_letters WHERE message_id = $1 AND received_from IS NOT NULL`, [messageId]);
}
