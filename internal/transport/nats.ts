// The NATS JetStream transport. Publishing waits for the stream's acknowledgement (the event
// is stored, replicated when the stream has replicas) and sets Nats-Msg-Id to the outbox
// message id, so the broker drops a copy it already stored within its duplicate window.
// Subscribing is a durable pull consumer with explicit acks: a handler that resolved is
// acknowledged, one that failed is nak'ed with a delay, and one past its deliveries (or
// poison) is dead-lettered by the service and terminated. One that came before its
// aggregate's previous event (DEFERRED) is nak'ed with a short delay and never counted. The inbox, not the broker, is what
// makes a second delivery harmless: acks can be lost, windows end.
import { connect, headers as natsHeaders, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import { AppError, isAppError, StartupError } from '../errors/errors.ts';
import type { Logger } from '../log/logger.ts';
import { traceTag } from '../tracing/context.ts';
import { subjectFor, type StreamSpec } from './nats-streams.ts';
import type { DeadLetterSink, Envelope, Handler, Publisher, Received, Subscriber } from './transport.ts';

const MESSAGE_ID = 'Outbox-Message-Id';
const EVENT_TYPE = 'Event-Type';
const AGGREGATE_ID = 'Aggregate-Id';
/** The event's position within its aggregate (absent: 1, or a message from before positions). */
const SEQUENCE = 'Outbox-Sequence';
/** Past maxDeliveries × this, a message is dead-lettered without trying it again. */
const CRASH_LOOP_FACTOR = 2;
/** How long one pull request waits on the server; see open() in createNatsSubscriber. */
const PULL_EXPIRES_MS = 5_000;
const ENVELOPE_HEADERS = new Set([MESSAGE_ID, EVENT_TYPE, AGGREGATE_ID, SEQUENCE].map((h) => h.toLowerCase()));
/** A deferred message comes again after the retry base, doubling per deferral, at most this. */
const MAX_DEFER_DELAY_MS = 5_000;
/** Deferred messages whose deferrals this process remembers (see DeferralCounts). */
const MAX_TRACKED_DEFERRALS = 10_000;

/**
 * Connects, then keeps reconnecting for ever: a broker restart is an outage, not the end. The
 * first connection is different: a server that never answers is most likely a wrong NATS_URL,
 * so after `firstConnectTimeoutMs` of trying it is a one-line start-up error.
 */
export async function connectNats(servers: string, name: string, logger: Logger, firstConnectTimeoutMs = 30_000): Promise<NatsConnection> {
  const log = logger.child('NATS');
  const list = servers.split(',').map((s) => s.trim()).filter(Boolean);
  const deadline = Date.now() + firstConnectTimeoutMs;
  let nc: NatsConnection | undefined;
  for (let attempt = 1; !nc; attempt++) {
    try {
      nc = await connect({ servers: list, name, maxReconnectAttempts: -1, reconnectTimeWait: 250, waitOnFirstConnect: false });
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      if (Date.now() >= deadline) {
        throw new StartupError('NATS_UNREACHABLE', `cannot reach NATS at ${redactServers(list)} (${why}) — is it running? Check NATS_URL`, { cause: error });
      }
      if (attempt === 1) log.warn(`cannot reach NATS at ${redactServers(list)} yet (${why}); trying for ${Math.round(firstConnectTimeoutMs / 1000)} s`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
  const connection = nc;
  void (async () => {
    for await (const status of connection.status()) {
      if (status.type === 'disconnect') log.warn(`disconnected from ${'server' in status ? status.server : 'the server'}; reconnecting`);
      else if (status.type === 'reconnect') log.info(`reconnected to ${'server' in status ? status.server : 'the server'}`);
    }
  })().catch(() => undefined);
  return connection;
}

/** nats://user:secret@host → nats://***@host: the log never shows credentials. */
function redactServers(servers: readonly string[]): string {
  return servers.map((s) => s.replace(/\/\/[^@/]*@/, '//***@')).join(',');
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
        msgID: message.natsMsgId ?? message.messageId,
        headers: envelopeHeaders(message),
        expect: { streamName: options.stream.name },
        timeout: options.timeoutMs,
      });
      inFlight.add(call);
      try {
        const ack = await call;
        return ack.duplicate ? 'duplicate' : 'published';
      } catch (error) {
        throw brokerUnavailable(error) ?? error;
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
  /**
   * The delay before a deferred message (DEFERRED) comes again, by how many times it was
   * deferred. Default: retryDelayMs(1) doubling per deferral, at most 5 s.
   */
  deferDelayMs?(deferrals: number): number;
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
  const deferrals = new DeferralCounts(MAX_TRACKED_DEFERRALS);
  const deferDelayMs = options.deferDelayMs ?? ((n: number) => Math.min(options.retryDelayMs(1) * 2 ** Math.max(0, n - 1), MAX_DEFER_DELAY_MS));

  async function handleOne(msg: JsMsg, handler: Handler, name: string): Promise<void> {
    const received = parse(msg);
    const short = `${received.messageId.slice(0, 8)}…${traceTag(received.headers)}`;
    const key = msg.info.streamSequence;
    // The broker counts a deferral as a delivery; the limits below count only the others.
    const deliveries = received.deliveryCount - deferrals.of(key);
    try {
      // The broker counts every hand-out, also those that never reached a handler: a process
      // killed with the message in its buffer, an ack wait that ran out under load. So past
      // maxDeliveries a message still gets its handler (which skips it if it was applied);
      // only far past it, where it looks like the message itself kills every process that
      // takes it, does it go to the dead letters untried.
      if (deliveries > options.maxDeliveries * CRASH_LOOP_FACTOR) {
        throw new AppError('POISON_MESSAGE', `delivered ${received.deliveryCount - 1} times without an answer (does it crash its handler?)`);
      }
      const heartbeat = options.ackWaitMs ? setInterval(() => msg.working(), Math.max(100, Math.floor(options.ackWaitMs / 3))) : undefined;
      try {
        await handler(received, name);
      } finally {
        clearInterval(heartbeat);
      }
      deferrals.forget(key);
      // Acknowledged after the commit; lost, the message comes again and the inbox skips it.
      await msg.ackAck().catch((error: unknown) => log.child(name).warn(`ack for ${short} lost (${describe(error)}); it will be delivered again and skipped`));
    } catch (error) {
      const reason = describe(error);
      if (isAppError(error, 'DEFERRED')) {
        const delay = deferDelayMs(deferrals.add(key));
        msg.nak(delay);
        log.child(name).info(`deferred: ${reason} (message ${short}); not counted, again in ${delay} ms`);
        return;
      }
      if (isAppError(error, 'POISON_MESSAGE') || deliveries >= options.maxDeliveries) {
        try {
          await options.onDeadLetter(received, reason);
          deferrals.forget(key);
          msg.term();
          log.child(name).warn(`message ${short} dead-lettered and terminated after ${received.deliveryCount} deliveries: ${reason}`);
        } catch (sinkError) {
          // Not recorded: keep it in the broker and try again later, rather than lose it.
          msg.nak(options.retryDelayMs(received.deliveryCount));
          log.child(name).warn(`message ${short} could not be dead-lettered (${describe(sinkError)}); it will come again`);
        }
        return;
      }
      const delay = options.retryDelayMs(deliveries);
      msg.nak(delay);
      log.child(name).warn(`message ${short} failed (delivery ${deliveries}${deliveries === received.deliveryCount ? '' : ` not counting ${received.deliveryCount - deliveries} deferrals`}): ${reason}; again in ${delay} ms`);
    }
  }

  /** Takes messages from `messages` until it ends; hands each to a free handler. */
  async function drain(messages: ConsumerMessages, handler: Handler): Promise<void> {
    for await (const msg of messages) {
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
  }

  /** Status the client reports while consuming that an operator should see. */
  async function watch(messages: ConsumerMessages): Promise<void> {
    for await (const status of messages.status()) {
      if (status.type === 'heartbeats_missed' && status.count === 2) {
        log.child('NATS').warn(`consumer "${options.durable}": no heartbeat from ${options.stream}'s consumer leader; pulling again`);
      } else if (status.type === 'consumer_not_found' || status.type === 'stream_not_found' || status.type === 'consumer_deleted') {
        log.child('NATS').warn(`consumer "${options.durable}" on ${options.stream}: ${status.type.replaceAll('_', ' ')}; waiting for it`);
      }
    }
  }

  /**
   * The client ends the message iterator on errors it deems final (a bad request, a failed
   * subscription, the connection closed under it). The subscriber must not end with it while
   * the service runs: it gets the consumer again and consumes again, after a pause.
   */
  async function consumeUntilClosed(handler: Handler, first: ConsumerMessages): Promise<void> {
    let current: ConsumerMessages | undefined = first;
    for (let restarts = 0; !stopping; restarts += 1) {
      if (!current) {
        await new Promise((resolve) => setTimeout(resolve, Math.min(250 * 2 ** restarts, 5_000)));
        if (stopping) return;
        current = await open().catch((error: unknown) => {
          log.child('NATS').warn(`consumer "${options.durable}" on ${options.stream}: could not consume again (${describe(error)}); retrying`);
          return undefined;
        });
        if (!current) continue;
        if (stopping) return void (await current.close().catch(() => undefined)); // close() began meanwhile
        log.child('NATS').info(`consumer "${options.durable}" on ${options.stream}: consuming again`);
        restarts = 0;
      }
      const ended = await drain(current, handler).then(() => 'ended', (error: unknown) => describe(error));
      if (stopping) return;
      log.child('NATS').warn(`consumer "${options.durable}" on ${options.stream}: the message stream stopped (${ended}); consuming again`);
      current = undefined;
    }
  }

  async function open(): Promise<ConsumerMessages> {
    const consumer = await js.consumers.get(options.stream, options.durable);
    // A pull request lives on the consumer's leader. When that node dies, the request dies
    // with it, and the client notices only after two missed heartbeats (expires / 2 each):
    // short pulls bound that stall after a leader change to a few seconds instead of 30.
    const opened = await consumer.consume({ max_messages: options.concurrency, expires: PULL_EXPIRES_MS });
    messages = opened;
    void watch(opened).catch(() => undefined);
    return opened;
  }

  return {
    async start(handler) {
      const first = await open();
      loop = consumeUntilClosed(handler, first);
    },
    async close() {
      stopping = true;
      await messages?.close().catch(() => undefined);
      await loop?.catch(() => undefined);
      await Promise.allSettled([...running]);
    },
  };
}

/**
 * How many times this process deferred each message still in play, by stream sequence. JetStream
 * counts every hand-out, a nak included, and keeps no other number per message; a deferral is
 * not the message's fault, so the subscriber subtracts the deferrals it saw before comparing
 * with MAX_ATTEMPTS: however long a message waits for its predecessor, a later real failure
 * still gets all its attempts, and the crash-loop guard does not mistake waiting for crashing.
 *
 * Kept in memory, not in the broker or the database: exact within a process, which is where a
 * deferred message mostly comes back while its predecessor is retried. Deferrals seen by
 * another process or before a restart are not known here and count as deliveries: at worst a
 * message that waited long and then fails for real is dead-lettered early (visible and
 * re-drivable), never lost or applied twice. Forgotten on ack or dead-letter; bounded (the
 * oldest entries go first).
 */
class DeferralCounts {
  private readonly counts = new Map<number, number>();
  constructor(private readonly max: number) {}

  of(key: number): number {
    return this.counts.get(key) ?? 0;
  }

  /** One more deferral of `key`; returns how many it has had. */
  add(key: number): number {
    const n = this.of(key) + 1;
    this.counts.delete(key);
    this.counts.set(key, n); // re-inserted: Map order is the eviction order
    if (this.counts.size > this.max) this.counts.delete(this.counts.keys().next().value!);
    return n;
  }

  forget(key: number): void {
    this.counts.delete(key);
  }
}

// Failures that say "the broker is not there right now" (disconnected, no JetStream answering
// during a restart or a leader election, no acknowledgement in time), not "this message is wrong".
const OUTAGE_ERRORS = new Set([
  'TimeoutError', 'NoRespondersError', 'JetStreamNotEnabled', 'ClosedConnectionError',
  'DrainingConnectionError', 'ConnectionError', 'RequestError',
]);
const JS_TEMPORARILY_UNAVAILABLE = 10008;

/** TRANSPORT_UNAVAILABLE for an outage, so the relay retries without counting an attempt. */
function brokerUnavailable(error: unknown): AppError | undefined {
  const e = error as { name?: string; code?: unknown; message?: string };
  if (!(error instanceof Error)) return undefined;
  if (!OUTAGE_ERRORS.has(e.name ?? '') && e.code !== JS_TEMPORARILY_UNAVAILABLE) return undefined;
  return new AppError('TRANSPORT_UNAVAILABLE', `broker unavailable (${e.name}: ${e.message})`, undefined, { cause: error });
}

/** The outbox event's identity goes in headers; its payload is the body (JSON). */
function envelopeHeaders(message: Envelope): MsgHdrs {
  const h = natsHeaders();
  for (const [key, value] of Object.entries(message.headers ?? {})) h.set(key, value);
  h.set(MESSAGE_ID, message.messageId);
  h.set(EVENT_TYPE, message.eventType);
  h.set(AGGREGATE_ID, message.aggregateId);
  if (message.sequence !== undefined) h.set(SEQUENCE, String(message.sequence));
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
  // A malformed position stays NaN: the consumer finds it out of range and calls it poison.
  const sequence = h?.get(SEQUENCE) ? Number(h.get(SEQUENCE)) : undefined;
  return {
    messageId: h?.get(MESSAGE_ID) || h?.get('Nats-Msg-Id') || '',
    eventType: h?.get(EVENT_TYPE) || '',
    aggregateId: h?.get(AGGREGATE_ID) || '',
    payload,
    headers,
    ...(sequence === undefined ? {} : { sequence }),
    deliveryCount: msg.info.deliveryCount,
  };
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
