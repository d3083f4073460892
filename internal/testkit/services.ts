// Both services of TRANSPORT=nats in this test process: the order service (API, relay, reply
// subscriber) on one test database and the inventory service on another, over a real
// nats-server the caller started. Each gets a free port; logs are silent.
import { startInventoryService, type RunningInventoryService } from '../app/inventory-service.ts';
import { startServer, type RunningServer } from '../app/wiring.ts';
import { loadConfig, type Config } from '../config/config.ts';
import { createSilentLogger, type Logger } from '../log/logger.ts';
import type { Tracing } from '../tracing/tracing.ts';
import type { TestDatabase } from './database.ts';

export interface TestServices {
  orders: RunningServer;
  inventory: RunningInventoryService;
  close(): Promise<void>;
}

/** The config both services share in a test: NATS at `natsUrl`, the two test databases. */
export function natsTestConfig(orderDb: TestDatabase, inventoryDb: TestDatabase, natsUrl: string, overrides: Partial<Config> = {}): Config {
  const base = loadConfig({}, {
    databaseUrl: orderDb.url, port: 0, workers: 5, pollIntervalMs: 50, logLevel: 'silent', connectionTimeoutMs: 30_000,
  });
  return loadConfig({}, {
    ...base,
    transport: 'nats',
    broker: { ...base.broker, natsUrl, inventoryDatabaseUrl: inventoryDb.url, inventoryPort: 0 },
    ...overrides,
  });
}

export async function startTestServices(
  orderDb: TestDatabase, inventoryDb: TestDatabase, natsUrl: string,
  overrides: Partial<Config> = {}, logger: Logger = createSilentLogger(),
  tracing: { orders?: Tracing; inventory?: Tracing } = {},
): Promise<TestServices> {
  const config = natsTestConfig(orderDb, inventoryDb, natsUrl, overrides);
  const inventory = await startInventoryService(config, logger, { tracing: tracing.inventory });
  let orders: RunningServer;
  try {
    // The order service reads the inventory's /stats where it really listens (a free port).
    orders = await startServer({ ...config, broker: { ...config.broker, inventoryUrl: inventory.url } }, logger, { tracing: tracing.orders });
  } catch (error) {
    await inventory.close();
    throw error;
  }
  return {
    orders,
    inventory,
    async close() {
      await orders.close();
      await inventory.close();
    },
  };
}
