// Applies migrations/NNNN_name.sql in order, each once, under an advisory lock so two
// processes starting together do not race.
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../log/logger.ts';
import type { Pool } from './pool.ts';
import { withTransaction } from './transaction.ts';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

// Any constant works; it only has to be the same in every process of this app.
const MIGRATION_LOCK_KEY = 4_242_001;

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export async function readMigrations(dir: string = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await fs.readdir(dir)).filter((file) => /^\d{4}_[\w-]+\.sql$/.test(file)).sort();
  return Promise.all(
    files.map(async (file) => ({
      version: Number(file.slice(0, 4)),
      name: file.replace(/\.sql$/, ''),
      sql: await fs.readFile(path.join(dir, file), 'utf8'),
    })),
  );
}

/** Applies pending migrations; returns the names applied by this call. */
export async function migrate(pool: Pool, logger: Logger, dir: string = MIGRATIONS_DIR): Promise<string[]> {
  const migrations = await readMigrations(dir);
  // A transaction-scoped lock: released by COMMIT/ROLLBACK even if this process dies.
  return withTransaction(pool, async (client) => {
    // Waiting for another process's migrations, or running a long one, is not a stuck query.
    await client.query(`SET LOCAL statement_timeout = 0`);
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const { rows } = await client.query<{ version: number }>('SELECT version FROM schema_migrations');
    const done = new Set(rows.map((row) => row.version));
    const applied: string[] = [];
    for (const migration of migrations) {
      if (done.has(migration.version)) continue;
      await client.query(migration.sql);
      await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [
        migration.version,
        migration.name,
      ]);
      logger.info(`applied migration ${migration.name}`);
      applied.push(migration.name);
    }
    return applied;
  });
}
