// Each test file gets its own database: created fresh, migrated, dropped at the end.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import { testAdminDatabaseUrl } from '../config/config.ts';
import { migrate } from '../db/migrate.ts';
import { closePool, createPool, type Pool } from '../db/pool.ts';
import { createSilentLogger } from '../log/logger.ts';

export interface TestDatabase {
  name: string;
  url: string;
  adminUrl: string;
  /** A pool on the test database (closed by drop()). */
  pool: Pool;
  /** Another pool on the same database, e.g. one per simulated process. Closed by drop(). */
  newPool(max?: number, applicationName?: string): Pool;
  drop(): Promise<void>;
}

/** Creates `t_<file>_<random>`, applies migrations unless `migrated` is false. */
export async function createTestDatabase(testFile: string, options: { migrated?: boolean } = {}): Promise<TestDatabase> {
  const adminUrl = testAdminDatabaseUrl();
  const base = path.basename(testFile).replace(/\.test\.ts$/, '').replace(/\W+/g, '_').toLowerCase();
  const name = `t_${base}_${randomBytes(4).toString('hex')}`;
  await admin(adminUrl, (client) => client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`));

  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const pools: Pool[] = [];
  const newPool = (max = 20, applicationName = 'outbox-demo:test') => {
    const pool = createPool({ url: url.toString(), applicationName, max, connectionTimeoutMs: 10_000 }, createSilentLogger());
    pools.push(pool);
    return pool;
  };
  const pool = newPool();
  if (options.migrated !== false) await migrate(pool, createSilentLogger());

  return {
    name,
    url: url.toString(),
    adminUrl,
    pool,
    newPool,
    async drop() {
      await Promise.all(pools.map(closePool));
      await admin(adminUrl, (client) => client.query(`DROP DATABASE IF EXISTS ${client.escapeIdentifier(name)} WITH (FORCE)`));
    },
  };
}

async function admin(url: string, work: (client: pg.Client) => Promise<unknown>): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await work(client);
  } finally {
    await client.end();
  }
}

/** Empties every table the pipeline writes (products keep their rows), for a clean test. */
export async function emptyPipelineTables(db: Pool): Promise<void> {
  await db.query('TRUNCATE idempotency_keys, dead_letters, orders, outbox, processed_messages, skipped_duplicates, consumer_counts, inbox_positions, stock_answers');
}
