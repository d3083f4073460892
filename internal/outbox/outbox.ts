// The outbox table's operations. The relay owns no SQL: it is handed these.
//
// Claiming is a lease, not a held lock. One statement picks the oldest available rows with
// FOR UPDATE SKIP LOCKED (so concurrent claimers never pick the same row) and, in the same
// statement, pushes their `available_at` past the lease and stamps a claim token. The row
// lock ends with that statement; the committed lease is what keeps other workers away while
// the event is delivered, and it survives a crash: an abandoned lease simply expires.
//
// The trap we avoid: `SELECT … FOR UPDATE SKIP LOCKED` run on its own in autocommit mode
// locks rows for the few microseconds of that statement and then forgets them, so every
// worker "claims" the same rows. See internal/relay/claim.test.ts.
import { randomUUID } from 'node:crypto';
import type { Pool, Queryable } from '../db/pool.ts';
import { moveToDeadLetters } from './dead-letters.ts';

export const ORDER_CREATED = 'OrderCreated';
export const ORDER_CANCELLED = 'OrderCancelled';

/**
 * The channel every new outbox row is announced on (pg_notify, delivered at COMMIT, so a
 * listener never hears of a row it cannot see yet). The notification only says "look now";
 * it carries nothing a worker relies on, so losing one costs at most one poll interval.
 */
export const OUTBOX_CHANNEL = 'outbox_events';

/** What a producer hands to the outbox. */
export interface NewEvent {
  messageId: string;
  eventType: string;
  aggregateId: string;
  payload: unknown;
  /** Context that travels with the event (the W3C trace context), stored in the same row. */
  headers?: Record<string, string>;
  /**
   * Its position within its aggregate (1, 2, …), assigned in the transaction that writes it.
   * Absent: 1. The claim never takes an event while an earlier one of its aggregate waits.
   */
  sequence?: number;
}

/** An event as a worker sees it after claiming it. */
export interface OutboxEvent {
  id: string;
  messageId: string;
  eventType: string;
  aggregateId: string;
  payload: unknown;
  /** The trace context stored with it ({} when none; fakes in tests may leave it out). */
  headers?: Record<string, string>;
  /** Its position within its aggregate (1 for rows written before positions existed). */
  sequence: number;
  /** Including the current one: 1 on the first delivery. */
  attempts: number;
  /** Why the previous attempt did not finish (null on a first delivery). */
  lastError: string | null;
  createdAt: Date;
  /**
   * This claim took it over from a worker whose lease expired. Such events are claimed one per
   * claim (see CLAIM_SQL), so the relay claims again at once rather than one per poll.
   */
  takenOver?: boolean;
}

export interface Claim {
  token: string;
  events: OutboxEvent[];
}

interface OutboxRow {
  id: string;
  message_id: string;
  event_type: string;
  aggregate_id: string;
  aggregate_seq: number;
  payload: unknown;
  headers: Record<string, string> | null;
  attempts: number;
  last_error: string | null;
  created_at: Date;
  /** Set by the claim: it was still leased by another worker, whose lease had expired. */
  taken_over?: boolean;
}

/**
 * Runs on the caller's transaction client: the event commits or rolls back with the caller's
 * write. With `notify` (the default, WAKEUP=notify-in-transaction), the same statement also
 * announces it with pg_notify, delivered at COMMIT. That is simple, but PostgreSQL serialises the
 * commits of notifying transactions; the server instead announces after the commit, coalesced
 * (wakeup.ts), and passes `notify: false`.
 */
export async function enqueueEvent(tx: Queryable, event: NewEvent, options: { notify?: boolean } = {}): Promise<void> {
  const values = [event.messageId, event.eventType, event.aggregateId, JSON.stringify(event.payload), JSON.stringify(event.headers ?? {}), event.sequence ?? 1];
  if (options.notify === false) {
    await tx.query(`INSERT INTO outbox (message_id, event_type, aggregate_id, payload, headers, aggregate_seq) VALUES ($1, $2, $3, $4, $5, $6)`, values);
    return;
  }
  await tx.query(
    `WITH inserted AS (
       INSERT INTO outbox (message_id, event_type, aggregate_id, payload, headers, aggregate_seq)
       VALUES ($1, $2, $3, $4, $5, $6)
       RETURNING id
     )
     SELECT pg_notify($7, '') FROM inserted`,
    [...values, OUTBOX_CHANNEL],
  );
}

