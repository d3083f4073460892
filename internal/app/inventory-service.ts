// `npm run inventory` (TRANSPORT=nats): the inventory as a service of its own. Its own
// database; a durable pull consumer on ORDERS whose handler, in ONE transaction, records the
// message in its inbox, reserves or rejects stock and writes the reply to ITS outbox; its own
// relay publishes those replies to INVENTORY. NATS is its only link to the order service.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Config } from '../config/config.ts';
import { openInventoryDatabaseServer } from '../db/database.ts';
import { closePool, createPool } from '../db/pool.ts';
import { createCrashHook, createFailureInjector, type FailureInjector } from '../faults/faults.ts';
import { newSeed, seededRandom } from '../faults/random.ts';
import { serverNames } from '../http/guard.ts';
import { createInventoryHttpApp } from '../http/inventory-app.ts';
import { createInventoryConsumer } from '../inventory/consumer.ts';
import { createInventoryMetrics } from '../metrics/inventory-metrics.ts';
import { cachedRead } from '../stats/cached.ts';
import { readInventoryStats } from '../stats/inventory.ts';
import { writeStockReply } from '../inventory/replies.ts';
import type { Logger } from '../log/logger.ts';
import { createNatsPublisher, createNatsSubscriber } from '../transport/nats.ts';
import { INVENTORY_STREAM, ORDERS_STREAM, subjectFor } from '../transport/nats-streams.ts';
import { traceHandler } from '../tracing/messaging.ts';
import { createTracing, type Tracing } from '../tracing/tracing.ts';
import { observeDeadLetters, observeHandler } from '../transport/observed.ts';
import { deadLetterSink, INVENTORY_CONSUMER, openBroker, retryDelayMs, type Broker } from './broker.ts';
import { startJanitor } from './janitor.ts';
import { startWorkers } from './workers.ts';
import { connectDatabase, listen, urlHost } from './wiring.ts';

export interface RunningInventoryService {
  url: string;
  port: number;
  /** FAIL_RATE of its handler, adjustable while it runs (the lessons, the tests). */
  faults: FailureInjector;
  /** Graceful stop: stop taking messages, finish those in flight, publish nothing more, close. */
  close(): Promise<void>;
}

export const INVENTORY_SERVICE_NAME = 'outbox-demo-inventory';

export interface InventoryServiceOptions {
  /** Spans go here; the caller shuts it down. Default: one built from config.tracing, shut down by close(). */
  tracing?: Tracing;
}

