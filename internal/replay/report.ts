// The replay's closing summary.
import { Chalk } from 'chalk';
import { formatDuration } from '../config/duration.ts';
import type { PurgeResult } from './purge.ts';
import type { BrokerReplayResult } from './broker-replay.ts';
import type { ReplayResult } from './replay.ts';

export function formatReplayReport(result: ReplayResult, color: boolean): string {
  const c = new Chalk({ level: color ? 2 : 0 });
  const mark = (good: boolean) => (good ? c.green('✓') : c.red('✗'));
  const label = (text: string) => c.bold(text.padEnd(12));
  const how = result.path === 'server-workers' ? "through the outbox and the server's workers" : 'straight to the consumer, in this process';
  const lines = [c.bold(`Replay: ${result.replayed.length} duplicate(s), delivered ${how}`)];

  if (result.fresh) {
    lines.push(`${label('fresh')}message ${result.fresh.messageId}: first delivery ${result.fresh.firstOutcome} by ${result.fresh.firstDeliveredBy}`);
  }
  const skippedIds = new Set(result.skips.map((s) => s.messageId));
  const by = [...new Set(result.skips.map((s) => s.handledBy))].join(', ');
  lines.push(
    `${label('skipped')}${mark(result.unanswered.length === 0 && result.replayed.length > 0)} ` +
      `${skippedIds.size}/${result.replayed.length}${by ? ` (by ${by})` : ''}`,
  );
  if (result.notReplayable.length > 0) {
    lines.push(`${label('not found')}${mark(false)} ${result.notReplayable.join(', ')}`);
  }
  const changed = Object.entries(result.stockBefore).filter(([id, n]) => result.stockAfter[id] !== n);
  lines.push(
    `${label('stock')}${mark(changed.length === 0)} ` +
      (changed.length === 0
        ? `unchanged (${Object.entries(result.stockAfter).map(([id, n]) => `${id} ${n}`).join(', ')})`
        : `changed: ${changed.map(([id, n]) => `${id} ${n} → ${result.stockAfter[id]}`).join(', ')}`),
  );
  lines.push(
    `${label('processed')}${mark(result.processedAfter === result.processedBefore)} ` +
      (result.processedAfter === result.processedBefore
        ? `unchanged at ${result.processedAfter} messages`
        : `${result.processedBefore} → ${result.processedAfter}`),
  );
  lines.push(
    result.ok
      ? `${label('verdict')}${c.green('✓ every duplicate was recognised and skipped; nothing changed')}`
      : `${label('verdict')}${c.red('✗ see above')}`,
  );
  return lines.join('\n');
}

/** TRANSPORT=nats: the two layers of de-duplication, each with its own count. */
export function formatBrokerReplayReport(result: BrokerReplayResult, color: boolean): string {
  const c = new Chalk({ level: color ? 2 : 0 });
  const mark = (good: boolean) => (good ? c.green('✓') : c.red('✗'));
  const label = (text: string) => c.bold(text.padEnd(12));
  const n = result.replayed.length;
  const lines = [c.bold(`Replay over NATS JetStream: ${n} processed message(s), each republished twice to the ORDERS stream`)];
  const dropped = result.sameId.droppedByBroker.length;
  lines.push(
    `${label('(a) broker')}${mark(dropped === n && n > 0)} ${dropped}/${n} dropped by JetStream: same Nats-Msg-Id inside the duplicate window, ` +
      'the publish ack said "duplicate", nothing stored or delivered',
  );
  if (result.sameId.stored.length > 0) {
    lines.push(`${' '.repeat(12)}${c.yellow(`${result.sameId.stored.length} stored anyway (older than the duplicate window): left to the inbox`)}`);
  }
  const by = [...new Set(result.skips.map((s) => s.handledBy))].join(', ');
  const skippedNewId = Math.min(result.newId.stored.length, new Set(result.skips.map((s) => s.messageId)).size);
  lines.push(
    `${label('(b) inbox')}${mark(result.unanswered.length === 0 && n > 0)} ${skippedNewId}/${result.newId.stored.length} skipped by the inventory's inbox: ` +
      `new Nats-Msg-Id, same Outbox-Message-Id, delivered by the broker${by ? ` (by ${by})` : ''}`,
  );
  if (result.notReplayable.length > 0) lines.push(`${label('not found')}${mark(false)} ${result.notReplayable.join(', ')}`);
  const changed = Object.entries(result.stockBefore).filter(([id, v]) => result.stockAfter[id] !== v);
  lines.push(
    `${label('stock')}${mark(changed.length === 0)} ` +
      (changed.length === 0
        ? `unchanged in the inventory's database (${Object.entries(result.stockAfter).map(([id, v]) => `${id} ${v}`).join(', ')})`
        : `changed: ${changed.map(([id, v]) => `${id} ${v} → ${result.stockAfter[id]}`).join(', ')}`),
  );
  lines.push(
    `${label('processed')}${mark(result.processedAfter === result.processedBefore)} ` +
      (result.processedAfter === result.processedBefore ? `unchanged at ${result.processedAfter} messages` : `${result.processedBefore} → ${result.processedAfter}`) +
      `; no second reply (${result.replyOutboxAfter} in the reply outbox)`,
  );
  lines.push(
    result.ok
      ? `${label('verdict')}${c.green('✓ the broker dropped what it could recognise, the inbox skipped the rest; nothing changed')}`
      : `${label('verdict')}${c.red('✗ see above')}`,
  );
  return lines.join('\n');
}

/** What --purge removed: one line per dead letter, so the output is the record of it. */
export function formatPurgeReport(result: PurgeResult, color: boolean): string {
  const c = new Chalk({ level: color ? 2 : 0 });
  const age = formatDuration(result.olderThanMs);
  const dead = result.purged.filter((p) => !p.behind);
  if (dead.length === 0) return `No dead letters older than ${age}: nothing purged.`;
  const lines = [c.bold(`Purged ${dead.length} dead letter(s) older than ${age}:`)];
  for (const one of result.purged) {
    lines.push(
      one.behind
        ? `    ${one.messageId}  ${one.eventType} #${one.sequence}  parked behind it in the outbox: given up with it (it could never be applied in order)`
        : `  ${one.messageId}  ${one.eventType} #${one.sequence}  aggregate ${one.aggregateId}  dead since ${one.deadAt.toISOString()}` +
            `  last error: ${one.lastError ?? 'none'}`,
    );
  }
  return lines.join('\n');
}