/**
 * "Look at the outbox now", outside any transaction: the after-commit wake-up (wakeup.ts).
 * `payload` names the workers that were already woken in memory (their listener ignores it).
 */
export async function announceOutbox(db: Queryable, channel = OUTBOX_CHANNEL, payload = ''): Promise<void> {
  await db.query(`SELECT pg_notify($1, $2)`, [channel, payload]);
}

/** Many events in one statement (bulk loads: the benchmark, the scale-out test); one notification. */
export async function enqueueEvents(tx: Queryable, events: readonly NewEvent[]): Promise<void> {
  if (events.length === 0) return;
  await tx.query(
    `WITH inserted AS (
       INSERT INTO outbox (message_id, event_type, aggregate_id, payload, headers, aggregate_seq)
       SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::jsonb[], $5::jsonb[], $7::int[])
       RETURNING id
     )
     SELECT pg_notify($6, '') WHERE EXISTS (SELECT 1 FROM inserted)`,
    [
      events.map((e) => e.messageId),
      events.map((e) => e.eventType),
      events.map((e) => e.aggregateId),
      events.map((e) => JSON.stringify(e.payload)),
      events.map((e) => JSON.stringify(e.headers ?? {})),
      OUTBOX_CHANNEL,
      events.map((e) => e.sequence ?? 1),
    ],
  );
}

/**
 * Puts an already-delivered message back into the outbox, as a broker or a relay crash would
 * redeliver it. Returns false when that message id is still in the outbox (not yet deleted).
 */
export async function enqueueAgain(db: Queryable, event: NewEvent): Promise<boolean> {
  const { rows } = await db.query<{ id: string }>(
    `WITH inserted AS (
       INSERT INTO outbox (message_id, event_type, aggregate_id, payload, headers, aggregate_seq)
       VALUES ($1, $2, $3, $4, $5, $7)
       ON CONFLICT (message_id) DO NOTHING
       RETURNING id
     )
     SELECT id, pg_notify($6, '') FROM inserted`,
    [event.messageId, event.eventType, event.aggregateId, JSON.stringify(event.payload), JSON.stringify(event.headers ?? {}), OUTBOX_CHANNEL, event.sequence ?? 1],
  );
  return rows.length === 1;
}

