// Wiring for `npm run stress`: in-process it needs only the Order API; over NATS the stock is
// in the inventory service's own database, so the stress test (a verifier, not a service)
// opens that database to read stock, the inventory's inbox and its reply outbox.
import { ServerUnreachableError, type ApiClient } from '../client/api-client.ts';
import type { Config, TransportMode } from '../config/config.ts';
import { openInventoryDatabaseServer } from '../db/database.ts';
import type { Logger } from '../log/logger.ts';
import { readInventoryStats } from '../stats/inventory.ts';
import { runStressTest, type InventorySide, type StressDeps, type StressOptions, type StressResult } from '../stress/stress.ts';
import { connectDatabase } from './wiring.ts';

export async function stressTest(
  config: Config,
  transport: TransportMode,
  options: StressOptions,
  deps: Omit<StressDeps, 'inventory'>,
  logger: Logger,
): Promise<StressResult> {
  if (transport === 'in-process') return runStressTest(options, deps);
  // Asked first, so a stress test with nothing running does not start an embedded PostgreSQL.
  await ensureReachable(deps.client);
  const db = await connectDatabase(config, logger, 'stress', 2, openInventoryDatabaseServer);
  try {
    return await runStressTest(options, { ...deps, inventory: inventorySide(db.pool) });
  } finally {
    await db.close();
  }
}

/** The inventory service's numbers, read from its database (the same ones its GET /stats shows). */
export function inventorySide(pool: Parameters<typeof readInventoryStats>[0]): InventorySide {
  return {
    async read() {
      const stats = await readInventoryStats(pool);
      return {
        stock: Object.fromEntries(stats.products.map((p) => [p.id, p.stock])),
        handledBy: stats.consumed.deliveriesBy,
        duplicatesSkipped: stats.consumed.duplicatesSkipped,
        replyOutbox: stats.replyOutbox.pending,
        cancellationsApplied: stats.consumed.processed.cancelled,
      };
    },
  };
}

async function ensureReachable(client: ApiClient): Promise<void> {
  if (!(await client.health())) throw new ServerUnreachableError(client.baseUrl, {});
}
