// A relay's metrics, for whichever service runs one: claims, deliveries, failures and
// dead-letterings of THIS process, by worker. What a delivery's outcome word means depends on
// where the relay hands events: in-process it is the consumer's answer (applied, rejected,
// duplicate); to a broker it is the publish acknowledgement (published, or duplicate when the
// broker already stored that Nats-Msg-Id inside its duplicate window).
import { Counter, Histogram, type Registry } from 'prom-client';
import type { RelayObserver } from '../relay/relay.ts';

// released / cancelled: an OrderCancelled applied (stock given back, or nothing to give back).
const CONSUMER_OUTCOMES = new Set(['applied', 'rejected', 'released', 'cancelled', 'duplicate']);
const BROKER_OUTCOMES = ['published', 'duplicate'] as const;

export function createRelayMetrics(registers: Registry[], target: 'in-process' | 'broker'): RelayObserver {
  const delivered = new Counter({
    name: 'outbox_events_delivered_total',
    help: target === 'broker'
      ? 'Publishes this process made that the broker acknowledged (the row was then deleted), by worker (broker duplicates included).'
      : 'Deliveries this process made that reached the consumer and committed, by worker (duplicates included).',
    labelNames: ['worker'],
    registers,
  });
  const deadLettered = new Counter({ name: 'outbox_dead_letters_total', help: 'Events this process gave up on and moved to dead_letters.', labelNames: ['worker'], registers });
  const failures = new Counter({
    name: 'outbox_delivery_failures_total',
    help: 'Deliveries that threw in this process (the event stays in the outbox for a retry), by worker.',
    labelNames: ['worker'],
    registers,
  });
  const deferred = new Counter({
    name: 'outbox_deliveries_deferred_total',
    help: 'Deliveries the consumer deferred because an earlier event of the same aggregate was not applied yet (given back uncounted), by worker.',
    labelNames: ['worker'],
    registers,
  });
  const claimSize = new Histogram({
    name: 'outbox_claim_batch_size',
    help: 'Events taken by one non-empty claim in this process.',
    buckets: [1, 2, 3, 5, 10, 20, 50, 100],
    registers,
  });
  const latency = new Histogram({
    name: 'outbox_delivery_duration_seconds',
    help: target === 'broker'
      ? 'How long one publish took, until the broker acknowledged it, in this process.'
      : 'How long one delivery to the consumer took, until its transaction committed, in this process.',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers,
  });
  const onOutcome = target === 'broker' ? brokerOutcomes(registers) : consumerOutcomes(registers);
  return {
    onClaimed: (_worker, batchSize) => claimSize.observe(batchSize),
    onDelivered: (worker, ms, outcome) => {
      latency.observe(ms / 1000);
      delivered.inc({ worker });
      onOutcome(outcome);
    },
    onFailed: (worker) => failures.inc({ worker }),
    onDeferred: (worker) => deferred.inc({ worker }),
    onDeadLettered: (worker) => deadLettered.inc({ worker }),
  };
}

/** In-process, the consumer answers the relay: its outcomes are counted here. */
function consumerOutcomes(registers: Registry[]): (outcome: string | undefined) => void {
  const outcomes = new Counter({
    name: 'inventory_messages_processed_total',
    help: 'Messages this process delivered that the consumer applied for the first time, by outcome.',
    labelNames: ['outcome'],
    registers,
  });
  const duplicates = new Counter({ name: 'inventory_duplicates_skipped_total', help: 'Redeliveries by this process that the consumer recognised and skipped.', registers });
  duplicates.inc(0);
  return (outcome) => {
    if (outcome === 'duplicate') duplicates.inc();
    else if (outcome !== undefined && CONSUMER_OUTCOMES.has(outcome)) outcomes.inc({ outcome });
  };
}

/** To a broker, the answer is the publish acknowledgement: stored, or a duplicate it dropped. */
function brokerOutcomes(registers: Registry[]): (outcome: string | undefined) => void {
  const acks = new Counter({
    name: 'outbox_broker_acks_total',
    help: 'Publish acknowledgements this process received, by outcome: published (stored) or duplicate (the broker already had this Nats-Msg-Id).',
    labelNames: ['outcome'],
    registers,
  });
  for (const outcome of BROKER_OUTCOMES) acks.inc({ outcome }, 0);
  return (outcome) => {
    if (outcome === 'published' || outcome === 'duplicate') acks.inc({ outcome });
  };
}
