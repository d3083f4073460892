// Connection pools, one per role, so a role's sessions can be found (and killed) by name.
import pg from 'pg';
import type { Logger } from '../log/logger.ts';

export type Pool = pg.Pool;
export type Client = pg.PoolClient;
/** Anything queries can run on: a pool (autocommit) or a client inside a transaction. */
export type Queryable = pg.Pool | pg.PoolClient;

export interface PoolOptions {
  url: string;
  /** Shows up in pg_stat_activity.application_name, e.g. "outbox-demo:relay". */
  applicationName: string;
  max: number;
  connectionTimeoutMs: number;
  /**
   * Commit without waiting for the WAL flush (synchronous_commit=off) on this pool's sessions.
   * Only for writes whose loss in a crash is harmless: a crash can forget the last fraction
   * of a second of them, never reorder or half-apply them.
   */
  asyncCommit?: boolean;
  /**
   * Plan every statement for the tables as they are now (plan_cache_mode=force_custom_plan),
   * prepared ones included. For statements on a table that swings between empty and a large
   * backlog, as the outbox does: PostgreSQL may keep one generic plan for a prepared statement,
   * and one made while the table was empty scans it, every row against every row, until the
   * table is analysed again. Parsing is still saved; planning is paid on every execution.
   */
  customPlans?: boolean;
  /**
   * Ends a statement that runs longer than this, and a session left idle inside a transaction
   * this long (a stalled process holding row locks). 0 or unset: no limit.
   */
  statementTimeoutMs?: number;
  /**
   * Connections kept open while idle (default 0: every idle one closes after 30 s). A role that
   * must answer at once after a quiet spell keeps its usual number open: see warmPool().
   */
  min?: number;
}

/** Settings passed at connection start (libpq's `options`): none unless a role asks for them. */
function sessionSettings(options: PoolOptions): { options?: string } {
  const settings = [
    ...(options.asyncCommit ? ['-c synchronous_commit=off'] : []),
    ...(options.customPlans ? ['-c plan_cache_mode=force_custom_plan'] : []),
  ];
  return settings.length > 0 ? { options: settings.join(' ') } : {};
}

/** How much longer than the statement timeout the client waits for an answer itself. */
export const QUERY_TIMEOUT_MARGIN_MS = 2_000;

export function createPool(options: PoolOptions, logger: Logger): Pool {
  const pool = new pg.Pool({
    connectionString: options.url,
    application_name: options.applicationName,
    max: options.max,
    min: options.min ?? 0,
    // A connection wait must end with a clear error rather than hang forever.
    connectionTimeoutMillis: options.connectionTimeoutMs,
    idleTimeoutMillis: 30_000,
    // A server that vanished without closing the connection (a dropped network, a frozen
    // host) is noticed by TCP keepalive instead of never.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    ...sessionSettings(options),
    ...(options.statementTimeoutMs
      ? {
          statement_timeout: options.statementTimeoutMs,
          idle_in_transaction_session_timeout: options.statementTimeoutMs,
          // PostgreSQL ends a slow statement itself; a backend that cannot answer at all (frozen,
          // unreachable) would not, so the client gives up a little later, and the connection
          // is thrown away (see isQueryTimeout) rather than reused.
          query_timeout: options.statementTimeoutMs + QUERY_TIMEOUT_MARGIN_MS,
        }
      : {}),
  });
  // An idle client losing its server (restart, pg_terminate_backend) must not crash the process.
  pool.on('error', (error) => logger.warn(`idle connection lost (${options.applicationName}): ${error.message}`));
  // Nor may a checked-out one: between two queries it has no listener of the pool's, and an
  // unheard 'error' event kills the process. Its next query fails, and that is handled.
  pool.on('connect', (client) => {
    client.on('error', (error) => logger.debug(`connection lost (${options.applicationName}): ${error.message}`));
  });
  return pool;
}

/**
 * Opens up to `count` connections now, all at once, and returns them to the pool idle: what the
 * first requests after a start would otherwise pay, one by one and in their own time (a new
 * session is a TCP connection, a password exchange and a backend process that has yet to load
 * the catalog). Never throws: a database that is away now is the callers' usual retry path.
 * Resolves with how many connections were opened.
 */
export async function warmPool(pool: Pool, count: number): Promise<number> {
  const clients = await Promise.all(
    Array.from({ length: count }, () => pool.connect().catch(() => undefined)),
  );
  let opened = 0;
  for (const client of clients) {
    if (!client) continue;
    opened += 1;
    client.release();
  }
  return opened;
}

/**
 * The client gave up waiting for the server (query_timeout): the connection is in an unknown
 * state and must be discarded, not rolled back (a ROLLBACK would wait just as long).
 */
export function isQueryTimeout(error: unknown): boolean {
  return error instanceof Error && error.message === 'Query read timeout';
}

/** Sessions on the current database whose application_name is `applicationName`, other than ours. */
export async function countOtherSessions(db: Queryable, applicationName: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE datname = current_database() AND application_name = $1 AND pid <> pg_backend_pid()`,
    [applicationName],
  );
  return rows[0]!.n;
}

/**
 * Ends the pool and waits until every connection has really closed. pg's `pool.end()`
 * resolves before its clients finish disconnecting, and stopping the database in that gap
 * makes each of them report a lost connection.
 */
export async function closePool(pool: Pool): Promise<void> {
  const open = pool.totalCount;
  let removed = 0;
  const allClosed = new Promise<void>((resolve) => {
    if (open === 0) resolve();
    pool.on('remove', () => {
      removed += 1;
      if (removed >= open) resolve();
    });
  });
  await pool.end().catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  const giveUp = new Promise<void>((resolve) => (timer = setTimeout(resolve, 2_000)));
  await Promise.race([allClosed, giveUp]);
  clearTimeout(timer);
}