/** How many of `messageIds` are still in the outbox. */
export async function countWaiting(db: Queryable, messageIds: readonly string[]): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM outbox WHERE message_id = ANY($1::uuid[])`,
    [messageIds],
  );
  return rows[0]!.n;
}

// One round trip for the whole batch. The inner SELECT walks outbox_available_idx from its
// start and stops after LIMIT rows, so its cost does not grow with the backlog (leased and
// backed-off rows sort after now()) or with the history (delivered rows are deleted). The ids
// go to the UPDATE as an array, which it looks up by primary key: joined to a CTE instead,
// the planner switches to a hash join over a sequential scan once the backlog is large.
//
// Per-aggregate order: a candidate is skipped while an earlier event of its aggregate is still
// in the outbox (waiting, leased or backing off) or parked in dead_letters. Each is one probe
// of an (aggregate_id, aggregate_seq) index per row walked, so the claim stays index scans. A
// skipped event costs the walk one probe per claim until its predecessor is gone; the events
// behind a dead letter are parked at available_at = 'infinity', out of the walk altogether.
// Dead letters received from a broker (received_from set) are another service's messages:
// they never hold back this outbox.
//
// OFFSET 0 keeps each probe a per-row subplan: pulled up into an anti-join, the planner may
// pick a sequential scan of a small or freshly emptied table (materialized once per claim),
// or a hash anti-join over the whole outbox once the backlog is large.
const ORDERED_CANDIDATES = `
                 AND NOT EXISTS (SELECT 1 FROM outbox earlier
                                  WHERE earlier.aggregate_id = o.aggregate_id AND earlier.aggregate_seq < o.aggregate_seq
                                  OFFSET 0)
                 AND NOT EXISTS (SELECT 1 FROM dead_letters parked
                                  WHERE parked.aggregate_id = o.aggregate_id AND parked.aggregate_seq < o.aggregate_seq
                                    AND parked.received_from IS NULL
                                  OFFSET 0)`;

/** The claim statement; `ordered: false` leaves the per-aggregate rule out (test control only). */
export function claimSql(ordered: boolean): string {
  return `UPDATE outbox
        SET locked_by = $2,
            lock_token = $3,
            locked_until = now() + $4 * interval '1 millisecond',
            available_at = now() + $4 * interval '1 millisecond',
            -- Still leased means the last holder never finished: it died or stalled. That only
            -- counts as an attempt if the event was alone in that claim (see below).
            attempts = attempts + 1 - CASE WHEN lock_token IS NOT NULL AND NOT claimed_alone THEN 1 ELSE 0 END,
            claimed_alone = (lock_token IS NOT NULL),
            last_error = CASE WHEN lock_token IS NOT NULL
                              THEN 'lease of ' || locked_by || ' expired before it finished (process died or stalled)'
                              ELSE last_error END
      WHERE id = ANY (ARRAY(
              WITH candidates AS (
                SELECT id, lock_token IS NOT NULL AS abandoned FROM outbox o
                 WHERE available_at <= now()${ordered ? ORDERED_CANDIDATES : ''}
                 ORDER BY available_at, id
                 LIMIT $1
                 FOR UPDATE OF o SKIP LOCKED)
              -- Events back from a dead worker are taken one per claim, so if one of them
              -- kills the process again, the crash is pinned on it and not on its neighbours.
              SELECT id FROM candidates
               WHERE NOT EXISTS (SELECT 1 FROM candidates WHERE abandoned)
                  OR id = (SELECT min(id) FROM candidates WHERE abandoned)))
     RETURNING id, message_id, event_type, aggregate_id, aggregate_seq, payload, headers, attempts, last_error, created_at, claimed_alone AS taken_over`;
}

const CLAIM_SQL = claimSql(true);

/** The claim's query plan (EXPLAIN, not run): proof that it stays an index scan. */
export async function explainClaim(db: Queryable, batchSize: number): Promise<string> {
  const { rows } = await db.query<{ 'QUERY PLAN': string }>(`EXPLAIN (COSTS OFF) ${CLAIM_SQL}`, [
    batchSize,
    'explain',
    randomUUID(),
    30_000,
  ]);
  return rows.map((row) => row['QUERY PLAN']).join('\n');
}

export interface ClaimProfile {
  /** Execution time of one claim, as EXPLAIN ANALYZE reports it. */
  ms: number;
  /** Shared buffers the whole claim touched (hit + read), its UPDATE's index insertions included. */
  buffers: number;
  /**
   * Shared buffers of its scan of outbox_available_idx alone: the part that grows with the dead
   * row versions it must step over (a few pages when they are pruned).
   */
  scanBuffers: number;
  /** Events it would have leased. */
  rows: number;
}

interface PlanNode {
  'Index Name'?: string;
  'Shared Hit Blocks'?: number;
  'Shared Read Blocks'?: number;
  'Actual Rows'?: number;
  Plans?: PlanNode[];
}

/**
 * Runs one real claim under EXPLAIN (ANALYZE, BUFFERS) inside a transaction that is rolled
 * back, so no lease survives: what a worker's claim costs right now. It grows with the dead
 * row versions the claim must step over, which an old snapshot keeps from being pruned.
 */
export async function profileClaim(pool: Pool, batchSize: number): Promise<ClaimProfile> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    try {
      const { rows } = await client.query<{ 'QUERY PLAN': Array<{ Plan: PlanNode; 'Execution Time': number }> }>(
        `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${CLAIM_SQL}`,
        [batchSize, 'profile', randomUUID(), 30_000],
      );
      const { Plan: plan, 'Execution Time': ms } = rows[0]!['QUERY PLAN'][0]!;
      // A node's buffer counts include its children's (and its InitPlans').
      const buffers = (node: PlanNode | undefined) => (node?.['Shared Hit Blocks'] ?? 0) + (node?.['Shared Read Blocks'] ?? 0);
      return { ms, buffers: buffers(plan), scanBuffers: buffers(findNode(plan, 'outbox_available_idx')), rows: plan['Actual Rows'] ?? 0 };
    } finally {
      await client.query('ROLLBACK');
    }
  } finally {
    client.release();
  }
}

function findNode(node: PlanNode, indexName: string): PlanNode | undefined {
  if (node['Index Name'] === indexName) return node;
  for (const child of node.Plans ?? []) {
    const found = findNode(child, indexName);
    if (found) return found;
  }
  return undefined;
}

/**
 * Leases up to `batchSize` available events to `workerName` for `leaseMs` (database clock)
 * and counts an attempt on each. Autocommit: the lease is committed when this returns.
 */
export async function claimEvents(
  db: Queryable,
  options: { workerName: string; batchSize: number; leaseMs: number },
  sql: string = CLAIM_SQL,
): Promise<Claim> {
  const token = randomUUID();
  // Named, so each connection parses it once, not on every claim: the claim and the delete run
  // once or more per event. The relay's connections still plan it at every claim
  // (relayPoolOptions: a plan kept from an empty outbox reads a later backlog row by row). A
  // name stands for one text per connection: only the product's claim gets it (the test
  // control passes another text).
  const values = [options.batchSize, options.workerName, token, options.leaseMs];
  const { rows } = await db.query<OutboxRow>(sql === CLAIM_SQL ? { name: 'outbox-claim', text: sql, values } : { text: sql, values });
  rows.sort((a, b) => Number(a.id) - Number(b.id));
  return { token, events: rows.map(toEvent) };
}

/** What a completion did: rows deleted, and whether one of them was holding back a later event of its aggregate. */
export interface Completed {
  deleted: number;
  /** A later event of a deleted row's aggregate waits in the outbox: claimable now, so claim again. */
  unblocked: boolean;
}

/**
 * Deletes delivered events, but only while `token` still holds their lease: if the lease
 * expired and another worker took over, that worker's claim decides what happens to the row.
 * It also says whether a deleted event was holding back a later one of its aggregate (one
 * index probe per row): that event became claimable with this delete, and no commit announced
 * it, so the relay claims again instead of leaving it to the next poll.
 */
export async function completeEvents(db: Queryable, ids: readonly string[], token: string): Promise<Completed> {
  if (ids.length === 0) return { deleted: 0, unblocked: false };
  const { rows } = await db.query<{ later: boolean }>({
    name: 'outbox-complete', // prepared once per connection, like the claim
    text: `DELETE FROM outbox d WHERE id = ANY($1::bigint[]) AND lock_token = $2
           RETURNING EXISTS (SELECT 1 FROM outbox later
                              WHERE later.aggregate_id = d.aggregate_id AND later.aggregate_seq > d.aggregate_seq) AS later`,
    values: [ids, token],
  });
  return { deleted: rows.length, unblocked: rows.some((row) => row.later) };
}

/**
 * Gives a failed event back for a later retry: exponential backoff from its attempt count
 * (1 s, 2 s, 4 s … capped at `maxDelayMs`) with jitter, on the database clock, and the error
 * kept on the row for whoever looks. Returns the delay chosen, in ms (undefined if the lease
 * was lost meanwhile).
 */
export async function retryLater(
  db: Queryable,
  event: Pick<OutboxEvent, 'id'>,
  token: string,
  error: string,
  options: { baseDelayMs?: number; maxDelayMs?: number } = {},
): Promise<number | undefined> {
  const { rows } = await db.query<{ delay_ms: number }>(
    `UPDATE outbox
        SET available_at = now() + least($4::float8 * power(2, greatest(attempts - 1, 0)), $5::float8)
                                   * (0.5 + random() / 2) * interval '1 millisecond',
            locked_by = NULL, lock_token = NULL, locked_until = NULL,
            last_error = left($3, 2000)
      WHERE id = $1 AND lock_token = $2
     RETURNING round(extract(epoch FROM available_at - now()) * 1000)::int AS delay_ms`,
    [event.id, token, error, options.baseDelayMs ?? 1000, options.maxDelayMs ?? 60_000],
  );
  return rows[0]?.delay_ms;
}

/**
 * Gives an event back after a failure that was not its own (the broker unreachable): later by
 * a fixed `delayMs`, attempt uncounted, so an outage of any length dead-letters nothing.
 * Returns false when the lease was lost meanwhile.
 */
export async function retryUncounted(db: Queryable, event: Pick<OutboxEvent, 'id'>, token: string, error: string, delayMs: number): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE outbox
        SET available_at = now() + $4::float8 * interval '1 millisecond',
            locked_by = NULL, lock_token = NULL, locked_until = NULL,
            attempts = greatest(attempts - 1, 0), last_error = left($3, 2000)
      WHERE id = $1 AND lock_token = $2`,
    [event.id, token, error, delayMs],
  );
  return rowCount === 1;
}

