// Replay over NATS JetStream (TRANSPORT=nats): the two layers of de-duplication, one after
// the other, on copies of messages the inventory service already processed (its inbox keeps
// them: processed_messages in the inventory's own database).
//
// (a) Broker: each copy is published again with the SAME JetStream message id (Nats-Msg-Id =
//     the outbox message id), as the relay does when it retries. Inside the stream's duplicate
//     window the publish acknowledgement says "duplicate": nothing is stored, nothing delivered.
// (b) Inbox: each copy is published again with a NEW JetStream message id but the same
//     Outbox-Message-Id header: a redelivery the broker cannot recognise (past the window, or
//     republished by hand). It is stored and delivered; the inventory's inbox skips it
//     (a skipped_duplicates row) and the stock does not move.
import { randomUUID } from 'node:crypto';
import type { Pool } from '../db/pool.ts';
import { lastSkipId, skipsSince, type MessageCopy } from '../inventory/processed.ts';
import type { Logger } from '../log/logger.ts';
import { countOutbox } from '../outbox/outbox.ts';
import type { Publisher } from '../transport/transport.ts';
import { aggregateOf, pickMessages, processedCount, stockMap, waitFor } from './replay.ts';

export interface BrokerReplayOptions {
  /** Replay the most recent `count` processed messages (ignored when messageIds is given). */
  count: number;
  messageIds: string[];
  waitTimeoutMs: number;
}

export interface BrokerReplayDeps {
  /** The inventory service's database: its inbox, its stock, its reply outbox. */
  inventoryPool: Pool;
  /** A publisher on the ORDERS stream (the one the order service's relay uses). */
  publisher: Publisher;
  /** Messages the inventory's durable consumer has not yet had acknowledged (pending + ack pending). */
  consumerBacklog(): Promise<number>;
  logger: Logger;
}

export interface BrokerReplayResult {
  path: 'nats';
  replayed: string[];
  notReplayable: string[];
  /** Layer (a): republished with the same Nats-Msg-Id. */
  sameId: {
    /** The broker said "duplicate": not stored, not delivered. */
    droppedByBroker: string[];
    /** Stored after all (older than the duplicate window): the inbox must skip these too. */
    stored: string[];
  };
  /** Layer (b): republished with a new Nats-Msg-Id, the same Outbox-Message-Id. */
  newId: { stored: string[] };
  /** Copies that reached the inventory and were skipped by its inbox, with the handler. */
  skips: Array<{ messageId: string; handledBy: string }>;
  /** Stored copies nobody skipped within the wait. */
  unanswered: string[];
  stockBefore: Record<string, number>;
  stockAfter: Record<string, number>;
  processedBefore: number;
  processedAfter: number;
  /** Replies waiting in the inventory's outbox before and after: a skipped copy writes none. */
  replyOutboxBefore: number;
  replyOutboxAfter: number;
  ok: boolean;
}

export async function runBrokerReplay(options: BrokerReplayOptions, deps: BrokerReplayDeps): Promise<BrokerReplayResult> {
  const log = deps.logger.child('Replay');
  const pool = deps.inventoryPool;
  log.info('TRANSPORT=nats: republishing processed messages to the ORDERS stream, first with the same JetStream message id, then with a new one');

  const { copies, notReplayable } = await pickMessages(pool, options, undefined);
  for (const id of notReplayable) log.warn(`message ${id} cannot be replayed: the inventory never processed it, or its copy is gone`);
  if (copies.length === 0) log.warn('nothing to replay: place an order first (npm run stress)');

  const stockBefore = await stockMap(pool);
  const processedBefore = await processedCount(pool);
  const replyOutboxBefore = (await countOutbox(pool)).pending;
  const watermark = await lastSkipId(pool);
  const ids = copies.map((c) => c.messageId);

  const sameId: BrokerReplayResult['sameId'] = { droppedByBroker: [], stored: [] };
  for (const copy of copies) {
    const outcome = await deps.publisher.publish(envelope(copy), 'Replay');
    if (outcome === 'duplicate') {
      sameId.droppedByBroker.push(copy.messageId);
      log.info(`(a) message ${copy.messageId}, same Nats-Msg-Id → the broker says duplicate: not stored, not delivered`);
    } else {
      sameId.stored.push(copy.messageId);
      log.warn(`(a) message ${copy.messageId}, same Nats-Msg-Id → stored: older than the duplicate window; the inbox must skip it`);
    }
  }
  const newId: BrokerReplayResult['newId'] = { stored: [] };
  for (const copy of copies) {
    const natsMsgId = randomUUID();
    await deps.publisher.publish({ ...envelope(copy), natsMsgId }, 'Replay');
    newId.stored.push(copy.messageId);
    log.info(`(b) message ${copy.messageId}, new Nats-Msg-Id ${natsMsgId.slice(0, 8)}… → stored: a copy the broker cannot catch; the inventory's inbox must skip it`);
  }

  // Every stored copy is skipped once, and the consumer has nothing left to hand over (so a
  // copy the broker had wrongly stored would have shown up as a second skip by now).
  const expected = sameId.stored.length + newId.stored.length;
  await waitFor(
    async () => (await skipsSince(pool, watermark, ids)).length >= expected && (await deps.consumerBacklog()) === 0,
    options.waitTimeoutMs,
  );
  const skips = await skipsSince(pool, watermark, ids);
  for (const skip of skips) log.info(`message ${skip.messageId} skipped by the inventory's inbox (${skip.handledBy})`);
  const skippedTimes = new Map<string, number>();
  for (const skip of skips) skippedTimes.set(skip.messageId, (skippedTimes.get(skip.messageId) ?? 0) + 1);
  const storedTimes = (id: string) => (sameId.stored.includes(id) ? 2 : 1);
  const unanswered = ids.filter((id) => (skippedTimes.get(id) ?? 0) < storedTimes(id));
  if (unanswered.length > 0) {
    log.warn(`${unanswered.length} stored copy(ies) not skipped within ${options.waitTimeoutMs} ms: is the inventory service running (TRANSPORT=nats npm run inventory)?`);
  }

  const stockAfter = await stockMap(pool);
  const processedAfter = await processedCount(pool);
  const replyOutboxAfter = (await countOutbox(pool)).pending;
  const stockUnchanged = Object.entries(stockBefore).every(([id, n]) => stockAfter[id] === n);
  const tooMany = ids.some((id) => (skippedTimes.get(id) ?? 0) > storedTimes(id));
  return {
    path: 'nats',
    replayed: ids,
    notReplayable,
    sameId,
    newId,
    skips,
    unanswered,
    stockBefore,
    stockAfter,
    processedBefore,
    processedAfter,
    replyOutboxBefore,
    replyOutboxAfter,
    ok:
      ids.length > 0 && notReplayable.length === 0 && unanswered.length === 0 && !tooMany &&
      stockUnchanged && processedAfter === processedBefore && replyOutboxAfter <= replyOutboxBefore,
  };
}

/** The copy as it was published, its position included (a cancellation without it would be poison). */
function envelope(copy: MessageCopy) {
  return { messageId: copy.messageId, eventType: copy.eventType, aggregateId: aggregateOf(copy), payload: copy.payload, sequence: copy.sequence };
}