export async function startInventoryService(config: Config, logger: Logger, options: InventoryServiceOptions = {}): Promise<RunningInventoryService> {
  const log = logger.child('Inventory');
  const tracing = options.tracing ?? createTracing(config.tracing, { defaultServiceName: INVENTORY_SERVICE_NAME });
  const { tracer } = tracing;
  const db = await connectDatabase(config, logger, 'inventory-main', 2, openInventoryDatabaseServer);
  const crash = createCrashHook(config.crashAt, () => process.kill(process.pid, 'SIGKILL'), logger);
  const faults = createFailureInjector(config.failRate, seededRandom(config.faultSeed ?? newSeed()));
  const stopAll: Array<() => Promise<unknown>> = [() => db.close()];
  if (!options.tracing) stopAll.unshift(() => tracing.shutdown());
  const closeAll = async () => {
    for (const stop of stopAll.splice(0).reverse()) await stop().catch((error: unknown) => log.warn(`while stopping: ${String(error)}`));
  };
  try {
    const broker: Broker = await openBroker(config, logger, 'inventory-service');
    stopAll.push(() => broker.close());
    // Its relay: the reply outbox → the INVENTORY stream. Worker names "inventory/Worker-N".
    const publisher = createNatsPublisher(broker.nc, { stream: INVENTORY_STREAM, timeoutMs: config.broker.publishTimeoutMs });
    // Its numbers (/stats, /metrics) on their own small pool, one read at a time, briefly cached.
    const readPool = createPool(
      {
        url: db.server.url, applicationName: 'outbox-demo:inventory-reader', max: config.reads.poolSize,
        connectionTimeoutMs: config.connectionTimeoutMs, statementTimeoutMs: config.reads.statementTimeoutMs,
      },
      logger,
    );
    stopAll.push(() => closePool(readPool));
    const stats = cachedRead(() => readInventoryStats(readPool), config.reads.cacheMs);
    const metrics = createInventoryMetrics(() => stats.read());
    const workers = await startWorkers({ ...config, relayName: 'inventory' }, logger, {
      url: db.server.url, crash, publisher, observer: metrics.relayObserver, tracer,
      destination: (eventType) => ({ system: 'nats', name: subjectFor(INVENTORY_STREAM, eventType) }),
    });
    stopAll.push(() => workers.close());
    const janitor = startJanitor(config, logger, { url: db.server.url, observer: metrics.janitorObserver });
    stopAll.push(() => janitor.close());

    const pool = createPool(
      {
        url: db.server.url, applicationName: 'outbox-demo:inventory', max: config.workers + 1,
        connectionTimeoutMs: config.connectionTimeoutMs, statementTimeoutMs: config.statementTimeoutMs,
      },
      logger,
    );
    stopAll.push(() => closePool(pool));
    const consumer = createInventoryConsumer({ pool, logger, crash, writeOutcome: writeStockReply });
    const subscriber = createNatsSubscriber(broker.nc, {
      stream: ORDERS_STREAM.name,
      durable: INVENTORY_CONSUMER,
      concurrency: config.workers,
      namePrefix: 'Inventory-',
      maxDeliveries: config.maxAttempts,
      retryDelayMs: retryDelayMs(config),
      ackWaitMs: config.broker.ackWaitMs,
      onDeadLetter: observeDeadLetters(deadLetterSink(pool, ORDERS_STREAM.name), metrics.handlerObserver),
      logger,
    });
    const handle = traceHandler(tracer, async (message, receivedBy) => {
      faults.maybeFail(message.messageId);
      const outcome = await consumer.handle(message, receivedBy);
      // The reply is committed: this service's own relay may publish it now.
      if (outcome !== 'duplicate') workers.relay.nudge();
      return outcome;
    }, { operation: 'process', destination: (eventType) => ({ system: 'nats', name: subjectFor(ORDERS_STREAM, eventType) }) });
    await subscriber.start(observeHandler(handle, metrics.handlerObserver));
    stopAll.push(() => subscriber.close());

    const app = createInventoryHttpApp({
      stats: (freshFrom) => stats.read(freshFrom),
      metrics,
      logger,
      serverNames: serverNames(config.host, config.allowedHosts),
      readiness: async () => {
        const up = await pool.query('SELECT 1').then(() => true, () => false);
        const nats = broker.nc.isClosed() ? 'closed' : 'connected';
        return { ready: up && nats === 'connected' && workers.relay.running, checks: { database: up ? 'up' : 'down', nats, relay: workers.relay.running ? 'running' : 'stopped' } };
      },
    });
    const http: Server = await listen(app, config.broker.inventoryPort, config.host);
    stopAll.push(() => new Promise<void>((resolve) => { http.close(() => resolve()); http.closeAllConnections(); }));
    const { port } = http.address() as AddressInfo;
    const url = `http://${urlHost(config.host)}:${port}`;
    log.info(
      `consuming ${ORDERS_STREAM.name} as "${INVENTORY_CONSUMER}" with ${config.workers} handlers, replies via ${workers.describe()}; ` +
        `${db.server.kind} PostgreSQL database of its own; ${broker.describe()}; tracing ${tracing.describe}; stats on ${url}/stats, metrics on ${url}/metrics`,
    );
    let closing: Promise<void> | undefined;
    return { url, port, faults, close: () => (closing ??= closeAll()) };
  } catch (error) {
    await closeAll();
    throw error;
  }
}
