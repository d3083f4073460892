// Chooses the database: DATABASE_URL when given, otherwise the embedded PostgreSQL.
import pg from 'pg';
import type { Config } from '../config/config.ts';
import type { Logger } from '../log/logger.ts';
import { ensureEmbeddedPostgres } from './embedded.ts';

export const EMBEDDED_DATABASE_NAME = 'outbox_demo';
/** The inventory service's own database (TRANSPORT=nats), beside the order service's. */
export const INVENTORY_DATABASE_SUFFIX = '_inventory';

export interface DatabaseServer {
  /** Connection string for the application's database. */
  url: string;
  /** "embedded" or "external": said in logs so users know which one they got. */
  kind: 'embedded' | 'external';
  /** Stops the embedded server if this process started it; a no-op otherwise. */
  close(): Promise<void>;
}

export async function openDatabaseServer(config: Pick<Config, 'databaseUrl' | 'dataDir' | 'embeddedPgPort'>, logger: Logger): Promise<DatabaseServer> {
  if (config.databaseUrl) {
    logger.info(`using DATABASE_URL (${redact(config.databaseUrl)})`);
    return { url: config.databaseUrl, kind: 'external', close: async () => {} };
  }
  const embedded = await ensureEmbeddedPostgres(config.dataDir, config.embeddedPgPort, logger);
  try {
    await createDatabaseIfMissing(embedded.adminUrl, EMBEDDED_DATABASE_NAME);
  } catch (error) {
    await embedded.stop(); // only if this process started it
    throw error;
  }
  const url = new URL(embedded.adminUrl);
  url.pathname = `/${EMBEDDED_DATABASE_NAME}`;
  return { url: url.toString(), kind: 'embedded', close: () => embedded.stop() };
}

/**
 * The inventory service's database: INVENTORY_DATABASE_URL when given; otherwise a database of
 * its own on the order service's server (`outbox_demo_inventory` in the embedded one, or
 * `<name>_inventory` beside DATABASE_URL's), created when missing. Two databases on one server
 * share nothing but the machine: neither service can read the other's tables.
 */
export async function openInventoryDatabaseServer(
  config: Pick<Config, 'databaseUrl' | 'dataDir' | 'embeddedPgPort' | 'broker'>,
  logger: Logger,
): Promise<DatabaseServer> {
  if (config.broker.inventoryDatabaseUrl) {
    logger.info(`using INVENTORY_DATABASE_URL (${redact(config.broker.inventoryDatabaseUrl)})`);
    return { url: config.broker.inventoryDatabaseUrl, kind: 'external', close: async () => {} };
  }
  const orders = await openDatabaseServer(config, logger);
  const url = new URL(orders.url);
  const name = `${decodeURIComponent(url.pathname.slice(1)) || EMBEDDED_DATABASE_NAME}${INVENTORY_DATABASE_SUFFIX}`;
  try {
    await createDatabaseIfMissing(orders.url, name);
  } catch (error) {
    await orders.close();
    throw error;
  }
  url.pathname = `/${encodeURIComponent(name)}`;
  return { url: url.toString(), kind: orders.kind, close: () => orders.close() };
}

/** CREATE DATABASE, tolerating a concurrent creator. */
export async function createDatabaseIfMissing(adminUrl: string, name: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (rowCount) return;
    await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
  } catch (error) {
    // 42P04 duplicate_database, 23505 unique_violation: another process created it just now.
    const code = (error as { code?: string }).code;
    if (code !== '42P04' && code !== '23505') throw error;
  } finally {
    await client.end();
  }
}

export function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '<unparseable DATABASE_URL>';
  }
}
