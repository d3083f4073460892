// The transport contract (transport.ts), run against both implementations: what a publish
// promises, what a handler's success, failure and poison lead to, and what close() waits for.
// The broker is a real nats-server started for this file.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { AppError, isAppError } from '../errors/errors.ts';
import { createSilentLogger } from '../log/logger.ts';
import { eventually } from '../testkit/eventually.ts';
import { natsAvailable, skipUnlessNats, startTestNatsServer, type TestNatsServer } from '../testkit/nats.ts';
import { createInProcessTransport } from './in-process.ts';
import { connectNats, createNatsPublisher, createNatsSubscriber } from './nats.ts';
import { ensureConsumer, ensureStream } from './nats-streams.ts';
import type { Envelope, Handler, Publisher, Received, Subscriber } from './transport.ts';

const quiet = createSilentLogger();

function envelope(overrides: Partial<Envelope> = {}): Envelope {
  return {
    messageId: randomUUID(),
    eventType: 'OrderCreated',
    aggregateId: randomUUID(),
    payload: { orderId: 'o', productId: 'widget', quantity: 2, note: 'ünïcode ✓' },
    headers: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
    ...overrides,
  };
}

interface Pair {
  publisher: Publisher;
  subscriber: Subscriber;
  deadLetters: Array<{ message: Received; error: string }>;
  close(): Promise<void>;
}

/** Each transport, fresh per test: a publisher and a subscriber connected to each other. */
const transports: Record<string, () => Promise<Pair>> = {
  'in-process': async () => {
    const { publisher, subscriber } = createInProcessTransport();
    return { publisher, subscriber, deadLetters: [], close: async () => { await subscriber.close(); await publisher.close(); } };
  },
};

let nats: TestNatsServer | undefined;
let nc: NatsConnection | undefined;

