// Wiring for `npm run chaos`: a PostgreSQL of its own (a temporary embedded one unless
// DATABASE_URL, which it resets), the chaos run, and a clean teardown.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Config } from '../config/config.ts';
import { createDatabaseIfMissing } from '../db/database.ts';
import { ensureEmbeddedPostgres, stopEmbeddedPostgres } from '../db/embedded.ts';
import { migrate } from '../db/migrate.ts';
import { closePool, createPool } from '../db/pool.ts';
import { StartupError } from '../errors/errors.ts';
import type { Logger } from '../log/logger.ts';
import { runChaos, type ChaosDatabase, type ChaosOptions, type ChaosResult } from '../chaos/chaos.ts';
import { freePort } from '../net/free-port.ts';
import { refuseToWipeUnlessConfirmed, resetDemoData } from './reset.ts';

/** `options.yes`: may wipe the database in DATABASE_URL (without DATABASE_URL it uses a temporary one). */
export async function chaosRun(
  config: Config,
  options: ChaosOptions & { yes?: boolean },
  logger: Logger,
  signal?: AbortSignal,
): Promise<ChaosResult> {
  refuseToWipeUnlessConfirmed(config, options.yes ?? false, 'npm run chaos');
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
    return await runChaos(options, { database: { url, pool, restart }, port: await freePort(), logger, signal });
  } finally {
    await closePool(pool);
    await teardown();
  }
}
