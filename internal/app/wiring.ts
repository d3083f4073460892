// The one place that wires the program: database → pools → consumer → relay → HTTP, and
// closes each part in order.
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inventoryServiceUrl, type Config } from '../config/config.ts';
import { StartupError } from '../errors/errors.ts';
import { openDatabaseServer, type DatabaseServer } from '../db/database.ts';
import { migrate } from '../db/migrate.ts';
import { closePool, createPool, type Pool } from '../db/pool.ts';
import { createLessons } from '../dashboard/lessons.ts';
import { createLiveFeed } from '../dashboard/feed.ts';
import { createLiveUpdates } from '../dashboard/live.ts';
import { createHttpApp } from '../http/app.ts';
import { serverNames } from '../http/guard.ts';
import { teeLogger, type Logger } from '../log/logger.ts';
import { createMetrics, type Metrics } from '../metrics/metrics.ts';
import { createBrokerStatsReader } from '../stats/broker.ts';
import { createRemoteInventoryReader, remoteInventorySide } from '../stats/inventory-remote.ts';
import { createStatsReader, type StatsReader } from '../stats/reader.ts';
import { withBrokerHop } from '../stats/services.ts';
import type { Relay } from '../relay/relay.ts';
import { createWakeup } from '../outbox/wakeup.ts';
import { createCrashHook, createFailureInjector } from '../faults/faults.ts';
import { newSeed, seededRandom } from '../faults/random.ts';
import { createNatsPublisher } from '../transport/nats.ts';
import { INVENTORY_STREAM, ORDERS_STREAM, subjectFor } from '../transport/nats-streams.ts';
import { createTracing, type Tracing } from '../tracing/tracing.ts';
import { INVENTORY_CONSUMER, openBroker, ORDER_SERVICE_CONSUMER, type Broker } from './broker.ts';
import { startJanitor } from './janitor.ts';
import { startReplies, type RunningReplies } from './replies.ts';
import { startWorkers, type Workers } from './workers.ts';

/** application_name of the pool behind /stats, /metrics and the dashboard. */
export const READER_APPLICATION_NAME = 'outbox-demo:reader';

export interface Database {
  server: DatabaseServer;
  /** A general-purpose pool (application_name "outbox-demo:<role>"). */
  pool: Pool;
  close(): Promise<void>;
}

/**
 * Opens the database (embedded or DATABASE_URL; `open` picks another, such as the inventory
 * service's), applies migrations, returns a pool for `role`.
 */
export async function connectDatabase(
  config: Config, logger: Logger, role: string, max = 10,
  open: (config: Config, logger: Logger) => Promise<DatabaseServer> = openDatabaseServer,
): Promise<Database> {
  const dbLog = logger.child('DB');
  const server = await open(config, dbLog);
  const pool = createPool(
    {
      url: server.url, applicationName: `outbox-demo:${role}`, max,
      connectionTimeoutMs: config.connectionTimeoutMs, statementTimeoutMs: config.statementTimeoutMs,
    },
    dbLog,
  );
  try {
    await migrate(pool, dbLog);
  } catch (error) {
    await closePool(pool);
    await server.close();
    throw error;
  }
  return {
    server,
    pool,
    async close() {
      await closePool(pool);
      await server.close();
    },
  };
}

export interface RunningServer {
  url: string;
  port: number;
  relay: Relay;
  /** Graceful stop: stop claiming, finish in-flight work, close HTTP, pools, database. */
  close(): Promise<void>;
}

export interface ServerOptions {
  /** Spans go here; the caller shuts it down. Default: one built from config.tracing, shut down by close(). */
  tracing?: Tracing;
}

/** The order service's tracing, from config, when the caller brings none. */
export const ORDER_SERVICE_NAME = 'outbox-demo-orders';

/** Starts the Order API and its relay workers; resolves once it is listening. */
export async function startServer(config: Config, consoleLogger: Logger, options: ServerOptions = {}): Promise<RunningServer> {
  const tracing = options.tracing ?? createTracing(config.tracing, { defaultServiceName: ORDER_SERVICE_NAME });
  const ownTracing = options.tracing === undefined;
  try {
    return await startServerTraced(config, consoleLogger, tracing, ownTracing);
  } catch (error) {
    if (ownTracing) await tracing.shutdown().catch(() => undefined);
    throw error;
  }
}