/**
 * Hands back claimed events that were never started (shutdown, or too little lease left to
 * start them): available now, attempt uncounted.
 */
export async function releaseEvents(db: Queryable, ids: readonly string[], token: string): Promise<number> {
  if (ids.length === 0) return 0;
  const { rowCount } = await db.query(
    `UPDATE outbox
        SET available_at = now(), locked_by = NULL, lock_token = NULL, locked_until = NULL,
            attempts = greatest(attempts - 1, 0)
      WHERE id = ANY($1::bigint[]) AND lock_token = $2`,
    [ids, token],
  );
  return rowCount ?? 0;
}

export interface OutboxCounts {
  pending: number;
  inFlight: number;
  retrying: number;
  /**
   * Of `pending`: events parked behind a dead letter of their aggregate (available_at =
   * 'infinity'). They go through once that dead letter is re-driven, in their order.
   */
  parked: number;
}

export interface OutboxSummary {
  counts: OutboxCounts;
  /** The outbox held more than the limit: `pending` is the planner's estimate, the rest lower bounds. */
  estimated: boolean;
  /** More than the limit are parked: `parked` is a lower bound. */
  parkedCapped: boolean;
  /** Seconds the oldest waiting event has been in the outbox (database clock); 0 when empty. */
  oldestAgeSeconds: number;
  /** Leased events by the worker holding them (the dashboard's lanes). */
  inFlightByWorker: Record<string, number>;
}

