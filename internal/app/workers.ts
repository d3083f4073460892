// The relay side of a process, wired once for everyone who runs workers: the server, a
// stand-alone relay (`npm run relay`) and the benchmark. Pools → consumer (per-message or
// batched) → relay workers → the listener that wakes them.
import { randomUUID } from 'node:crypto';
import type { Tracer } from '@opentelemetry/api';
import type { Config } from '../config/config.ts';
import { closePool, createPool, warmPool, type PoolOptions } from '../db/pool.ts';
import { createBatchConsumer } from '../inventory/batch-consumer.ts';
import { createInventoryConsumer, type InventoryConsumer } from '../inventory/consumer.ts';
import type { CrashHook, FailureInjector } from '../faults/faults.ts';
import type { Logger } from '../log/logger.ts';
import { OutboxListener } from '../outbox/listener.ts';
import { createOutboxStore } from '../outbox/outbox.ts';
import { Relay, type DeliverBatch, type RelayObserver } from '../relay/relay.ts';
import { createInProcessTransport } from '../transport/in-process.ts';
import type { Publisher } from '../transport/transport.ts';
import { traceHandler, tracePublish, type Destination } from '../tracing/messaging.ts';
import { noTracing } from '../tracing/tracing.ts';

export interface WorkersOptions {
  /** The application database. */
  url: string;
  /** Fault injection: crash points in the relay and the consumer. */
  crash?: CrashHook;
  /** Fault injection: deliveries that fail on purpose. */
  faults?: FailureInjector;
  /** Told about claims and deliveries (metrics). */
  observer?: RelayObserver;
  /** Called once these messages are delivered: the consumer committed (in-process) or the stream stored them (broker). The benchmark times them. */
  onConsumed?: (messageIds: readonly string[]) => void;
  /**
   * Where the relay publishes (a broker). Unset: the in-process transport, whose subscriber is
   * the inventory consumer built here on the same database.
   */
  publisher?: Publisher;
  /** Where `publisher` sends an event of this type (the span's messaging attributes); its subject on NATS. */
  destination?: (eventType: string) => Destination;
  /** Publish spans (and, in-process, the consumer's process spans); none when not given. */
  tracer?: Tracer;
}

/** In-process, an event goes to the inventory consumer by a function call. */
const IN_PROCESS: Destination = { system: 'in-process', name: 'inventory' };

export interface Workers {
  relay: Relay;
  /** The per-message consumer, for tools that deliver by hand (replay); none when publishing to a broker. */
  consumer: InventoryConsumer | undefined;
  /** Undefined when WAKEUP=poll: nothing to listen for. */
  listener: OutboxListener | undefined;
  /**
   * These workers' wake-up id: pass it as `origin` to the createWakeup whose `nudgeLocal` nudges
   * `relay`, and their listener ignores the notifications that wake-up sends (they were nudged).
   */
  wakeupOrigin: string;
  /** "5 workers, poll every 500 ms, wake-up notify, per-message consumer": for start-up banners. */
  describe(): string;
  /** Stops listening, stops the workers gracefully, closes their pools. */
  close(): Promise<void>;
}

