// The order service's reply side (TRANSPORT=nats): its own pool, the reply consumer that
// settles orders, and the subscriber on the INVENTORY stream that feeds it.
import type { Tracer } from '@opentelemetry/api';
import type { Config } from '../config/config.ts';
import { closePool, createPool } from '../db/pool.ts';
import type { Logger } from '../log/logger.ts';
import { createReplyConsumer } from '../orders/replies.ts';
import { createNatsSubscriber } from '../transport/nats.ts';
import { INVENTORY_STREAM, subjectFor } from '../transport/nats-streams.ts';
import { traceHandler } from '../tracing/messaging.ts';
import { noTracing } from '../tracing/tracing.ts';
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
  /** A "settle" span per reply, continuing the inventory's trace; none when not given. */
  tracer?: Tracer;
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
    const settle = traceHandler(options.tracer ?? noTracing().tracer, (reply, receivedBy) => consumer.handle(reply, receivedBy), {
      operation: 'settle',
      destination: (eventType) => ({ system: 'nats', name: subjectFor(INVENTORY_STREAM, eventType) }),
    });
    await subscriber.start(observeHandler(settle, options.observer));
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
