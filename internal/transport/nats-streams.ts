// The broker's topology, created idempotently by whichever service starts first: two streams
// (one per producing service) and one durable pull consumer per consuming service.
import type { NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';

export interface StreamSpec {
  name: string;
  /** Subjects the stream stores, e.g. "orders.>". */
  subjects: string[];
}

/** OrderCreated, OrderCancelled (the order's events), published by the order service. */
export const ORDERS_STREAM: StreamSpec = { name: 'ORDERS', subjects: ['orders.>'] };
/** StockReserved / StockRejected, published by the inventory service. */
export const INVENTORY_STREAM: StreamSpec = { name: 'INVENTORY', subjects: ['inventory.>'] };

/** Where each event type is published. */
const SUBJECTS: Record<string, string> = {
  OrderCreated: 'orders.created',
  OrderCancelled: 'orders.cancelled',
  StockReserved: 'inventory.stock-reserved',
  StockRejected: 'inventory.stock-rejected',
};

/** The subject for an event type in `stream`: the table above, or "<prefix>.<event-type>". */
export function subjectFor(stream: StreamSpec, eventType: string): string {
  const prefix = stream.subjects[0]!.replace(/\.>$/, '');
  const known = SUBJECTS[eventType];
  if (known?.startsWith(`${prefix}.`)) return known;
  const kebab = eventType.replace(/([a-z0-9])([A-Z])/g, '$1-$2').replace(/[^A-Za-z0-9_-]/g, '_').toLowerCase();
  return `${prefix}.${kebab}`;
}

export interface StreamSettings {
  /** Broker-side de-duplication by Nats-Msg-Id lasts this long. */
  duplicateWindowMs: number;
  /** Copies of each stream across a cluster (1 on a single server, 3 across three). */
  replicas: number;
}

/** Creates the stream, or brings an existing one's duplicate window and replicas in line. */
export async function ensureStream(jsm: JetStreamManager, spec: StreamSpec, settings: StreamSettings): Promise<void> {
  const wanted = {
    name: spec.name,
    subjects: spec.subjects,
    // Limits retention (JetStream's default), no limits: the streams keep every message. Interest
    // retention would keep only the backlog, but on the 2.9/2.10 servers an interest stream that
    // is empty at a restart can come back with its sequence behind its consumer's ack floor, and
    // the consumer then skips new messages (nats-server issues 5412, 6611). Bound the streams
    // with max_age or max_bytes in production, longer than any consumer outage you expect.
    duplicate_window: ms(settings.duplicateWindowMs),
    num_replicas: settings.replicas,
  };
  const info = await jsm.streams.info(spec.name).catch((error: unknown) => {
    if (isNotFound(error)) return undefined;
    throw error;
  });
  if (!info) {
    await jsm.streams.add(wanted).catch(async (error: unknown) => {
      // Another service created it at the same moment: fine, it is the same stream.
      if (!(await jsm.streams.info(spec.name).then(() => true, () => false))) throw error;
    });
    return;
  }
  if (info.config.duplicate_window !== wanted.duplicate_window || info.config.num_replicas !== settings.replicas) {
    await jsm.streams.update(spec.name, { ...info.config, duplicate_window: wanted.duplicate_window, num_replicas: settings.replicas });
  }
}

export interface ConsumerSettings {
  /** The durable consumer's name: one per consuming service, shared by its processes. */
  durable: string;
  /** Only these subjects (one filter: the 2.9 server has no filter_subjects). */
  filterSubject?: string;
  /** Unacknowledged this long, a message is delivered again. */
  ackWaitMs: number;
  /** Messages handed out and not yet acknowledged, across all this consumer's processes. */
  maxAckPending: number;
}

/** Creates the durable pull consumer with explicit acks, or updates its settings. */
export async function ensureConsumer(jsm: JetStreamManager, stream: string, settings: ConsumerSettings): Promise<void> {
  const config = {
    durable_name: settings.durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: ms(settings.ackWaitMs),
    // The subscriber counts deliveries itself and dead-letters a message in its own database
    // before terminating it (nats.ts). A server-side limit would instead drop the message with
    // nothing but an advisory, for example while that database is down: so none here.
    max_deliver: -1,
    max_ack_pending: settings.maxAckPending,
    ...(settings.filterSubject ? { filter_subject: settings.filterSubject } : {}),
  };
  const existing = await jsm.consumers.info(stream, settings.durable).catch((error: unknown) => {
    if (isNotFound(error)) return undefined;
    throw error;
  });
  if (!existing) {
    await jsm.consumers.add(stream, config).catch(async (error: unknown) => {
      if (!(await jsm.consumers.info(stream, settings.durable).then(() => true, () => false))) throw error;
    });
    return;
  }
  const { durable_name: _, deliver_policy: __, ...changeable } = config;
  await jsm.consumers.update(stream, settings.durable, changeable);
}

export async function manager(nc: NatsConnection): Promise<JetStreamManager> {
  return jetstreamManager(nc);
}

function ms(milliseconds: number): number {
  return milliseconds * 1_000_000; // JetStream durations are nanoseconds
}

function isNotFound(error: unknown): boolean {
  const e = error as { code?: unknown; api_error?: { err_code?: number }; message?: string };
  return e?.api_error?.err_code === 10059 || e?.api_error?.err_code === 10014 || /not found/i.test(String(e?.message));
}
