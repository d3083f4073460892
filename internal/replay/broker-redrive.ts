// `npm run replay -- --dead-letters` with TRANSPORT=nats. Each service has two kinds of dead
// letters: events of its own outbox that could not be published (back into that outbox, as
// in-process: its relay publishes them), and messages it received and gave up on (published
// back to the stream they came from, under a new JetStream message id so the broker does not
// drop them as duplicates, with the same outbox message id so the inbox still recognises one
// that was applied after all).
import { randomUUID } from 'node:crypto';
import type { Pool } from '../db/pool.ts';
import type { Logger } from '../log/logger.ts';
import { forgetReceivedDeadLetter, listReceivedDeadLetters, redriveDeadLetters } from '../outbox/dead-letters.ts';
import type { Publisher } from '../transport/transport.ts';

/** One service's side: its database and the stream its received messages came from. */
export interface ServiceDeadLetters {
  /** "order service", "inventory service": for the report. */
  service: string;
  pool: Pool;
  /** The stream its subscriber consumes (where received dead letters go back to). */
  receivedFrom: string;
  /** Publishes to that stream. */
  publisher: Publisher;
}

export interface BrokerRedriveResult {
  /** Own outbox events put back, per service. */
  intoOutbox: Record<string, string[]>;
  /** Received messages published back, per stream. */
  republished: Record<string, string[]>;
  /** Received messages that could not be published (they stay dead letters). */
  failed: Array<{ messageId: string; error: string }>;
  ok: boolean;
}

export async function redriveOverBroker(sides: readonly ServiceDeadLetters[], messageIds: readonly string[], logger: Logger): Promise<BrokerRedriveResult> {
  const log = logger.child('Replay');
  const only = messageIds.length > 0 ? messageIds : undefined;
  const result: BrokerRedriveResult = { intoOutbox: {}, republished: {}, failed: [], ok: true };
  for (const side of sides) {
    const own = await redriveDeadLetters(side.pool, only);
    result.intoOutbox[side.service] = own;
    if (own.length > 0) log.info(`${side.service}: ${own.length} dead letter(s) of its own outbox put back; its relay publishes them`);
    const received = await listReceivedDeadLetters(side.pool, side.receivedFrom, only);
    const sent: string[] = [];
    for (const message of received) {
      try {
        await side.publisher.publish({ ...message, natsMsgId: randomUUID() }, 'Replay');
        await forgetReceivedDeadLetter(side.pool, message.messageId);
        sent.push(message.messageId);
      } catch (error) {
        result.failed.push({ messageId: message.messageId, error: error instanceof Error ? error.message : String(error) });
      }
    }
    result.republished[side.receivedFrom] = sent;
    if (sent.length > 0) log.info(`${side.service}: ${sent.length} received dead letter(s) published back to ${side.receivedFrom}`);
  }
  const total = Object.values(result.intoOutbox).flat().length + Object.values(result.republished).flat().length;
  if (total === 0 && result.failed.length === 0) log.info('no dead letters to re-drive');
  result.ok = result.failed.length === 0 && (only === undefined || total === only.length);
  return result;
}
