// The in-process transport: publishing is calling the consumer. No broker, no network: the
// publish resolves when the consumer's transaction has committed, so the relay deletes an
// outbox row only after its effect exists. Redelivery and dead letters come from the relay
// and the outbox (a failed publish is retried with backoff), not from this file.
import { AppError } from '../errors/errors.ts';
import type { Envelope, Handler, Publisher, Subscriber } from './transport.ts';

export interface InProcessTransport {
  publisher: Publisher;
  subscriber: Subscriber;
}

export function createInProcessTransport(): InProcessTransport {
  let handler: Handler | undefined;
  let closed = false;
  const inFlight = new Set<Promise<unknown>>();
  const settle = async () => {
    while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
  };
  return {
    publisher: {
      async publish(message: Envelope, publishedBy: string) {
        if (closed) throw new AppError('TRANSPORT_CLOSED', 'the in-process transport is closed');
        if (!handler) throw new AppError('TRANSPORT_CLOSED', 'no subscriber has started on the in-process transport');
        // The relay already counts this event's attempts; to the consumer each call is one delivery.
        const call = handler({ ...message, deliveryCount: 1 }, publishedBy);
        inFlight.add(call);
        try {
          return await call;
        } finally {
          inFlight.delete(call);
        }
      },
      async close() {
        closed = true;
        await settle();
      },
    },
    subscriber: {
      async start(next) {
        handler = next;
      },
      async close() {
        closed = true;
        await settle();
      },
    },
  };
}
