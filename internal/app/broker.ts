// The broker side of a service (TRANSPORT=nats), wired once for both services: find or start
// nats-server, connect, and make sure the topology exists (both streams, both durable
// consumers). Whichever service starts first creates it; the other finds it as it is.
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import type { Config } from '../config/config.ts';
import { StartupError } from '../errors/errors.ts';
import { recordReceivedDeadLetter } from '../outbox/dead-letters.ts';
import type { Pool } from '../db/pool.ts';
import type { Logger } from '../log/logger.ts';
import { openNatsServer, type NatsServerHandle } from '../nats/server.ts';
import { connectNats } from '../transport/nats.ts';
import { ensureConsumer, ensureStream, INVENTORY_STREAM, ORDERS_STREAM } from '../transport/nats-streams.ts';
import type { DeadLetterSink } from '../transport/transport.ts';

/** The inventory service's durable consumer on ORDERS, shared by all its processes. */
export const INVENTORY_CONSUMER = 'inventory';
/** The order service's durable consumer on INVENTORY (the replies). */
export const ORDER_SERVICE_CONSUMER = 'order-service';

export interface Broker {
  nc: NatsConnection;
  server: NatsServerHandle;
  /** "local nats-server on nats://127.0.0.1:4222" and the like, for start-up banners. */
  describe(): string;
  /** Drains the connection (in-flight acks and publishes finish), then stops a server started here. */
  close(): Promise<void>;
}

export async function openBroker(config: Config, logger: Logger, clientName: string): Promise<Broker> {
  const log = logger.child('NATS');
  const server = await openNatsServer(
    { natsUrl: config.broker.natsUrl, port: config.broker.natsPort, dataDir: config.dataDir },
    log,
  );
  let nc: NatsConnection | undefined;
  try {
    nc = await connectNats(server.url, clientName, logger, config.broker.connectTimeoutMs);
    const jsm = await jetstreamManager(nc);
    const streams = { duplicateWindowMs: config.broker.duplicateWindowMs, replicas: config.broker.replicas };
    await ensureStream(jsm, ORDERS_STREAM, streams);
    await ensureStream(jsm, INVENTORY_STREAM, streams);
    // Room for every handler of a few processes; past it the broker waits for acks.
    const consumers = { ackWaitMs: config.broker.ackWaitMs, maxAckPending: 1_000 };
    await ensureConsumer(jsm, ORDERS_STREAM.name, { durable: INVENTORY_CONSUMER, ...consumers });
    await ensureConsumer(jsm, INVENTORY_STREAM.name, { durable: ORDER_SERVICE_CONSUMER, ...consumers });
  } catch (error) {
    await nc?.close().catch(() => undefined);
    await server.close();
    throw topologyError(error);
  }
  const connection = nc;
  log.info(
    `JetStream ready: streams ${ORDERS_STREAM.name} and ${INVENTORY_STREAM.name} (duplicate window ${Math.round(config.broker.duplicateWindowMs / 60_000)} min, ` +
      `${config.broker.replicas} replica${config.broker.replicas === 1 ? '' : 's'})`,
  );
  return {
    nc: connection,
    server,
    describe: () => `${server.kind === 'external' ? 'NATS_URL' : 'local nats-server'} ${server.url}`,
    async close() {
      await connection.drain().catch(() => undefined);
      await server.close();
    },
  };
}

/**
 * Messages on ORDERS the inventory's durable consumer has not had acknowledged yet (not yet
 * delivered, or delivered and in flight): 0 when the inventory service has caught up.
 */
export async function inventoryBacklog(nc: NatsConnection): Promise<number> {
  const info = await (await jetstreamManager(nc)).consumers.info(ORDERS_STREAM.name, INVENTORY_CONSUMER);
  return info.num_pending + info.num_ack_pending;
}

/** A failed message's backoff, like the relay's: doubling from RETRY_BASE_MS up to RETRY_MAX_MS. */
export function retryDelayMs(config: Pick<Config, 'retryBaseMs' | 'retryMaxMs'>): (deliveryCount: number) => number {
  return (deliveryCount) => Math.min(config.retryBaseMs * 2 ** Math.max(0, deliveryCount - 1), config.retryMaxMs);
}

/** Received messages a service gives up on go to its own dead_letters table. */
export function deadLetterSink(pool: Pool, stream: string): DeadLetterSink {
  return (message, error) =>
    recordReceivedDeadLetter(
      pool,
      { stream, messageId: message.messageId, eventType: message.eventType, aggregateId: message.aggregateId, payload: message.payload, headers: message.headers, sequence: message.sequence, deliveries: message.deliveryCount },
      error,
    );
}

/** JetStream refusing the streams or consumers is a set-up problem: one line, with the likely cause. */
function topologyError(error: unknown): unknown {
  if (error instanceof StartupError || !(error instanceof Error)) return error;
  const hint = /no suitable peers/i.test(error.message)
    ? ' — the cluster is still forming, or has fewer nodes than NATS_REPLICAS; start again in a few seconds'
    : /jetstream is not enabled|JetStreamNotEnabled/i.test(`${error.name} ${error.message}`)
      ? ' — the server at NATS_URL runs without JetStream (start it with -js)'
      : /replicas > 1 not supported/i.test(error.message)
        ? ' — NATS_REPLICAS above 1 needs a clustered server'
        : '';
  return new StartupError('NATS_START_FAILED', `JetStream refused the streams and consumers: ${error.message}${hint}`, { cause: error });
}
