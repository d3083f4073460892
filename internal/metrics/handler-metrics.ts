// A subscriber's metrics (TRANSPORT=nats), for either service: messages its handlers finished,
// by outcome (a fixed set of words, dead_lettered among them), how long each took, and how
// many threw. Counters of THIS process, like the relay's.
import { Counter, Histogram, type Registry } from 'prom-client';
import type { HandlerObserver } from '../transport/observed.ts';

export interface HandlerMetricNames {
  /** Counter by outcome, e.g. inventory_messages_handled_total. */
  handled: string;
  handledHelp: string;
  /** The outcome words the handler answers with; anything else counts as "other". */
  outcomes: readonly string[];
  duration: string;
  durationHelp: string;
  failures: string;
  failuresHelp: string;
}

export function createHandlerMetrics(registers: Registry[], names: HandlerMetricNames): HandlerObserver {
  const known = new Set(names.outcomes);
  const handled = new Counter({ name: names.handled, help: names.handledHelp, labelNames: ['outcome'], registers });
  for (const outcome of [...names.outcomes, 'dead_lettered']) handled.inc({ outcome }, 0);
  const duration = new Histogram({
    name: names.duration,
    help: names.durationHelp,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers,
  });
  const failures = new Counter({ name: names.failures, help: names.failuresHelp, registers });
  failures.inc(0);
  return {
    onHandled(outcome, ms) {
      handled.inc({ outcome: known.has(outcome) ? outcome : 'other' });
      duration.observe(ms / 1000);
    },
    onFailed: () => failures.inc(),
    onDeadLettered: () => handled.inc({ outcome: 'dead_lettered' }),
  };
}
