// The NATS JetStream transport. Publishing waits for the stream's acknowledgement (the event
// is stored, replicated when the stream has replicas) and sets Nats-Msg-Id to the outbox
// message id, so the broker drops a copy it already stored within its duplicate window.
// Subscribing is a durable pull consumer with explicit acks: a handler that resolved is
// acknowledged, one that failed is nak'ed with a delay, and one past its deliveries (or
// poison) is dead-lettered by the service and terminated. The inbox, not the broker, is what
// makes a second delivery harmless: acks can be lost, windows end.
import { connect, headers as natsHeaders, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import { AppError, isAppError } from '../errors/errors.ts';
import type { Logger } from '../log/logger.ts';
import { traceTag } from '../tracing/context.ts';
import { subjectFor, type StreamSpec } from './nats-streams.ts';
import type { DeadLetterSink, Envelope, Handler, Publisher, Received, Subscriber } from './transport.ts';

const MESSAGE_ID = 'Outbox-Message-Id';
const EVENT_TYPE = 'Event-Type';
const AGGREGATE_ID = 'Aggregate-Id';
/** Past maxDeliveries × this, a message is dead-lettered without trying it again. */
const CRASH_LOOP_FACTOR = 2;
const ENVELOPE_HEADERS = new Set([MESSAGE_ID, EVENT_TYPE, AGGREGATE_ID].map((h) => h.toLowerCase()));

/** Connects and keeps reconnecting for ever: a broker restart is an outage, not the end. */
export async function connectNats(servers: string, name: string, logger: Logger): Promise<NatsConnection> {
  const log = logger.child('NATS');
  const nc = await connect({
    servers: servers.split(',').map((s) => s.trim()).filter(Boolean),
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    waitOnFirstConnect: true,
  });
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') log.warn(`disconnected from ${'server' in status ? status.server : 'the server'}; reconnecting`);
      else if (status.type === 'reconnect') log.info(`reconnected to ${'server' in status ? status.server : 'the server'}`);
    }
  })().catch(() => undefined);
  return nc;
}

export interface NatsPublisherOptions {
  stream: StreamSpec;
  /** How long to wait for the stream's acknowledgement before the publish counts as failed. */
  timeoutMs: number;
}

export function createNatsPublisher(nc: NatsConnection, options: NatsPublisherOptions): Publisher {
  const js = jetstream(nc, { timeout: options.timeoutMs });
  let closed = false;
  const inFlight = new Set<Promise<unknown>>();
  return {
    async publish(message: Envelope) {
      if (closed) throw new AppError('TRANSPORT_CLOSED', 'the NATS publisher is closed');
      const call = js.publish(subjectFor(options.stream, message.eventType), JSON.stringify(message.payload), {
        msgID: message.messageId,
        headers: envelopeHeaders(message),
        expect: { streamName: options.stream.name },
        timeout: options.timeoutMs,
      });
      inFlight.add(call);
      try {
        const ack = await call;
        return ack.duplicate ? 'duplicate' : 'published';
      } finally {
        inFlight.delete(call);
      }
    },
    async close() {
      closed = true;
      await Promise.allSettled([...inFlight]);
    },
  };
}

export interface NatsSubscriberOptions {
  stream: string;
  /** The durable consumer (created beforehand by ensureConsumer). */
  durable: string;
  /** Handlers running at once in this process; their names are `${namePrefix}${n}`. */
  concurrency: number;
  namePrefix: string;
  /**
   * A message whose handler fails on this delivery or a later one goes to the dead letters.
   * Deliveries that never reached a handler count too (as a crash counts as an attempt in the
   * relay); twice this many and a message is dead-lettered untried.
   */
  maxDeliveries: number;
  /** The delay before a failed message is delivered again, by its delivery count. */
  retryDelayMs(deliveryCount: number): number;
  onDeadLetter: DeadLetterSink;
  logger: Logger;
  /**
   * The consumer's ack wait. While a handler runs, the broker is told "still working" every
   * third of it, so a slow but live handler is not raced by a redelivery (its transaction is
   * bounded by the statement timeout, which is shorter than the ack wait).
   */
  ackWaitMs?: number;
}

