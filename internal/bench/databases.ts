// Every measurement gets a fresh database: a copy of a migrated template, so no run inherits
// another's dead tuples, history or autovacuum debt. The server is an embedded PostgreSQL in a
// temporary folder (default) or the one in DATABASE_URL (where we may create databases).
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { createDatabaseIfMissing } from '../db/database.ts';
import { ensureEmbeddedPostgres } from '../db/embedded.ts';
import { migrate } from '../db/migrate.ts';
import { closePool, createPool, type Pool } from '../db/pool.ts';
import type { Logger } from '../log/logger.ts';
import { freePort } from '../testkit/ports.ts';


export interface FreshDatabase {
  url: string;
  /** A small pool for setup and checks (the measured parts bring their own). */
  pool: Pool;
  drop(): Promise<void>;
}

export interface BenchDatabases {
  /** "embedded PostgreSQL 17 in a temporary folder" or "DATABASE_URL's server". */
  description: string;
  fresh(label: string): Promise<FreshDatabase>;
  close(): Promise<void>;
}

export async function openBenchDatabases(databaseUrl: string | undefined, logger: Logger): Promise<BenchDatabases> {
  let adminUrl: string;
  let stop = async () => {};
  let description: string;
  if (databaseUrl) {
    adminUrl = databaseUrl;
    description = "DATABASE_URL's server";
  } else {
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'outbox-bench-pg-'));
    await fs.chmod(dataDir, 0o755);
    const embedded = await ensureEmbeddedPostgres(dataDir, await freePort(), logger);
    adminUrl = embedded.adminUrl;
    description = 'embedded PostgreSQL in a temporary folder';
    stop = async () => {
      await embedded.stop();
      await fs.rm(dataDir, { recursive: true, force: true });
    };
  }
  const urlOf = (name: string) => {
    const url = new URL(adminUrl);
    url.pathname = `/${name}`;
    return url.toString();
  };

  // Named per process, so two benchmarks on one DATABASE_URL server keep out of each other's way.
  const TEMPLATE = `outbox_bench_${process.pid}_template`;
  await createDatabaseIfMissing(adminUrl, TEMPLATE);
  const templatePool = createPool({ url: urlOf(TEMPLATE), applicationName: 'outbox-bench', max: 1, connectionTimeoutMs: 10_000 }, logger);
  await migrate(templatePool, logger);
  await closePool(templatePool);

  const created = new Set<string>();
  let counter = 0;
  return {
    description,
    async fresh(label) {
      counter += 1;
      const name = `outbox_bench_${process.pid}_${counter}_${label.replace(/\W+/g, '_')}`.slice(0, 63);
      await admin(adminUrl, `CREATE DATABASE ${name} TEMPLATE ${TEMPLATE}`);
      created.add(name);
      const url = urlOf(name);
      const pool = createPool({ url, applicationName: 'outbox-bench', max: 4, connectionTimeoutMs: 10_000 }, logger);
      return {
        url,
        pool,
        async drop() {
          await closePool(pool);
          await admin(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
          created.delete(name);
        },
      };
    },
    async close() {
      for (const name of created) await admin(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
      await admin(adminUrl, `DROP DATABASE IF EXISTS ${TEMPLATE} WITH (FORCE)`).catch(() => undefined);
      await stop();
    },
  };
}

/** Names here are ours (a fixed prefix, a counter and a sanitised label), never user input. */
async function admin(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}
