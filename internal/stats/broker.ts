// The broker hop (TRANSPORT=nats), as JetStream reports it: how many messages each stream
// stores and, per durable consumer, what is not yet delivered (num_pending), delivered but not
// acknowledged (num_ack_pending) and delivered more than once (num_redelivered). Read with a
// short timeout through a single-flight cache: a slow or absent broker costs /stats at most
// the timeout, once per cache period, and shows as "unreachable" rather than an error.
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { cachedRead } from './cached.ts';

export interface StreamNumbers {
  name: string;
  /** Messages the stream stores now (acknowledged ones included: the stream keeps them). */
  messages: number;
  /** Messages ever stored (the last sequence number): a second copy the broker kept would show here. */
  published: number;
}

export interface ConsumerNumbers {
  /** The durable consumer's name, e.g. "inventory". */
  name: string;
  stream: string;
  /** In the stream, not yet delivered to this consumer. */
  pending: number;
  /** Delivered, not yet acknowledged: a handler is at work, or crashed and ack_wait runs. */
  ackPending: number;
  /** Messages delivered more than once (a nak, a lost ack, an expired ack_wait). */
  redelivered: number;
}

export type BrokerStats =
  | { reachable: true; streams: StreamNumbers[]; consumers: ConsumerNumbers[] }
  | { reachable: false; error: 'broker unreachable'; detail: string };

export interface BrokerStatsReader {
  /** Never rejects: an unreachable broker is an answer. */
  read(): Promise<BrokerStats>;
}

export interface BrokerStatsOptions {
  streams: string[];
  consumers: Array<{ stream: string; name: string }>;
  /** Each JetStream request, and the whole read, give up after this. */
  timeoutMs: number;
  cacheMs: number;
}

export function createBrokerStatsReader(nc: NatsConnection, options: BrokerStatsOptions): BrokerStatsReader {
  let manager: Promise<JetStreamManager> | undefined;
  async function load(): Promise<BrokerStats> {
    try {
      manager ??= jetstreamManager(nc, { timeout: options.timeoutMs, checkAPI: false });
      const jsm = await manager;
      const [streams, consumers] = await withTimeout(
        Promise.all([
          Promise.all(options.streams.map(async (name) => {
            const { state } = await jsm.streams.info(name);
            return { name, messages: state.messages, published: state.last_seq };
          })),
          Promise.all(
            options.consumers.map(async ({ stream, name }) => {
              const info = await jsm.consumers.info(stream, name);
              return { name, stream, pending: info.num_pending, ackPending: info.num_ack_pending, redelivered: info.num_redelivered };
            }),
          ),
        ]),
        options.timeoutMs,
      );
      return { reachable: true, streams, consumers };
    } catch (error) {
      manager = undefined; // made again next time, in case that is what failed
      return { reachable: false, error: 'broker unreachable', detail: error instanceof Error ? error.message : String(error) };
    }
  }
  return cachedRead(load, options.cacheMs);
}

/** Rejects after `ms` if `work` has not settled (its result is then ignored). */
export function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  work.catch(() => undefined);
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
