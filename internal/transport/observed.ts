// A subscriber's handler and dead-letter sink, with an observer told of each outcome (the
// services' metrics). The handler and the sink are unchanged: same results, same errors.
import { isAppError } from '../errors/errors.ts';
import type { DeadLetterSink, Handler } from './transport.ts';

export interface HandlerObserver {
  /** A message whose handler resolved: its outcome word and how long the handler took. */
  onHandled(outcome: string, ms: number): void;
  /** A handler that threw (the message comes again, or is dead-lettered). */
  onFailed(): void;
  /** A message recorded in dead_letters and terminated. */
  onDeadLettered(): void;
}

export function observeHandler(handler: Handler, observer: HandlerObserver | undefined): Handler {
  if (!observer) return handler;
  return async (message, receivedBy) => {
    const started = performance.now();
    try {
      const outcome = await handler(message, receivedBy);
      observer.onHandled(outcome, performance.now() - started);
      return outcome;
    } catch (error) {
      // Early, not failed (it comes again after its predecessor): an outcome of its own.
      if (isAppError(error, 'DEFERRED')) observer.onHandled('deferred', performance.now() - started);
      else observer.onFailed();
      throw error;
    }
  };
}

export function observeDeadLetters(sink: DeadLetterSink, observer: HandlerObserver | undefined): DeadLetterSink {
  if (!observer) return sink;
  return async (message, error) => {
    await sink(message, error);
    observer.onDeadLettered();
  };
}
