// `npm run relay`: relay workers without the API. Run several (here or on other machines,
// each with its own --name) against one database and they share the outbox: FOR UPDATE SKIP
// LOCKED and the lease work across processes exactly as they do across workers.
import os from 'node:os';
import type { Config } from '../config/config.ts';
import type { Logger } from '../log/logger.ts';
import { createNatsPublisher } from '../transport/nats.ts';
import { ORDERS_STREAM, subjectFor } from '../transport/nats-streams.ts';
import { createTracing } from '../tracing/tracing.ts';
import { openBroker, type Broker } from './broker.ts';
import { startJanitor } from './janitor.ts';
import { startWorkers } from './workers.ts';
import { connectDatabase, ORDER_SERVICE_NAME } from './wiring.ts';

export interface RunningRelay {
  /** The process's relay name, the prefix of its worker names. */
  name: string;
  close(): Promise<void>;
}

export async function startRelay(config: Config, logger: Logger): Promise<RunningRelay> {
  // No pid in the default: worker names become metric labels and handled_by values, and a
  // name per restart would add series and rows forever. Two relays on one host: give --name.
  const name = config.relayName ?? defaultRelayName();
  // Opens (or attaches to) the database and applies migrations; its pool is only for that.
  const db = await connectDatabase(config, logger, 'relay-main', 1);
  // Its publish spans belong to the order service (they continue the traces of its requests).
  const tracing = createTracing(config.tracing, { defaultServiceName: ORDER_SERVICE_NAME });
  let broker: Broker | undefined;
  try {
    // TRANSPORT=nats: this relay publishes to ORDERS like the order service's own workers;
    // in-process it applies events itself, on this database.
    broker = config.transport === 'nats' ? await openBroker(config, logger, `relay-${name}`) : undefined;
    const publisher = broker && createNatsPublisher(broker.nc, { stream: ORDERS_STREAM, timeoutMs: config.broker.publishTimeoutMs });
    const workers = await startWorkers({ ...config, relayName: name }, logger, {
      url: db.server.url, publisher, tracer: tracing.tracer,
      destination: (eventType) => ({ system: 'nats', name: subjectFor(ORDERS_STREAM, eventType) }),
    });
    const janitor = startJanitor(config, logger, { url: db.server.url });
    logger.child('Relay').info(`${name}: ${workers.describe()} on the ${db.server.kind} PostgreSQL${broker ? `, ${broker.describe()}` : ''}`);
    const connected = broker;
    return {
      name,
      async close() {
        await Promise.all([workers.close(), janitor.close()]);
        await connected?.close();
        await db.close();
        await tracing.shutdown().catch(() => undefined);
      },
    };
  } catch (error) {
    await broker?.close();
    await db.close();
    await tracing.shutdown().catch(() => undefined);
    throw error;
  }
}

/** "relay-<host>": stable across restarts of the relay on this machine. */
export function defaultRelayName(): string {
  return `relay-${os.hostname()}`.replace(/[^\w.-]/g, '-').slice(0, 40);
}