/** Builds and starts the workers (and their listener); resolves once the listener is listening. */
export async function startWorkers(config: Config, logger: Logger, options: WorkersOptions): Promise<Workers> {
  const poolOptions = { url: options.url, connectionTimeoutMs: config.connectionTimeoutMs, statementTimeoutMs: workerStatementTimeoutMs(config) };
  // Separate pools per role: a burst of HTTP requests cannot starve the workers, and each
  // role's sessions are visible by name in pg_stat_activity.
  // The relay's own writes (lease, delete, retry) need not wait for the disk: if a crash
  // forgets one, the event is simply delivered again and the consumer skips the duplicate.
  // That takes two of every batch's three flushes off the commit path. The consumer's
  // transaction, which is the effect, stays fully durable.
  const relayPool = createPool(relayPoolOptions(poolOptions, config.workers), logger);
  const crash = options.crash ?? (() => {});
  const consumed = options.onConsumed ?? (() => {});
  // In-process: the inventory consumer lives here, on this database, behind the in-process
  // transport. With a broker, the consumer is another service and this is only a relay.
  const inProcess = options.publisher ? undefined : createInProcessTransport();
  const inventoryPool = inProcess
    ? createPool({ ...poolOptions, applicationName: 'outbox-demo:inventory', max: config.workers + 1, min: config.workers }, logger)
    : undefined;
  const consumer = inventoryPool ? createInventoryConsumer({ pool: inventoryPool, logger, crash }) : undefined;
  const tracer = options.tracer ?? noTracing().tracer;
  if (inProcess && consumer) {
    await inProcess.subscriber.start(
      traceHandler(tracer, (message, receivedBy) => consumer.handle(message, receivedBy), { operation: 'process', destination: () => IN_PROCESS }),
    );
  }
  const publisher = options.publisher ?? inProcess!.publisher;
  const destination = options.publisher ? (options.destination ?? ((eventType: string): Destination => ({ system: 'nats', name: eventType }))) : () => IN_PROCESS;
  let deliverBatch: DeliverBatch | undefined;
  if (config.consumerMode === 'batch' && inventoryPool && consumer) {
    const batch = createBatchConsumer({ pool: inventoryPool, logger, single: consumer });
    deliverBatch = async (events, workerName, mayStart) => {
      // FAIL_RATE is a per-event probability in both modes: an event picked to fail is rejected
      // alone, as if its own delivery had thrown; the rest of the claim goes through the batch.
      const injected = events.map((event) => options.faults?.failureFor(event.messageId));
      const rest = events.filter((_, i) => injected[i] === undefined);
      const results = rest.length > 0 ? await batch.handleBatch(rest, workerName, mayStart) : [];
      consumed(rest.filter((_, i) => results[i]?.status === 'fulfilled').map((e) => e.messageId));
      let next = 0;
      return injected.map((failure): PromiseSettledResult<string> =>
        failure ? { status: 'rejected', reason: failure } : results[next++]!,
      );
    };
  }
  const relay = new Relay(
    {
      store: createOutboxStore(relayPool, {
        batchSize: config.batchSize,
        leaseMs: config.leaseMs,
        retryBaseMs: config.retryBaseMs,
        retryMaxMs: config.retryMaxMs,
      }),
      deliver: async (event, workerName) => {
        const { messageId, eventType, aggregateId, payload, sequence } = event;
        // The publish span continues the context stored with the event; the transport carries
        // the span's own context on (in-process: to the consumer's span; NATS: in the message headers).
        const outcome = await tracePublish(tracer, event, destination(eventType), async (headers) => {
          options.faults?.maybeFail(event.messageId);
          return publisher.publish({ messageId, eventType, aggregateId, payload, headers, sequence }, workerName);
        });
        consumed([event.messageId]);
        return outcome;
      },
      deliverBatch,
      logger,
      hooks: { afterClaim: () => crash('after-claim'), afterDeliver: () => crash('after-consume') },
      observer: options.observer,
    },
    {
      workers: config.workers,
      pollIntervalMs: config.pollIntervalMs,
      maxAttempts: config.maxAttempts,
      namePrefix: workerNamePrefix(config),
      deliveryTimeoutMs: workerStatementTimeoutMs(config),
      deferRetryMs: config.retryBaseMs,
    },
  );
  const wakeupOrigin = randomUUID();
  const listener =
    config.wakeup !== 'poll' ? new OutboxListener({ url: options.url, logger, onNotify: () => relay.nudge(), ignorePayload: wakeupOrigin }) : undefined;
  // Every worker's connections open before the first event: otherwise the first events after a
  // start wait behind a connection set-up each (tens of ms, hundreds on a busy machine: the
  // tail of the first second). The pools keep them open while idle (min), so the first events
  // after a quiet spell do not pay it either.
  await Promise.all([warmPool(relayPool, config.workers), inventoryPool ? warmPool(inventoryPool, config.workers) : undefined]);
  relay.start();
  await listener?.start();

  let closing: Promise<void> | undefined;
  return {
    relay,
    consumer,
    listener,
    wakeupOrigin,
    describe: () =>
      `${config.workers} workers, poll every ${config.pollIntervalMs} ms, ` +
      `wake-up ${config.wakeup}, ` +
      (options.publisher ? `publishing to ${config.transport}` : `${config.consumerMode} consumer`) +
      `, batches of up to ${config.batchSize}`,
    close() {
      closing ??= (async () => {
        await listener?.close();
        await relay.stop();
        await inProcess?.publisher.close();
        await Promise.all([closePool(relayPool), inventoryPool ? closePool(inventoryPool) : undefined]);
      })();
      return closing;
    },
  };
}

/** "Worker-" in the server; "relay-2/Worker-" in a relay process named relay-2. */
export function workerNamePrefix(config: Pick<Config, 'relayName'>): string {
  return config.relayName ? `${config.relayName}/Worker-` : 'Worker-';
}

/**
 * The relay's connections. Its writes commit asynchronously (above). Its statements are planned
 * for the outbox as it is at each claim: the outbox sits near empty for hours and then holds a
 * backlog (a consumer or broker outage), and a claim planned once while it was empty would,
 * with 20,000 events waiting, take 42 s instead of milliseconds (relay/claim-plan.test.ts).
 */
export function relayPoolOptions(base: Pick<PoolOptions, 'url' | 'connectionTimeoutMs' | 'statementTimeoutMs'>, workers: number): PoolOptions {
  return { ...base, applicationName: 'outbox-demo:relay', max: workers + 1, min: workers, asyncCommit: true, customPlans: true };
}

/**
 * A delivery stuck behind a lock must fail while its worker still holds the lease: then it is
 * retried after a backoff. Failing after the lease ran out, it would be claimed again at once
 * by another worker, into the same lock, and use up its attempts without any backoff.
 */
export function workerStatementTimeoutMs(config: Pick<Config, 'statementTimeoutMs' | 'leaseMs'>): number {
  const withinLease = Math.floor(config.leaseMs / 2);
  return config.statementTimeoutMs === 0 ? withinLease : Math.min(config.statementTimeoutMs, withinLease);
}
