// The transport contract: how an event leaves a service and reaches another. The relay only
// knows a Publisher; a consumer only knows the Handler a Subscriber calls. One file per
// implementation: in-process.ts (a function call, the default) and nats.ts (NATS JetStream).
// Modelled on Watermill's Publisher/Subscriber: few methods, each saying what happens on
// error, on retry and on close.

/** The event as it travels: the outbox row's identity and content, nothing about leases. */
export interface Envelope {
  /** The outbox message id: the same on every copy of this event, the inbox's key. */
  messageId: string;
  eventType: string;
  aggregateId: string;
  payload: unknown;
  /** Context that travels with the event (string to string), e.g. a trace context. */
  headers?: Record<string, string>;
  /**
   * The event's position within its aggregate (1, 2, …); absent: 1 (messages written before
   * positions existed). The consumer applies an aggregate's events in this order.
   */
  sequence?: number;
  /**
   * Broker-side de-duplication id (NATS: Nats-Msg-Id) when it must differ from messageId.
   * Unset (always, for the relay): messageId. Only `npm run replay` sets it, to send a copy
   * the broker cannot recognise and show that the consumer's inbox still skips it.
   */
  natsMsgId?: string;
}

/** An envelope as a subscriber hands it over. */
export interface Received extends Envelope {
  /** 1 the first time the transport hands this copy over; more when it redelivers it. */
  deliveryCount: number;
}

/**
 * Hands an outbox event to the other side.
 *
 * - `publish` resolves once the other side holds the event durably, with a short outcome
 *   word: in-process, the consumer's ("applied", "rejected", "duplicate"); over a broker,
 *   "published", or "duplicate" when the broker already had this message id.
 * - Error: it rejects, and whether the event arrived is unknown. The caller keeps its outbox
 *   row and publishes again later with the same message id; a copy that did arrive is dropped
 *   by the broker's de-duplication or skipped by the consumer's inbox. A rejection with code
 *   POISON_MESSAGE means it can never succeed: the caller dead-letters it.
 * - Retry: a publisher never retries by itself; the relay's backoff decides when.
 * - Close: later publishes reject; resolves once publishes in flight have settled.
 */
export interface Publisher {
  publish(message: Envelope, publishedBy: string): Promise<string>;
  close(): Promise<void>;
}

/**
 * Applies one message; resolves with an outcome word once its effect is committed, rejects
 * when it could not be (POISON_MESSAGE: never will be).
 */
export type Handler = (message: Received, receivedBy: string) => Promise<string>;

/**
 * Hands messages to a handler.
 *
 * - A message whose handler resolved is acknowledged and not handed over again, except when
 *   the acknowledgement itself is lost (a crash between commit and ack): then it comes again,
 *   and the handler's inbox must skip it. Every handler is therefore idempotent.
 * - Error: a handler that rejects gets the message again after a backoff, up to the
 *   subscriber's maximum deliveries; then, or at once for POISON_MESSAGE, the message goes
 *   to `onDeadLetter` and is never handed over again.
 * - Close: stops taking messages, waits for handlers in flight and their acknowledgements.
 *   A message taken but not acknowledged is handed over again later (to this or another
 *   process).
 */
export interface Subscriber {
  start(handler: Handler): Promise<void>;
  close(): Promise<void>;
}

/** Called with a message that will not be handed over again, and why. */
export type DeadLetterSink = (message: Received, error: string) => Promise<void>;
