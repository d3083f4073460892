// The spans of an event's journey, with OpenTelemetry's messaging attributes:
// - publish (PRODUCER): a relay hands an outbox event to the transport, continuing the
//   context stored with the event; the transport carries the publish span's context on.
// - process / settle (CONSUMER): a subscriber's handler; parent = the message's context,
//   linked to the producer's span; a redelivery and a skipped duplicate are marked on it.
// The messaging semantic conventions are still "incubating" in @opentelemetry/semantic-conventions,
// which asks users to copy such names rather than import them: hence the constants below.
import { SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span, type Tracer } from '@opentelemetry/api';
import type { Handler } from '../transport/transport.ts';
import { extractContext, injectContext, withContext, type Carrier } from './context.ts';

export const MESSAGING_SYSTEM = 'messaging.system';
export const MESSAGING_DESTINATION_NAME = 'messaging.destination.name';
export const MESSAGING_OPERATION_TYPE = 'messaging.operation.type';
export const MESSAGING_OPERATION_NAME = 'messaging.operation.name';
export const MESSAGING_MESSAGE_ID = 'messaging.message.id';
/** Ours: how many times this copy was handed over (transport) or tried (relay). */
export const DELIVERY_COUNT = 'outbox.delivery_count';
/** Ours: the step's outcome word ("applied", "duplicate", "published", …). */
export const OUTCOME = 'outbox.outcome';
/** Ours: true when the inbox (or the broker) recognised this message as already handled. */
export const DUPLICATE = 'outbox.duplicate';

/** Where a step's messages go: "nats" with its subject, or "in-process" with the consumer's name. */
export interface Destination {
  system: 'nats' | 'in-process';
  name: string;
}

export interface PublishedEvent {
  messageId: string;
  eventType: string;
  headers?: Carrier;
  /** The relay's attempt, 1 on the first. */
  attempts: number;
  lastError?: string | null;
}

/**
 * Runs `publish` inside a PRODUCER span that continues the event's stored context; `publish`
 * gets the headers to send (the span's context replacing the stored one).
 */
export async function tracePublish(
  tracer: Tracer, event: PublishedEvent, destination: Destination, publish: (headers: Carrier) => Promise<string>,
): Promise<string> {
  const parent = extractContext(event.headers);
  const span = tracer.startSpan(`publish ${destination.name}`, {
    kind: SpanKind.PRODUCER,
    attributes: { ...messagingAttributes(destination, 'send', 'publish', event.messageId), [DELIVERY_COUNT]: event.attempts, 'outbox.event_type': event.eventType },
  }, parent);
  if (event.attempts > 1) span.addEvent('redelivery', { [DELIVERY_COUNT]: event.attempts, 'outbox.last_error': event.lastError ?? '' });
  return withinSpan(span, async () => {
    const outcome = await publish(withContext(event.headers, trace.setSpan(parent, span)));
    markOutcome(span, outcome, 'the broker already had this message id: the copy was dropped');
    return outcome;
  });
}

export interface ConsumeOptions {
  /** The span's operation name: "process" (inventory), "settle" (the order service's replies). */
  operation: string;
  /** Where a message came from (its subject, or the in-process consumer). */
  destination(eventType: string): Destination;
}

/**
 * The handler inside a CONSUMER span per message. The handler sees the message with the
 * span's context in its headers, so what it writes (a reply event) continues the trace.
 */
export function traceHandler(tracer: Tracer, handler: Handler, options: ConsumeOptions): Handler {
  return async (message, receivedBy) => {
    const parent = extractContext(message.headers);
    const producer = trace.getSpanContext(parent);
    const destination = options.destination(message.eventType);
    const span = tracer.startSpan(`${options.operation} ${destination.name}`, {
      kind: SpanKind.CONSUMER,
      attributes: {
        ...messagingAttributes(destination, 'process', options.operation, message.messageId),
        [DELIVERY_COUNT]: message.deliveryCount,
        'outbox.event_type': message.eventType,
        'outbox.handled_by': receivedBy,
      },
      links: producer ? [{ context: producer }] : [],
    }, parent);
    if (message.deliveryCount > 1) {
      span.setAttribute('outbox.redelivered', true);
      span.addEvent('redelivery', { [DELIVERY_COUNT]: message.deliveryCount });
    }
    return withinSpan(span, async () => {
      const outcome = await handler({ ...message, headers: withContext(message.headers, trace.setSpan(parent, span)) }, receivedBy);
      markOutcome(span, outcome, 'already in the inbox: skipped, nothing changed');
      return outcome;
    });
  };
}

function messagingAttributes(destination: Destination, type: string, name: string, messageId: string): Attributes {
  return {
    [MESSAGING_SYSTEM]: destination.system,
    [MESSAGING_DESTINATION_NAME]: destination.name,
    [MESSAGING_OPERATION_TYPE]: type,
    [MESSAGING_OPERATION_NAME]: name,
    [MESSAGING_MESSAGE_ID]: messageId,
  };
}

function markOutcome(span: Span, outcome: string, duplicateMeans: string): void {
  span.setAttribute(OUTCOME, outcome);
  if (outcome === 'duplicate') {
    span.setAttribute(DUPLICATE, true);
    span.addEvent('duplicate skipped', { reason: duplicateMeans });
  }
}

/** Runs `work` as the span's body: a failure is recorded on the span and rethrown; the span ends either way. */
async function withinSpan<T>(span: Span, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    span.recordException(error instanceof Error ? error : message);
    span.setStatus({ code: SpanStatusCode.ERROR, message });
    throw error;
  } finally {
    span.end();
  }
}

/** What an event's row stores of its trace: the id (kept on the order) and the carrier. */
export interface StoredTrace {
  traceId: string | undefined;
  headers: Carrier;
}

/**
 * The span in which an event is created (kind PRODUCER, operation "create"): `write` runs the
 * transaction that stores the event with this span's context, so the relay continues from it.
 */
export async function traceCreate<T extends { messageId?: string }>(
  tracer: Tracer, parent: Context, eventType: string, write: (trace: StoredTrace) => Promise<T>,
  /** Why a result without a message id wrote no event (the span says it). */
  whyNothing: (result: T) => string = () => 'an earlier request with the same Idempotency-Key placed this order',
): Promise<T> {
  const span = tracer.startSpan(`create ${eventType}`, {
    kind: SpanKind.PRODUCER,
    attributes: { [MESSAGING_OPERATION_TYPE]: 'create', [MESSAGING_OPERATION_NAME]: 'enqueue', 'outbox.event_type': eventType },
  }, parent);
  const context = trace.setSpan(parent, span);
  const stored = { traceId: trace.getSpanContext(context)?.traceId, headers: injectContext(context) };
  return withinSpan(span, async () => {
    const result = await write({ ...stored, traceId: stored.headers.traceparent ? stored.traceId : undefined });
    if (result.messageId) span.setAttribute(MESSAGING_MESSAGE_ID, result.messageId);
    else span.addEvent('nothing enqueued', { reason: whyNothing(result) });
    return result;
  });
}
