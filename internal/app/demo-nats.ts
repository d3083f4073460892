// `npm run demo -- --transport nats`: the same lesson with a real broker between two services.
// Everything runs in this one process (the local nats-server is a child it starts): the order
// service and the inventory service are the same startServer / startInventoryService that
// `npm start` and `npm run inventory` run, each on its own database; only NATS connects them.
// One process means one Ctrl-C and one place that stops everything, like the in-process demo.
import { Chalk } from 'chalk';
import { jetstreamManager } from '@nats-io/jetstream';
import { createApiClient } from '../client/api-client.ts';
import type { Config } from '../config/config.ts';
import { openInventoryDatabaseServer } from '../db/database.ts';
import { countOtherSessions, type Pool } from '../db/pool.ts';
import { StartupError } from '../errors/errors.ts';
import { SEED_STOCK } from '../inventory/stock.ts';
import type { Logger } from '../log/logger.ts';
import { openNatsServer, type NatsServerHandle } from '../nats/server.ts';
import { runBrokerReplay } from '../replay/broker-replay.ts';
import { formatBrokerReplayReport } from '../replay/report.ts';
import { formatStressReport } from '../stress/report.ts';
import { runStressTest } from '../stress/stress.ts';
import { connectNats, createNatsPublisher } from '../transport/nats.ts';
import { INVENTORY_STREAM, ORDERS_STREAM } from '../transport/nats-streams.ts';
import { inventoryBacklog } from './broker.ts';
import type { DemoOptions, DemoResult } from './demo.ts';
import { startInventoryService, type RunningInventoryService } from './inventory-service.ts';
import { refuseToWipeUnlessConfirmed, resetDemoData } from './reset.ts';
import { inventorySide } from './stress.ts';
import { connectDatabase, startServer, type Database, type RunningServer } from './wiring.ts';

export async function runNatsDemo(config: Config, options: DemoOptions, logger: Logger): Promise<DemoResult> {
  const c = new Chalk({ level: options.color ? 2 : 0 });
  const heading = (text: string) => options.print(`\n${c.bold.inverse(` ${text} `)}`);
  const log = logger.child('Demo');
  const result: DemoResult = { stress: null, replay: null, ok: false };
  // Somebody else's databases or broker are wiped only with --yes.
  refuseToWipeUnlessConfirmed(config, options.yes ?? false, 'npm run demo');
  refuseToWipeUnlessConfirmed({ databaseUrl: config.broker.inventoryDatabaseUrl }, options.yes ?? false, 'npm run demo');
  if (config.broker.natsUrl !== undefined && !options.yes) {
    throw new StartupError('CONFIRMATION_REQUIRED', 'NATS_URL is set: npm run demo would delete the ORDERS and INVENTORY streams there — pass --yes to go ahead');
  }

  heading('1/4 Start: PostgreSQL (two databases), nats-server, fresh demo data, the order and inventory services');
  const stops: Array<() => Promise<unknown>> = [];
  const stopAll = async () => {
    for (const stop of stops.splice(0).reverse()) await stop().catch((error: unknown) => log.warn(`while stopping: ${String(error)}`));
    log.info('stopped everything');
  };
  try {
    const nats: NatsServerHandle = await openNatsServer({ natsUrl: config.broker.natsUrl, port: config.broker.natsPort, dataDir: config.dataDir }, logger.child('NATS'));
    stops.push(() => nats.close());
    const orderDb: Database = await connectDatabase(config, logger, 'demo', 4);
    stops.push(() => orderDb.close());
    const inventoryDb: Database = await connectDatabase(config, logger, 'demo', 2, openInventoryDatabaseServer);
    stops.push(() => inventoryDb.close());
    await refuseIfRunning(orderDb.pool, inventoryDb.pool);
    await resetDemoData(orderDb.pool);
    await resetDemoData(inventoryDb.pool);
    const nc = await connectNats(nats.url, 'demo', logger);
    stops.push(() => nc.close());
    await deleteStreams(nc);
    log.info(`demo data reset in both databases (${SEED_STOCK} of every product in the inventory's); streams emptied on ${nats.url}`);

    const inventory: RunningInventoryService = await startInventoryService(config, logger);
    stops.push(() => inventory.close());
    const orders: RunningServer = await startServer(config, logger);
    stops.push(() => orders.close());
    if (options.signal?.aborted) return result;

    heading(`2/4 Stress: ${options.orders} orders at once through POST /orders, over NATS JetStream`);
    result.stress = await runStressTest(
      { orders: options.orders, concurrency: options.concurrency, quantity: 1, productIds: [], wait: true, waitTimeoutMs: 60_000, userId: 'demo' },
      { client: createApiClient(orders.url), inventory: inventorySide(inventoryDb.pool), signal: options.signal, onPhase: (m) => log.info(m) },
    );
    heading('3/4 The drain: who published, who consumed, and the invariant');
    options.print(formatStressReport(result.stress, options.color));
    if (options.signal?.aborted) return result;

    heading(`4/4 Replay: ${options.replays} processed messages republished, same and new JetStream message id`);
    const publisher = createNatsPublisher(nc, { stream: ORDERS_STREAM, timeoutMs: config.broker.publishTimeoutMs });
    try {
      result.replay = await runBrokerReplay(
        { count: options.replays, messageIds: [], waitTimeoutMs: 15_000 },
        { inventoryPool: inventoryDb.pool, publisher, consumerBacklog: () => inventoryBacklog(nc), logger },
      );
    } finally {
      await publisher.close();
    }
    options.print(formatBrokerReplayReport(result.replay, options.color));

    result.ok = result.stress.ok && result.replay.ok;
    options.print(
      result.ok
        ? `\n${c.green.bold('✓ Verdict: every order accepted was settled by the inventory\'s reply, stock in its own database matches the confirmed orders, both outboxes are empty, the broker dropped the copies it could recognise and the inbox skipped the rest.')}`
        : `\n${c.red.bold('✗ Verdict: an invariant did not hold; see the reports above.')}`,
    );
    return result;
  } finally {
    await stopAll();
  }
}

async function refuseIfRunning(orderPool: Pool, inventoryPool: Pool): Promise<void> {
  const others = (await countOtherSessions(orderPool, 'outbox-demo:relay')) + (await countOtherSessions(inventoryPool, 'outbox-demo:inventory'));
  if (others > 0) {
    throw new StartupError(
      'REFUSED',
      'another outbox-demo order or inventory service is using these databases; stop it first (the demo resets the data), ' +
        'or give the demo its own: DATA_DIR=.data-demo NATS_PORT=4223 npm run demo -- --transport nats',
    );
  }
}

/**
 * Messages left in the streams by an earlier run would reach the fresh inventory and move its
 * stock: the demo starts with no streams; the services create them again.
 */
async function deleteStreams(nc: Parameters<typeof jetstreamManager>[0]): Promise<void> {
  const jsm = await jetstreamManager(nc);
  for (const name of [ORDERS_STREAM.name, INVENTORY_STREAM.name]) {
    await jsm.streams.delete(name).catch((error: unknown) => {
      if (!/not found/i.test(String((error as Error).message))) throw error;
    });
  }
}
