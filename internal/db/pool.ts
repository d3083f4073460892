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
}

export function createPool(options: PoolOptions, logger: Logger): Pool {
  const pool = new pg.Pool({
    connectionString: options.url,
    application_name: options.applicationName,
    max: options.max,
    // A connection wait must end with a clear error rather than hang forever.
    connectionTimeoutMillis: options.connectionTimeoutMs,
    idleTimeoutMillis: 30_000,
  });
  // An idle client losing its server (restart, pg_terminate_backend) must not crash the process.
  pool.on('error', (error) => logger.warn(`idle connection lost (${options.applicationName}): ${error.message}`));
  return pool;
}