/**
 * The outbox at a glance, in work bounded by `limit` rows: exact while the backlog is at most
 * `limit` events (the normal case), an estimate beyond (a backlog of millions must not be
 * counted on every request). Oldest first by id: the insertion order, read from the primary key.
 */
export async function summarizeOutbox(db: Queryable, limit: number): Promise<OutboxSummary> {
  const { rows } = await db.query<{ pending: number; in_flight: number; retrying: number; parked: number; age: number; by_worker: Record<string, number> | null }>(
    `WITH sample AS (SELECT lock_token, locked_until, locked_by, attempts, available_at FROM outbox LIMIT $1 + 1)
     SELECT (SELECT count(*)::int FROM sample) AS pending,
            (SELECT count(*)::int FROM sample WHERE lock_token IS NOT NULL AND locked_until > now()) AS in_flight,
            (SELECT count(*)::int FROM sample WHERE lock_token IS NULL AND attempts > 0 AND available_at < 'infinity') AS retrying,
            -- Parked rows sit at the end of outbox_available_idx: counted from there, bounded.
            (SELECT count(*)::int FROM (SELECT 1 FROM outbox WHERE available_at = 'infinity' LIMIT $1 + 1) p) AS parked,
            (SELECT jsonb_object_agg(locked_by, n) FROM (
               SELECT locked_by, count(*)::int AS n FROM sample
                WHERE lock_token IS NOT NULL AND locked_until > now() GROUP BY locked_by) w) AS by_worker,
            coalesce((SELECT extract(epoch FROM now() - created_at)::float8 FROM outbox ORDER BY id LIMIT 1), 0) AS age`,
    [limit],
  );
  const row = rows[0]!;
  const estimated = row.pending > limit;
  const pending = estimated ? Math.max(limit + 1, await estimateOutboxRows(db)) : row.pending;
  return {
    counts: { pending, inFlight: row.in_flight, retrying: row.retrying, parked: Math.min(row.parked, limit) },
    parkedCapped: row.parked > limit,
    estimated,
    oldestAgeSeconds: Math.max(0, row.age),
    inFlightByWorker: row.by_worker ?? {},
  };
}

/** The planner's idea of the outbox's size (pg_class.reltuples scaled to its current pages). */
async function estimateOutboxRows(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ 'QUERY PLAN': Array<{ Plan: { 'Plan Rows': number } }> }>(`EXPLAIN (FORMAT JSON) SELECT 1 FROM outbox`);
  return Math.round(rows[0]!['QUERY PLAN'][0]!.Plan['Plan Rows']);
}