async function startServerTraced(config: Config, consoleLogger: Logger, tracing: Tracing, ownTracing: boolean): Promise<RunningServer> {
  const { tracer } = tracing;
  // Every step the console would print also goes to the dashboard's live feed.
  const feed = createLiveFeed();
  const logger = teeLogger(consoleLogger, (record) => feed.record(record));
  const db = await connectDatabase(config, logger, 'api');
  const crash = createCrashHook(config.crashAt, () => process.kill(process.pid, 'SIGKILL'), logger);
  const faults = createFailureInjector(config.failRate, seededRandom(config.faultSeed ?? newSeed()));
  if (config.failRate > 0) logger.child('Faults').warn(`FAIL_RATE ${config.failRate}: that share of deliveries will fail on purpose`);
  // The readers' own pool: however many dashboards, scrapers and /stats loops there are, they
  // hold at most these few connections, and a slow read is ended after a short timeout.
  const readPool = createPool(
    {
      url: db.server.url, applicationName: READER_APPLICATION_NAME, max: config.reads.poolSize,
      connectionTimeoutMs: config.connectionTimeoutMs, statementTimeoutMs: config.reads.statementTimeoutMs,
    },
    logger.child('DB'),
  );
  const databaseReader = createStatsReader(readPool, {
    cacheMs: config.reads.cacheMs,
    pendingOrderThresholdMs: config.reads.pendingOrderThresholdMs,
  });
  let reader: StatsReader = databaseReader;
  let metrics!: Metrics;
  let workers: Workers;
  let http: Server;
  // TRANSPORT=nats: the relay publishes to the ORDERS stream and the replies settle orders.
  let broker: Broker | undefined;
  let replies: RunningReplies | undefined;
  try {
    broker = config.transport === 'nats' ? await openBroker(config, logger, 'order-service') : undefined;
    // With a broker, the numbers also show the hop to the inventory service and back.
    if (broker) reader = withBrokerHop(databaseReader, brokerHopReaders(config, broker));
    metrics = createMetrics(reader, { transport: config.transport });
    const publisher = broker && createNatsPublisher(broker.nc, { stream: ORDERS_STREAM, timeoutMs: config.broker.publishTimeoutMs });
    workers = await startWorkers(config, logger, {
      url: db.server.url, crash, faults, observer: metrics.relayObserver, publisher, tracer,
      destination: (eventType) => ({ system: 'nats', name: subjectFor(ORDERS_STREAM, eventType) }),
    });
    try {
      replies = broker && (await startReplies(config, logger, { url: db.server.url, broker, observer: metrics.replyObserver, tracer }));
    } catch (error) {
      await workers.close();
      throw error;
    }
  } catch (error) {
    await broker?.close();
    await closePool(readPool);
    await db.close();
    throw error;
  }
  const { relay } = workers;
  const janitor = startJanitor(config, logger, { url: db.server.url, observer: metrics.janitorObserver });
  // After each order's commit its own workers are nudged straight away; other processes' hear
  // a coalesced NOTIFY (WAKEUP=notify), or the one issued inside the transaction (notify-in-transaction).
  const wakeup = createWakeup({ mode: config.wakeup, url: db.server.url, logger, nudgeLocal: () => relay.nudge(), origin: workers.wakeupOrigin });
  let url = '';
  let selfUrl = '';
  const live = createLiveUpdates({ reader, feed, workers: relay.workerNames, logger, failRate: () => faults.failRate() });
  const lessons = createLessons({
    pool: db.pool,
    consumer: workers.consumer,
    inventory: broker ? remoteInventorySide(inventoryServiceUrl(config), 10_000) : undefined,
    logger,
    serverUrl: () => selfUrl,
    nudge: () => relay.nudge(),
    leaseMs: config.leaseMs,
  });
  const app = createHttpApp({
    pool: db.pool,
    logger,
    wakeup,
    metrics,
    reader,
    readiness: async () => {
      const up = await db.pool.query('SELECT 1').then(() => true, () => false);
      const listener = workers.listener === undefined ? 'off (polling)' : workers.listener.listening ? 'connected' : 'reconnecting (polling meanwhile)';
      const relayState = config.workers === 0 ? 'no workers' : relay.running ? 'running' : 'stopped';
      // A lost listener only delays wake-ups to the next poll: still ready.
      return { ready: up && relayState !== 'stopped', checks: { database: up ? 'up' : 'down', listener, relay: relayState } };
    },
    live,
    lessons,
    faults,
    crash,
    remoteActions: config.dashboardRemoteActions,
    idempotencyKeyTtlMs: config.idempotencyKeyTtlMs,
    serverNames: serverNames(config.host, config.allowedHosts),
    tracer,
  });
  try {
    http = await listen(app, config.port, config.host);
  } catch (error) {
    // Stop everything this process started, the embedded PostgreSQL included (db.close).
    live.close();
    await Promise.all([workers.close(), janitor.close(), wakeup.close(), replies?.close()]);
    await broker?.close();
    await closePool(readPool);
    await db.close();
    throw error;
  }
  const { port } = http.address() as AddressInfo;
  url = `http://${urlHost(config.host)}:${port}`;
  // The buttons call this server's own API. 0.0.0.0 and :: are where it listens, not names
  // to call it by (and not names the Host check accepts): they call it over loopback then.
  selfUrl = config.host === '0.0.0.0' ? `http://127.0.0.1:${port}` : config.host === '::' ? `http://[::1]:${port}` : url;
  logger.child('API').info(
    `listening on ${url} (${db.server.kind} PostgreSQL, ${workers.describe()}${broker ? `, ${broker.describe()}` : ''}, tracing ${tracing.describe}); dashboard: ${dashboardUrl(config.host, port)}`,
  );

  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    relay,
    close() {
      closing ??= (async () => {
        const httpClosed = new Promise<void>((resolve) => http.close(() => resolve()));
        live.close(); // ends the dashboards' event streams, which would keep the server open
        // A keep-alive connection whose request is still running becomes idle only when it is
        // answered; closing idle ones once would leave it open for the keep-alive timeout.
        http.closeIdleConnections();
        const sweep = setInterval(() => http.closeIdleConnections(), 50);
        await Promise.all([workers.close(), janitor.close(), replies?.close(), httpClosed.finally(() => clearInterval(sweep))]);
        await wakeup.close();
        await broker?.close();
        await closePool(readPool);
        await db.close();
        if (ownTracing) await tracing.shutdown().catch(() => undefined);
      })();
      return closing;
    },
  };
}