export function createNatsSubscriber(nc: NatsConnection, options: NatsSubscriberOptions): Subscriber {
  const js = jetstream(nc);
  const log = options.logger;
  let messages: ConsumerMessages | undefined;
  let loop: Promise<void> | undefined;
  let stopping = false;
  const running = new Set<Promise<void>>();
  const freeNames = Array.from({ length: options.concurrency }, (_, i) => `${options.namePrefix}${i + 1}`);

  async function handleOne(msg: JsMsg, handler: Handler, name: string): Promise<void> {
    const received = parse(msg);
    const short = `${received.messageId.slice(0, 8)}…${traceTag(received.headers)}`;
    try {
      // The broker counts every hand-out, also those that never reached a handler: a process
      // killed with the message in its buffer, an ack wait that ran out under load. So past
      // maxDeliveries a message still gets its handler (which skips it if it was applied);
      // only far past it, where it looks like the message itself kills every process that
      // takes it, does it go to the dead letters untried.
      if (received.deliveryCount > options.maxDeliveries * CRASH_LOOP_FACTOR) {
        throw new AppError('POISON_MESSAGE', `delivered ${received.deliveryCount - 1} times without an answer (does it crash its handler?)`);
      }
      const heartbeat = options.ackWaitMs ? setInterval(() => msg.working(), Math.max(100, Math.floor(options.ackWaitMs / 3))) : undefined;
      try {
        await handler(received, name);
      } finally {
        clearInterval(heartbeat);
      }
      // Acknowledged after the commit; lost, the message comes again and the inbox skips it.
      await msg.ackAck().catch((error: unknown) => log.child(name).warn(`ack for ${short} lost (${describe(error)}); it will be delivered again and skipped`));
    } catch (error) {
      const reason = describe(error);
      if (isAppError(error, 'POISON_MESSAGE') || received.deliveryCount >= options.maxDeliveries) {
        try {
          await options.onDeadLetter(received, reason);
          msg.term();
          log.child(name).warn(`message ${short} dead-lettered and terminated after ${received.deliveryCount} deliveries: ${reason}`);
        } catch (sinkError) {
          // Not recorded: keep it in the broker and try again later, rather than lose it.
          msg.nak(options.retryDelayMs(received.deliveryCount));
          log.child(name).warn(`message ${short} could not be dead-lettered (${describe(sinkError)}); it will come again`);
        }
        return;
      }
      const delay = options.retryDelayMs(received.deliveryCount);
      msg.nak(delay);
      log.child(name).warn(`message ${short} failed (delivery ${received.deliveryCount}): ${reason}; again in ${delay} ms`);
    }
  }

  return {
    async start(handler) {
      const consumer = await js.consumers.get(options.stream, options.durable);
      messages = await consumer.consume({ max_messages: options.concurrency });
      loop = (async () => {
        for await (const msg of messages!) {
          if (stopping) {
            msg.nak(); // taken after close began: hand it straight back
            continue;
          }
          while (freeNames.length === 0) await Promise.race(running);
          const name = freeNames.shift()!;
          const run = handleOne(msg, handler, name).finally(() => {
            running.delete(run);
            freeNames.push(name);
          });
          running.add(run);
        }
      })();
    },
    async close() {
      stopping = true;
      await messages?.close().catch(() => undefined);
      await loop?.catch(() => undefined);
      await Promise.allSettled([...running]);
    },
  };
}

/** The outbox event's identity goes in headers; its payload is the body (JSON). */
function envelopeHeaders(message: Envelope): MsgHdrs {
  const h = natsHeaders();
  for (const [key, value] of Object.entries(message.headers ?? {})) h.set(key, value);
  h.set(MESSAGE_ID, message.messageId);
  h.set(EVENT_TYPE, message.eventType);
  h.set(AGGREGATE_ID, message.aggregateId);
  return h;
}

/** Reads an envelope back; a message that is not one of ours is poison, with what could be read. */
function parse(msg: JsMsg): Received {
  const h = msg.headers;
  const headers: Record<string, string> = {};
  for (const [key, values] of h ?? []) {
    if (!ENVELOPE_HEADERS.has(key.toLowerCase()) && !key.startsWith('Nats-')) headers[key] = values[0] ?? '';
  }
  let payload: unknown;
  try {
    payload = msg.json();
  } catch {
    payload = { unparsable: msg.string().slice(0, 1000) };
  }
  return {
    messageId: h?.get(MESSAGE_ID) || h?.get('Nats-Msg-Id') || '',
    eventType: h?.get(EVENT_TYPE) || '',
    aggregateId: h?.get(AGGREGATE_ID) || '',
    payload,
    headers,
    deliveryCount: msg.info.deliveryCount,
  };
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
