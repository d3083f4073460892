// The order service's reply side (TRANSPORT=nats): its own pool, the reply consumer that
// settles orders, and the subscriber on the INVENTORY stream that feeds it.
import type { Config } from '../config/config.ts';
import { closePool, createPool } from '../db/pool.ts';
import type { Logger } from '../log/logger.ts';
import { createReplyConsumer } from '../orders/replies.ts';
import { createNatsSubscriber } from '../transport/nats.ts';
import { INVENTORY_STREAM } from '../transport/nats-streams.ts';
import { observeDeadLetters, observeHandler, type HandlerObserver } from '../transport/observed.ts';
import { deadLetterSink, ORDER_SERVICE_CONSUMER, retryDelayMs, type Broker } from './broker.ts';

export interface RunningReplies {
  close(): Promise<void>;
}

export interface RepliesOptions {
  url: string;
  broker: Broker;
  /** Told of each reply's outcome (metrics). */
  observer?: HandlerObserver;
}

export async function startReplies(config: Config, logger: Logger, options: RepliesOptions): Promise<RunningReplies> {
  const pool = createPool(
    {
      url: options.url, applicationName: 'outbox-demo:replies', max: config.workers + 1,
      connectionTimeoutMs: config.connectionTimeoutMs, statementTimeoutMs: config.statementTimeoutMs,
    },
    logger,
  );
  const consumer = createReplyConsumer({ pool, logger });
  const subscriber = createNatsSubscriber(options.broker.nc, {
    stream: INVENTORY_STREAM.name,
    durable: ORDER_SERVICE_CONSUMER,
    concurrency: config.workers,
    namePrefix: 'Replies-',
    maxDeliveries: config.maxAttempts,
    retryDelayMs: retryDelayMs(config),
    ackWaitMs: config.broker.ackWaitMs,
    onDeadLetter: observeDeadLetters(deadLetterSink(pool, INVENTORY_STREAM.name), options.observer),
    logger,
  });
  try {
    await subscriber.start(observeHandler((reply, receivedBy) => consumer.handle(reply, receivedBy), options.observer));
  } catch (error) {
    await closePool(pool);
    throw error;
  }
  return {
    async close() {
      await subscriber.close();
      await closePool(pool);
    },
  };
}
