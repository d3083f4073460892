// Wiring for `npm run replay`: open the same database the server uses (attaching to a running
// embedded PostgreSQL), find out whether a server is relaying it, run the replay, close.
import { createApiClient } from '../client/api-client.ts';
import type { Config } from '../config/config.ts';
import { openInventoryDatabaseServer } from '../db/database.ts';
import { StartupError } from '../errors/errors.ts';
import type { Pool } from '../db/pool.ts';
import { createInventoryConsumer, type InventoryConsumer } from '../inventory/consumer.ts';
import type { Logger } from '../log/logger.ts';
import { purgeOldDeadLetters, type PurgeResult } from '../replay/purge.ts';
import { redriveAndDeliver, type RedriveResult } from '../replay/redrive.ts';
import { redriveOverBroker, type BrokerRedriveResult } from '../replay/broker-redrive.ts';
import { runBrokerReplay, type BrokerReplayResult } from '../replay/broker-replay.ts';
import { runReplay, type ReplayOptions, type ReplayResult } from '../replay/replay.ts';
import { createNatsPublisher } from '../transport/nats.ts';
import { INVENTORY_STREAM, ORDERS_STREAM } from '../transport/nats-streams.ts';
import { inventoryBacklog, openBroker } from './broker.ts';
import { connectDatabase, urlHost } from './wiring.ts';

/** `--dead-letters`: re-drive dead letters into the outbox and wait for their delivery. */
export function redriveDeadLettersAndWait(
  config: Config,
  options: { messageIds: string[]; waitTimeoutMs: number; serverUrl: string },
  logger: Logger,
): Promise<RedriveResult | BrokerRedriveResult> {
  if (config.transport === 'nats') return redriveBothServices(config, options.messageIds, logger);
  return withReplayDeps(config, options.serverUrl, logger, (deps) =>
    redriveAndDeliver(options.messageIds, options.waitTimeoutMs, { ...deps, maxAttempts: config.maxAttempts }),
  );
}

/**
 * TRANSPORT=nats: both services' dead letters, each in its own database; what they received
 * goes back to the stream it came from (the services need not be running: the broker keeps it).
 */
async function redriveBothServices(config: Config, messageIds: string[], logger: Logger): Promise<BrokerRedriveResult> {
  const orders = await connectDatabase(config, logger, 'replay', 2);
  try {
    const inventory = await connectDatabase(config, logger, 'replay', 2, openInventoryDatabaseServer);
    try {
      const broker = await openBroker(config, logger, 'replay');
      const toOrders = createNatsPublisher(broker.nc, { stream: ORDERS_STREAM, timeoutMs: config.broker.publishTimeoutMs });
      const toInventory = createNatsPublisher(broker.nc, { stream: INVENTORY_STREAM, timeoutMs: config.broker.publishTimeoutMs });
      try {
        return await redriveOverBroker(
          [
            { service: 'order service', pool: orders.pool, receivedFrom: INVENTORY_STREAM.name, publisher: toInventory },
            { service: 'inventory service', pool: inventory.pool, receivedFrom: ORDERS_STREAM.name, publisher: toOrders },
          ],
          messageIds,
          logger,
        );
      } finally {
        await Promise.all([toOrders.close(), toInventory.close()]);
        await broker.close();
      }
    } finally {
      await inventory.close();
    }
  } finally {
    await orders.close();
  }
}

/** `--dead-letters --purge --older-than <duration>`: delete old dead letters, report each. */
export async function purgeDeadLettersOlderThan(config: Config, olderThanMs: number, logger: Logger): Promise<PurgeResult> {
  const purgeIn = async (open?: typeof openInventoryDatabaseServer) => {
    const db = await connectDatabase(config, logger, 'replay', 1, open);
    try {
      return await purgeOldDeadLetters(db.pool, olderThanMs, logger);
    } finally {
      await db.close();
    }
  };
  const orders = await purgeIn();
  // TRANSPORT=nats: the inventory service keeps dead letters of its own, in its own database.
  if (config.transport !== 'nats') return orders;
  const inventory = await purgeIn(openInventoryDatabaseServer);
  return { olderThanMs, purged: [...orders.purged, ...inventory.purged] };
}

export function replayDuplicates(
  config: Config, options: ReplayOptions & { serverUrl: string }, logger: Logger,
): Promise<ReplayResult | BrokerReplayResult> {
  if (config.transport === 'nats') return replayOverBroker(config, options, logger);
  return withReplayDeps(config, options.serverUrl, logger, (deps) => runReplay(options, deps));
}

/**
 * TRANSPORT=nats: copies from the inventory's inbox, republished to ORDERS over the broker the
 * services use. The inventory service must be running: it is the one that skips them.
 */
async function replayOverBroker(config: Config, options: ReplayOptions, logger: Logger): Promise<BrokerReplayResult> {
  if (options.fresh) throw new StartupError('REFUSED', '--fresh is for TRANSPORT=in-process; over NATS, place orders first (npm run stress -- --transport nats)');
  const inventoryUrl = `http://${urlHost(config.host)}:${config.broker.inventoryPort}`;
  const up = await fetch(`${inventoryUrl}/health/live`, { signal: AbortSignal.timeout(5_000) }).then((r) => r.ok, () => false);
  if (!up) {
    throw new StartupError('REFUSED', `the inventory service does not answer on ${inventoryUrl}: start it with \`TRANSPORT=nats npm run inventory\` (it skips the copies), or set INVENTORY_PORT`);
  }
  const db = await connectDatabase(config, logger, 'replay', 2, openInventoryDatabaseServer);
  try {
    const broker = await openBroker(config, logger, 'replay');
    const publisher = createNatsPublisher(broker.nc, { stream: ORDERS_STREAM, timeoutMs: config.broker.publishTimeoutMs });
    try {
      return await runBrokerReplay(options, { inventoryPool: db.pool, publisher, consumerBacklog: () => inventoryBacklog(broker.nc), logger });
    } finally {
      await publisher.close();
      await broker.close();
    }
  } finally {
    await db.close();
  }
}

/** The same database as the server, a consumer on it, and whether a server relays it. */
async function withReplayDeps<T>(
  config: Config,
  serverUrl: string,
  logger: Logger,
  work: (deps: { pool: Pool; consumer: InventoryConsumer; logger: Logger; serverRunning: boolean; leaseMs: number }) => Promise<T>,
): Promise<T> {
  const serverRunning = await createApiClient(serverUrl).health();
  const db = await connectDatabase(config, logger, 'replay', 4);
  try {
    const consumer = createInventoryConsumer({ pool: db.pool, logger });
    return await work({ pool: db.pool, consumer, logger, serverRunning, leaseMs: config.leaseMs });
  } finally {
    await db.close();
  }
}
