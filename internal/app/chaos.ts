// Wiring for `npm run chaos`: a PostgreSQL of its own (a temporary embedded one unless
// DATABASE_URL, which it resets), the chaos run, and a clean teardown. With --transport nats
// also the inventory's database beside it and a nats-server of its own (it restarts it).
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Config, TransportMode } from '../config/config.ts';
import { createDatabaseIfMissing, openInventoryDatabaseServer, redact } from '../db/database.ts';
import { ensureEmbeddedPostgres, stopEmbeddedPostgres } from '../db/embedded.ts';
import { migrate } from '../db/migrate.ts';
import { closePool, createPool } from '../db/pool.ts';
import { StartupError } from '../errors/errors.ts';
import type { Logger } from '../log/logger.ts';
import { runChaos, type ChaosDatabase, type ChaosOptions, type ChaosResult } from '../chaos/chaos.ts';
import { runNatsChaos } from '../chaos/nats-chaos.ts';
import { openNatsServer, stopLocalNatsServer } from '../nats/server.ts';
import { freePort } from '../net/free-port.ts';
import { refuseToWipeUnlessConfirmed, resetDemoData } from './reset.ts';

export interface ChaosRunOptions extends ChaosOptions {
  /** May wipe the database in DATABASE_URL (and INVENTORY_DATABASE_URL); without them it uses temporary ones. */
  yes?: boolean;
  /** Default in-process: the server alone. nats: both services and a nats-server. */
  transport?: TransportMode;
  /** nats: SIGKILLs of the inventory service (default: as many as `kills`). */
  inventoryKills?: number;
  /** nats: restarts of nats-server (default 1). */
  brokerRestarts?: number;
}

export async function chaosRun(config: Config, options: ChaosRunOptions, logger: Logger, signal?: AbortSignal): Promise<ChaosResult> {
  refuseToWipeUnlessConfirmed(config, options.yes ?? false, 'npm run chaos');
  const nats = options.transport === 'nats';
  if (!nats && (options.inventoryKills || options.brokerRestarts)) {
    throw new StartupError('REFUSED', '--inventory-kills and --broker-restarts need --transport nats: in-process there is no inventory service and no broker');
  }
  if (nats) refuseForeignBroker(config, options.yes ?? false);
  const dbLog = logger.child('DB');
  let teardown = async () => {};
  let url = config.databaseUrl;
  let restart: ChaosDatabase['restart'];
  if (!url) {
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'outbox-chaos-'));
    await fs.chmod(dataDir, 0o755);
    const port = await freePort();
    const embedded = await ensureEmbeddedPostgres(dataDir, port, dbLog);
    await createDatabaseIfMissing(embedded.adminUrl, 'outbox_chaos');
    url = embedded.adminUrl.replace(/\/postgres$/, '/outbox_chaos');
    restart = async (downMs) => {
      await stopEmbeddedPostgres(dataDir);
      await new Promise((resolve) => setTimeout(resolve, downMs));
      await ensureEmbeddedPostgres(dataDir, port, dbLog);
    };
    teardown = async () => {
      await stopEmbeddedPostgres(dataDir);
      await fs.rm(dataDir, { recursive: true, force: true });
    };
  } else if (options.dbRestarts > 0) {
    throw new StartupError('REFUSED', '--db-restarts needs the embedded PostgreSQL (unset DATABASE_URL): chaos can only restart a server it runs');
  }

  const pool = createPool({ url, applicationName: 'outbox-demo:chaos', max: 4, connectionTimeoutMs: config.connectionTimeoutMs }, dbLog);
  try {
    await migrate(pool, dbLog);
    await resetDemoData(pool);
    if (nats) return await natsChaosRun(config, options, { url, pool, restart }, logger, signal);
    return await runChaos(options, { database: { url, pool, restart }, port: await freePort(), logger, signal });
  } finally {
    await closePool(pool);
    await teardown();
  }
}

/**
 * The chaos run restarts the broker, so it runs its own; the inventory's database is wiped
 * like the order database, so someone's INVENTORY_DATABASE_URL needs --yes too.
 */
function refuseForeignBroker(config: Config, confirmed: boolean): void {
  if (config.broker.natsUrl) {
    throw new StartupError('REFUSED', 'NATS_URL is set: npm run chaos -- --transport nats runs (and restarts) a nats-server of its own — unset NATS_URL');
  }
  if (config.broker.inventoryDatabaseUrl && !confirmed) {
    throw new StartupError(
      'CONFIRMATION_REQUIRED',
      `INVENTORY_DATABASE_URL is set: npm run chaos would delete every outbox event, dead letter and processed message in ` +
        `${redact(config.broker.inventoryDatabaseUrl)} and restock it — pass --yes to go ahead`,
    );
  }
}

/** The inventory's database beside the order database, a nats-server on a temporary store, then the run. */
async function natsChaosRun(
  config: Config, options: ChaosRunOptions, database: ChaosDatabase, logger: Logger, signal?: AbortSignal,
): Promise<ChaosResult> {
  const dbLog = logger.child('DB');
  const natsLog = logger.child('NATS');
  // `<order database>_inventory` on the same server, unless INVENTORY_DATABASE_URL.
  const inventoryServer = await openInventoryDatabaseServer({ databaseUrl: database.url, dataDir: '', embeddedPgPort: 0, broker: config.broker }, dbLog);
  const inventoryPool = createPool(
    { url: inventoryServer.url, applicationName: 'outbox-demo:chaos', max: 4, connectionTimeoutMs: config.connectionTimeoutMs }, dbLog,
  );
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'outbox-chaos-nats-'));
  const natsOptions = { port: await freePort(), dataDir };
  try {
    await migrate(inventoryPool, dbLog);
    await resetDemoData(inventoryPool);
    const server = await openNatsServer(natsOptions, natsLog);
    const broker = {
      url: server.url,
      async restart(downMs: number) {
        await stopLocalNatsServer(dataDir, natsLog);
        await new Promise((resolve) => setTimeout(resolve, downMs));
        await openNatsServer(natsOptions, natsLog);
      },
    };
    return await runNatsChaos(
      { ...options, inventoryKills: options.inventoryKills ?? options.kills, brokerRestarts: options.brokerRestarts ?? 1 },
      {
        database, inventoryDatabase: { url: inventoryServer.url, pool: inventoryPool }, broker,
        port: await freePort(), inventoryPort: await freePort(), dataDir, logger, signal,
      },
    );
  } finally {
    await closePool(inventoryPool);
    await stopLocalNatsServer(dataDir, natsLog);
    await fs.rm(dataDir, { recursive: true, force: true });
  }
}