/** What the order service reads about the broker hop and the inventory service (TRANSPORT=nats). */
function brokerHopReaders(config: Config, broker: Broker) {
  const timeoutMs = config.broker.statsTimeoutMs;
  const cacheMs = config.reads.cacheMs;
  return {
    broker: createBrokerStatsReader(broker.nc, {
      streams: [ORDERS_STREAM.name, INVENTORY_STREAM.name],
      consumers: [
        { stream: ORDERS_STREAM.name, name: INVENTORY_CONSUMER },
        { stream: INVENTORY_STREAM.name, name: ORDER_SERVICE_CONSUMER },
      ],
      timeoutMs,
      cacheMs,
    }),
    inventory: createRemoteInventoryReader(inventoryServiceUrl(config), { timeoutMs, cacheMs }),
  };
}

/**
 * Listens on `port`; a port that is taken is a StartupError with the one line to print.
 * (Express 5's app.listen hands a listen error to its callback as if it had succeeded, which
 * left a server with no address, so the server is created here.)
 */
export function listen(app: RequestListener, port: number, host: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer(app);
    const onError = (error: NodeJS.ErrnoException) => reject(listenError(error, port, host));
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve(server);
    });
  });
}

function listenError(error: NodeJS.ErrnoException, port: number, host: string): Error {
  if (error.code === 'EADDRINUSE') {
    return new StartupError('PORT_IN_USE', `port ${port} is in use (is another server running?) — set PORT`, { cause: error });
  }
  if (error.code === 'EACCES') {
    return new StartupError('CANNOT_LISTEN', `port ${port} needs privileges this process does not have — set PORT (above 1023)`, { cause: error });
  }
  if (error.code === 'EADDRNOTAVAIL' || error.code === 'ENOTFOUND') {
    return new StartupError('CANNOT_LISTEN', `cannot listen on ${host}: not an address of this machine — set HOST`, { cause: error });
  }
  return error;
}

export function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** Where a browser on this machine opens the dashboard (a wildcard address is not one to browse to). */
function dashboardUrl(host: string, port: number): string {
  const browsable = host === '0.0.0.0' || host === '::' ? 'localhost' : urlHost(host);
  return `http://${browsable}:${port}/`;
}
