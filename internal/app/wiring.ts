// The one place that wires the program: database → pools → consumer → relay → HTTP, and
// closes each part in order.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Config } from '../config/config.ts';
import { openDatabaseServer, type DatabaseServer } from '../db/database.ts';
import { migrate } from '../db/migrate.ts';
import { closePool, createPool, type Pool } from '../db/pool.ts';
import { createLessons } from '../dashboard/lessons.ts';
import { createLiveFeed } from '../dashboard/feed.ts';
import { createLiveUpdates } from '../dashboard/live.ts';
import { createHttpApp } from '../http/app.ts';
import { createInventoryConsumer } from '../inventory/consumer.ts';
import { teeLogger, type Logger } from '../log/logger.ts';
import { createMetrics } from '../metrics/metrics.ts';
import { createOutboxStore } from '../outbox/outbox.ts';
import { Relay } from '../relay/relay.ts';
import { createCrashHook, createFailureInjector } from '../faults/faults.ts';
import { newSeed, seededRandom } from '../faults/random.ts';

export interface Database {
  server: DatabaseServer;
  /** A general-purpose pool (application_name "outbox-demo:<role>"). */
  pool: Pool;
  close(): Promise<void>;
}

/** Opens the database (embedded or DATABASE_URL), applies migrations, returns a pool for `role`. */
export async function connectDatabase(config: Config, logger: Logger, role: string, max = 10): Promise<Database> {
  const dbLog = logger.child('DB');
  const server = await openDatabaseServer(config, dbLog);
  const pool = createPool(
    { url: server.url, applicationName: `outbox-demo:${role}`, max, connectionTimeoutMs: config.connectionTimeoutMs },
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

/** Starts the Order API and its relay workers; resolves once it is listening. */
export async function startServer(config: Config, consoleLogger: Logger): Promise<RunningServer> {
  // Every step the console would print also goes to the dashboard's live feed.
  const feed = createLiveFeed();
  const logger = teeLogger(consoleLogger, (record) => feed.record(record));
  const db = await connectDatabase(config, logger, 'api');
  const poolOptions = { url: db.server.url, connectionTimeoutMs: config.connectionTimeoutMs };
  // Separate pools per role: a burst of HTTP requests cannot starve the workers, and each
  // role's sessions are visible by name in pg_stat_activity.
  const relayPool = createPool({ ...poolOptions, applicationName: 'outbox-demo:relay', max: config.workers + 1 }, logger);
  const inventoryPool = createPool({ ...poolOptions, applicationName: 'outbox-demo:inventory', max: config.workers + 1 }, logger);

  const crash = createCrashHook(config.crashAt, () => process.kill(process.pid, 'SIGKILL'), logger);
  const faults = createFailureInjector(config.failRate, seededRandom(config.faultSeed ?? newSeed()));
  if (config.failRate > 0) logger.child('Faults').warn(`FAIL_RATE ${config.failRate}: that share of deliveries will fail on purpose`);
  const consumer = createInventoryConsumer({ pool: inventoryPool, logger, crash });
  const metrics = createMetrics(db.pool);
  const relay = new Relay(
    {
      store: createOutboxStore(relayPool, {
        batchSize: config.batchSize,
        leaseMs: config.leaseMs,
        retryBaseMs: config.retryBaseMs,
        retryMaxMs: config.retryMaxMs,
      }),
      deliver: (event, workerName) => {
        faults.maybeFail(event.messageId);
        return consumer.handle(event, workerName);
      },
      logger,
      hooks: { afterClaim: () => crash('after-claim'), afterDeliver: () => crash('after-consume') },
      observer: metrics.relayObserver,
    },
    { workers: config.workers, pollIntervalMs: config.pollIntervalMs, maxAttempts: config.maxAttempts },
  );
  let url = '';
  const live = createLiveUpdates({
    db: db.pool,
    feed,
    workers: relay.workerNames,
    logger,
    failRate: () => faults.failRate(),
  });
  const lessons = createLessons({
    pool: db.pool,
    consumer,
    logger,
    serverUrl: () => url,
    nudge: () => relay.nudge(),
    leaseMs: config.leaseMs,
  });
  const app = createHttpApp({
    pool: db.pool,
    logger,
    onOrderPlaced: () => relay.nudge(),
    metrics,
    live,
    lessons,
    faults,
    crash,
    remoteActions: config.dashboardRemoteActions,
  });

  let http: Server;
  try {
    http = await listen(app, config.port, config.host);
  } catch (error) {
    await Promise.all([closePool(relayPool), closePool(inventoryPool)]);
    await db.close();
    throw error;
  }
  relay.start();
  const { port } = http.address() as AddressInfo;
  url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  logger.child('API').info(
    `listening on ${url} (${db.server.kind} PostgreSQL, ${config.workers} workers, poll every ${config.pollIntervalMs} ms)`,
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
        http.closeIdleConnections();
        await Promise.all([relay.stop(), httpClosed]);
        await Promise.all([closePool(relayPool), closePool(inventoryPool)]);
        await db.close();
      })();
      return closing;
    },
  };
}

function listen(app: { listen: (port: number, host: string, cb: () => void) => Server }, port: number, host: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = app.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
    server.once('error', reject);
  });
}
