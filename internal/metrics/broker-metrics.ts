// The broker hop on the order service's /metrics (TRANSPORT=nats): what JetStream says now
// about both streams and both durable consumers, and whether the broker and the inventory
// service answered. Gauges, read through the same reader as /stats; an unreachable broker
// leaves no stale numbers behind, only nats_broker_reachable 0.
import { Gauge, type Registry } from 'prom-client';
import type { Stats } from '../stats/stats.ts';

export function createBrokerHopMetrics(registers: Registry[]): { apply(stats: Stats): void } {
  const gauge = (name: string, help: string, labelNames: string[] = []) => new Gauge({ name, help, labelNames, registers });
  const brokerUp = gauge('nats_broker_reachable', '1 when JetStream answered the latest read of the streams and consumers, 0 when it did not (within the timeout).');
  const streamMessages = gauge('nats_stream_messages', 'Messages the stream stores now (acknowledged ones included: limits retention keeps them).', ['stream']);
  const pending = gauge('nats_consumer_pending_messages', 'Messages in the stream not yet delivered to this durable consumer. Grows when the consuming service is down or slow.', ['stream', 'consumer']);
  const ackPending = gauge('nats_consumer_ack_pending_messages', 'Messages delivered to this consumer and not yet acknowledged (being handled, or waiting for ack_wait after a crash).', ['stream', 'consumer']);
  const redelivered = gauge('nats_consumer_redelivered_messages', 'Messages among those outstanding that this consumer has had delivered more than once (JetStream num_redelivered).', ['stream', 'consumer']);
  const inventoryUp = gauge('inventory_service_reachable', '1 when the inventory service answered the latest GET /stats, 0 when it did not (within the timeout).');
  return {
    apply(stats) {
      streamMessages.reset();
      pending.reset();
      ackPending.reset();
      redelivered.reset();
      const broker = stats.broker;
      brokerUp.set(broker?.reachable ? 1 : 0);
      if (broker?.reachable) {
        for (const s of broker.streams) streamMessages.set({ stream: s.name }, s.messages);
        for (const c of broker.consumers) {
          const labels = { stream: c.stream, consumer: c.name };
          pending.set(labels, c.pending);
          ackPending.set(labels, c.ackPending);
          redelivered.set(labels, c.redelivered);
        }
      }
      inventoryUp.set(stats.inventoryService?.reachable ? 1 : 0);
    },
  };
}
