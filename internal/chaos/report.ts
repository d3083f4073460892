// The chaos run's closing table.
import { Chalk } from 'chalk';
import type { ChaosResult } from './chaos.ts';

export function formatChaosReport(result: ChaosResult, color: boolean): string {
  const c = new Chalk({ level: color ? 2 : 0 });
  const a = result.audit;
  const must0 = (n: number) => (n === 0 ? `${c.green('✓')} ${n}` : `${c.red('✗')} ${c.red(String(n))}`) + c.gray('  (must be 0)');
  const o = result.options;
  const row = (label: string, value: string) => `  ${label.padEnd(20)}${value}`;
  const n = result.nats;
  const lines = [
    c.bold(
      n
        ? `Chaos run over NATS (seed ${result.seed}): ${o.orders} orders, ${result.killsDone}/${o.kills} order-service kills, ` +
            `${n.inventoryKillsDone}/${n.inventoryKills} inventory kills, ${n.brokerRestartsDone}/${n.brokerRestarts} nats-server restarts, ` +
            `${result.dbRestartsDone}/${o.dbRestarts} PostgreSQL restarts, fail rate ${o.failRate}, ${(result.durationMs / 1000).toFixed(1)} s`
        : `Chaos run (seed ${result.seed}): ${o.orders} orders, ${result.killsDone}/${o.kills} kills, ` +
            `${result.dbRestartsDone}/${o.dbRestarts} PostgreSQL restarts, fail rate ${o.failRate}, ${(result.durationMs / 1000).toFixed(1)} s`,
    ),
    row('accepted', `${a.accepted}/${o.orders}` + (result.refused > 0 ? c.red(` (${result.refused} refused with a 4xx)`) : '')),
    row('confirmed', String(a.confirmed)),
    row('rejected', String(a.rejected)),
    row('lost', must0(a.lost)),
    row('extra orders', must0(a.extraOrders)),
    row('applied twice', must0(a.appliedTwice)),
    ...(n
      ? [
          row('inbox mismatches', must0(n.audit.inboxMismatches) + c.gray('  (each OrderCreated once in the inventory inbox)')),
          row('replies twice', must0(n.audit.repliesAppliedTwice)),
        ]
      : []),
    row('stock mismatches', must0(a.stockMismatches.length)),
    row('outbox left', must0(a.outboxLeft)),
    ...(n ? [row('reply outbox left', must0(n.audit.inventoryOutboxLeft))] : []),
    ...(n ? natsRows(result, c, row) : []),
    ...(n ? [] : [row(
      'duplicates skipped',
      `${a.duplicatesSkipped}` + c.gray(a.duplicatesSkipped > 0 ? '  (crash windows were hit: redelivered, recognised, skipped)' : '  (no kill landed between commit and delete this time)'),
    )]),
    row(
      'dead letters',
      `${result.deadLettered} during the run` + (result.redriven > 0 ? `, ${result.redriven} re-driven at the end` : '') + `; ${a.deadLettersLeft} left`,
    ),
    ...(result.serverErrors > 0 ? [row('server errors', must0(result.serverErrors))] : []),
    row('client retries', `${result.clientRetries}` + c.gray('  (no answer or 503: sent again with the same Idempotency-Key)')),
  ];
  for (const problem of a.stockMismatches) lines.push(c.red(`  - ${problem}`));
  for (const letter of result.nats?.audit.deadLetters ?? []) lines.push(c.red(`  - dead letter, ${letter}`));
  lines.push(
    result.ok
      ? c.green.bold('✓ nothing lost, nothing applied twice, stock matches every confirmed order')
      : c.red.bold('✗ an invariant did not hold: repeat this exact run with the same --seed'),
  );
  return lines.join('\n');
}

/** Where the two layers caught copies: the broker (Nats-Msg-Id) and each service's inbox. */
function natsRows(result: ChaosResult, c: InstanceType<typeof Chalk>, row: (label: string, value: string) => string): string[] {
  const n = result.nats!;
  const dropped = n.brokerDroppedDuplicates;
  const stored = `${n.streamMessages.orders} in ORDERS, ${n.streamMessages.inventory} in INVENTORY`;
  return [
    row('broker dropped', `${dropped.orderService + dropped.inventory}` + c.gray(`  (republished with the same Nats-Msg-Id: ${dropped.orderService} OrderCreated, ${dropped.inventory} replies)`)),
    row('inventory skipped', `${n.audit.duplicatesSkipped}` + c.gray('  (OrderCreated delivered again, recognised by the inventory inbox)')),
    row('replies skipped', `${n.audit.replyDuplicatesSkipped}` + c.gray("  (replies delivered again, recognised by the order service's inbox)")),
    row('stream messages', stored + c.gray(`  (${result.audit.accepted} each when the broker stored nothing twice)`)),
  ];
}