/**
 * Dead row versions in the outbox (pg_stat_user_tables, updated by PostgreSQL every few
 * hundred ms, an estimate). The claim steps over those it cannot yet prune; they pile up
 * while an old snapshot keeps vacuum from removing them.
 */
export async function outboxDeadTuples(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ n: string | null }>(
    `SELECT n_dead_tup AS n FROM pg_stat_user_tables WHERE relid = 'outbox'::regclass`,
  );
  return Number(rows[0]?.n ?? 0);
}

export async function countOutbox(db: Queryable): Promise<OutboxCounts> {
  const { rows } = await db.query<{ pending: number; in_flight: number; retrying: number; parked: number }>(
    `SELECT count(*)::int AS pending,
            count(*) FILTER (WHERE lock_token IS NOT NULL AND locked_until > now())::int AS in_flight,
            count(*) FILTER (WHERE lock_token IS NULL AND attempts > 0 AND available_at < 'infinity')::int AS retrying,
            count(*) FILTER (WHERE available_at = 'infinity')::int AS parked
       FROM outbox`,
  );
  const row = rows[0]!;
  return { pending: row.pending, inFlight: row.in_flight, retrying: row.retrying, parked: row.parked };
}

/** Events parked behind a dead letter of their aggregate, counted up to `limit` (through outbox_available_idx). */
export async function countParkedEvents(db: Queryable, limit: number): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM (SELECT 1 FROM outbox WHERE available_at = 'infinity' LIMIT $1) p`,
    [limit],
  );
  return rows[0]!.n;
}

/** Events under a live lease, by the worker holding them (the dashboard's lanes). */
export async function countInFlightByWorker(db: Queryable): Promise<Record<string, number>> {
  const { rows } = await db.query<{ locked_by: string; n: number }>(
    `SELECT locked_by, count(*)::int AS n FROM outbox
      WHERE lock_token IS NOT NULL AND locked_until > now()
      GROUP BY locked_by`,
  );
  return Object.fromEntries(rows.map((row) => [row.locked_by, row.n]));
}

/** Empties the outbox: the demo's fresh start. */
export async function clearOutbox(tx: Queryable): Promise<void> {
  await tx.query(`DELETE FROM outbox`);
}

function toEvent(row: OutboxRow): OutboxEvent {
  return {
    id: String(row.id),
    takenOver: row.taken_over === true,
    messageId: row.message_id,
    eventType: row.event_type,
    aggregateId: row.aggregate_id,
    sequence: row.aggregate_seq,
    payload: row.payload,
    headers: row.headers ?? {},
    attempts: row.attempts,
    lastError: row.last_error,
    createdAt: row.created_at,
  };
}

/** The operations a relay worker needs, bound to a pool and settings. */
export interface OutboxStore {
  /** How long a claim's lease lasts: the worker must be done with its events before then. */
  readonly leaseMs: number;
  /** The most events one claim takes: a claim that took this many may have left more behind. */
  readonly batchSize: number;
  claim(workerName: string): Promise<Claim>;
  complete(ids: readonly string[], token: string): Promise<Completed>;
  retryLater(event: OutboxEvent, token: string, error: string): Promise<number | undefined>;
  retryUncounted(event: OutboxEvent, token: string, error: string, delayMs: number): Promise<boolean>;
  deadLetter(event: OutboxEvent, token: string, error: string): Promise<boolean>;
  release(ids: readonly string[], token: string): Promise<number>;
}

export interface OutboxStoreOptions {
  batchSize: number;
  leaseMs: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
}

export function createOutboxStore(db: Queryable, options: OutboxStoreOptions): OutboxStore {
  const backoff = { baseDelayMs: options.retryBaseMs, maxDelayMs: options.retryMaxMs };
  return {
    leaseMs: options.leaseMs,
    batchSize: options.batchSize,
    claim: (workerName) => claimEvents(db, { workerName, batchSize: options.batchSize, leaseMs: options.leaseMs }),
    complete: (ids, token) => completeEvents(db, ids, token),
    retryLater: (event, token, error) => retryLater(db, event, token, error, backoff),
    retryUncounted: (event, token, error, delayMs) => retryUncounted(db, event, token, error, delayMs),
    deadLetter: (event, token, error) => moveToDeadLetters(db, event, token, error),
    release: (ids, token) => releaseEvents(db, ids, token),
  };
}