describe('transport contract', () => {
  before(async () => {
    if (!(await natsAvailable())) return; // each NATS test then skips (or fails in CI)
    nats = await startTestNatsServer();
    nc = await connectNats(nats.url, 'contract-test', quiet);
    transports.nats = async () => {
      // A stream and consumer of its own per test: nothing left over from the previous one.
      const name = `T${randomUUID().slice(0, 8)}`;
      const stream = { name, subjects: [`${name.toLowerCase()}.>`] };
      const jsm = await jetstreamManager(nc!);
      await ensureStream(jsm, stream, { duplicateWindowMs: 60_000, replicas: 1 });
      await ensureConsumer(jsm, name, { durable: 'test', ackWaitMs: 30_000, maxAckPending: 100 });
      const deadLetters: Pair['deadLetters'] = [];
      const publisher = createNatsPublisher(nc!, { stream, timeoutMs: 5_000 });
      const subscriber = createNatsSubscriber(nc!, {
        stream: name, durable: 'test', concurrency: 3, namePrefix: 'T-', maxDeliveries: 3,
        retryDelayMs: () => 50, onDeadLetter: async (message, error) => { deadLetters.push({ message, error }); },
        logger: quiet,
      });
      return { publisher, subscriber, deadLetters, close: async () => { await subscriber.close(); await publisher.close(); } };
    };
  });
  after(async () => {
    await nc?.drain();
    await nats?.stop();
  });

  for (const kind of ['in-process', 'nats']) {
    describe(kind, () => {
      const open = async (t: { skip(m: string): void }) => {
        const make = transports[kind];
        if (!make) {
          await skipUnlessNats(t);
          return undefined;
        }
        return make();
      };

      it('hands the handler the envelope as published: id, type, aggregate, payload and headers', async (t) => {
        const pair = await open(t);
        if (!pair) return;
        const got: Received[] = [];
        await pair.subscriber.start(async (m) => { got.push(m); return 'applied'; });
        const sent = envelope();
        await pair.publisher.publish(sent, 'Worker-1');
        await eventually('delivered', () => got.length === 1, 10_000);
        const { deliveryCount, ...rest } = got[0]!;
        assert.deepEqual(rest, sent);
        assert.equal(deliveryCount, 1);
        await pair.close();
      });

      it('a failing handler gets the message again (in-process: the publish rejects and the relay retries)', async (t) => {
        const pair = await open(t);
        if (!pair) return;
        let calls = 0;
        await pair.subscriber.start(async () => {
          calls++;
          if (calls === 1) throw new Error('database hiccup');
          return 'applied';
        });
        const sent = envelope();
        if (kind === 'in-process') {
          await assert.rejects(pair.publisher.publish(sent, 'Worker-1'), /database hiccup/);
          await pair.publisher.publish(sent, 'Worker-1'); // what the relay's retry does
        } else {
          assert.equal(await pair.publisher.publish(sent, 'Worker-1'), 'published');
        }
        await eventually('delivered twice', () => calls === 2, 10_000);
        await pair.close();
      });

      it('a poison message is never handed over again (in-process: rejected with POISON_MESSAGE; NATS: dead-lettered, terminated)', async (t) => {
        const pair = await open(t);
        if (!pair) return;
        let calls = 0;
        await pair.subscriber.start(async () => {
          calls++;
          throw new AppError('POISON_MESSAGE', 'malformed');
        });
        const sent = envelope();
        if (kind === 'in-process') {
          await assert.rejects(pair.publisher.publish(sent, 'Worker-1'), (e) => isAppError(e, 'POISON_MESSAGE'));
        } else {
          await pair.publisher.publish(sent, 'Worker-1');
          await eventually('dead-lettered', () => pair.deadLetters.length === 1, 10_000);
          assert.equal(pair.deadLetters[0]!.message.messageId, sent.messageId);
          await new Promise((resolve) => setTimeout(resolve, 500));
        }
        assert.equal(calls, 1);
        await pair.close();
      });

      it('publish after close rejects with TRANSPORT_CLOSED; close waits for a handler in flight', async (t) => {
        const pair = await open(t);
        if (!pair) return;
        let release!: () => void;
        const gate = new Promise<void>((resolve) => { release = resolve; });
        let finished = false;
        const handler: Handler = async () => { await gate; finished = true; return 'applied'; };
        await pair.subscriber.start(handler);
        const first = pair.publisher.publish(envelope(), 'Worker-1').catch(() => undefined);
        if (kind === 'nats') await first;
        await new Promise((resolve) => setTimeout(resolve, 300)); // the handler is now waiting
        const closing = pair.close();
        setTimeout(release, 200);
        await closing;
        assert.equal(finished, true, 'close() returned before the handler in flight finished');
        await assert.rejects(pair.publisher.publish(envelope(), 'Worker-1'), (e) => isAppError(e, 'TRANSPORT_CLOSED'));
      });
    });
  }

  describe('nats only', () => {
    it('the same message id published twice within the window: the broker says duplicate and hands it over once', async (t) => {
      const make = transports.nats;
      if (!make) return void (await skipUnlessNats(t));
      const pair = await make();
      let calls = 0;
      await pair.subscriber.start(async () => { calls++; return 'applied'; });
      const sent = envelope();
      assert.equal(await pair.publisher.publish(sent, 'Worker-1'), 'published');
      assert.equal(await pair.publisher.publish(sent, 'Worker-2'), 'duplicate');
      await eventually('delivered', () => calls === 1, 10_000);
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(calls, 1);
      await pair.close();
    });

    it('a message that keeps failing is dead-lettered after maxDeliveries and not handed over again', async (t) => {
      const make = transports.nats;
      if (!make) return void (await skipUnlessNats(t));
      const pair = await make();
      const counts: number[] = [];
      await pair.subscriber.start(async (m) => { counts.push(m.deliveryCount); throw new Error('still down'); });
      await pair.publisher.publish(envelope(), 'Worker-1');
      await eventually('dead-lettered', () => pair.deadLetters.length === 1, 15_000);
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.deepEqual(counts, [1, 2, 3]);
      assert.match(pair.deadLetters[0]!.error, /still down/);
      await pair.close();
    });

    it('deliveries that never reached a handler (a killed process, an expired ack wait) do not dead-letter a message the handler would skip', async (t) => {
      if (!nc) return void (await skipUnlessNats(t));
      const name = `T${randomUUID().slice(0, 8)}`;
      const stream = { name, subjects: [`${name.toLowerCase()}.>`] };
      const jsm = await jetstreamManager(nc);
      await ensureStream(jsm, stream, { duplicateWindowMs: 60_000, replicas: 1 });
      await ensureConsumer(jsm, name, { durable: 'test', ackWaitMs: 1_000, maxAckPending: 100 });
      await createNatsPublisher(nc, { stream, timeoutMs: 5_000 }).publish(envelope(), 'Worker-1');
      // Three processes took it and died before acknowledging: three deliveries, no handler.
      const consumer = await jetstream(nc).consumers.get(name, 'test');
      for (let i = 0; i < 3; i++) {
        const taken = await consumer.next({ expires: 5_000 });
        assert.ok(taken, 'the message was handed out');
      }
      const deadLetters: string[] = [];
      const seen: number[] = [];
      const subscriber = createNatsSubscriber(nc, {
        stream: name, durable: 'test', concurrency: 1, namePrefix: 'T-', maxDeliveries: 2, retryDelayMs: () => 50,
        onDeadLetter: async (message) => { deadLetters.push(message.messageId); },
        logger: quiet,
      });
      // It was applied before the acks were lost: the inbox answers "duplicate".
      await subscriber.start(async (m) => { seen.push(m.deliveryCount); return 'duplicate'; });
      await eventually('handed to the handler', () => seen.length === 1, 15_000);
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      assert.deepEqual(seen, [4]);
      assert.deepEqual(deadLetters, []);
      await subscriber.close();
    });

    it('a publish while the broker is down rejects with TRANSPORT_UNAVAILABLE (an outage the relay retries uncounted)', async (t) => {
      if (!nc) return void (await skipUnlessNats(t));
      const own = await startTestNatsServer();
      const conn = await connectNats(own.url, 'outage-test', quiet);
      try {
        const name = `T${randomUUID().slice(0, 8)}`;
        const stream = { name, subjects: [`${name.toLowerCase()}.>`] };
        await ensureStream(await jetstreamManager(conn), stream, { duplicateWindowMs: 60_000, replicas: 1 });
        const publisher = createNatsPublisher(conn, { stream, timeoutMs: 500 });
        assert.equal(await publisher.publish(envelope(), 'Worker-1'), 'published');
        await own.kill();
        await assert.rejects(publisher.publish(envelope(), 'Worker-1'), (e) => isAppError(e, 'TRANSPORT_UNAVAILABLE'));
        await own.restart();
        await eventually('published again once it is back', async () => (await publisher.publish(envelope(), 'Worker-1').catch(() => 'failed')) === 'published', 20_000);
      } finally {
        await conn.close();
        await own.stop();
      }
    });

    it('a dead-letter sink that fails keeps the message in the broker: it comes again and is recorded then', async (t) => {
      if (!nc) return void (await skipUnlessNats(t));
      const name = `T${randomUUID().slice(0, 8)}`;
      const stream = { name, subjects: [`${name.toLowerCase()}.>`] };
      const jsm = await jetstreamManager(nc);
      await ensureStream(jsm, stream, { duplicateWindowMs: 60_000, replicas: 1 });
      await ensureConsumer(jsm, name, { durable: 'test', ackWaitMs: 30_000, maxAckPending: 100 });
      let sinkCalls = 0;
      const recorded: string[] = [];
      const subscriber = createNatsSubscriber(nc, {
        stream: name, durable: 'test', concurrency: 1, namePrefix: 'T-', maxDeliveries: 1, retryDelayMs: () => 50,
        onDeadLetter: async (message) => {
          if (++sinkCalls === 1) throw new Error('dead_letters unreachable');
          recorded.push(message.messageId);
        },
        logger: quiet,
      });
      await subscriber.start(async () => { throw new AppError('POISON_MESSAGE', 'bad'); });
      const sent = envelope();
      await createNatsPublisher(nc, { stream, timeoutMs: 5_000 }).publish(sent, 'Worker-1');
      await eventually('recorded on the second try', () => recorded.length === 1, 10_000);
      assert.deepEqual(recorded, [sent.messageId]);
      await subscriber.close();
    });
  });
});

