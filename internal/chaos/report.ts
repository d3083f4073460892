// The chaos run's closing table.
import { Chalk } from 'chalk';
import type { ChaosResult } from './chaos.ts';

export function formatChaosReport(result: ChaosResult, color: boolean): string {
  const c = new Chalk({ level: color ? 2 : 0 });
  const a = result.audit;
  const must0 = (n: number) => (n === 0 ? `${c.green('✓')} ${n}` : `${c.red('✗')} ${c.red(String(n))}`) + c.gray('  (must be 0)');
  const o = result.options;
  const row = (label: string, value: string) => `  ${label.padEnd(20)}${value}`;
  const lines = [
    c.bold(
      `Chaos run (seed ${result.seed}): ${o.orders} orders, ${result.killsDone}/${o.kills} kills, ` +
        `${result.dbRestartsDone}/${o.dbRestarts} PostgreSQL restarts, fail rate ${o.failRate}, ${(result.durationMs / 1000).toFixed(1)} s`,
    ),
    row('accepted', `${a.accepted}/${o.orders}` + (result.refused > 0 ? c.red(` (${result.refused} refused with a 4xx)`) : '')),
    row('confirmed', String(a.confirmed)),
    row('rejected', String(a.rejected)),
    row('lost', must0(a.lost)),
    row('extra orders', must0(a.extraOrders)),
    row('applied twice', must0(a.appliedTwice)),
    row('stock mismatches', must0(a.stockMismatches.length)),
    row('outbox left', must0(a.outboxLeft)),
    row(
      'duplicates skipped',
      `${a.duplicatesSkipped}` + c.gray(a.duplicatesSkipped > 0 ? '  (crash windows were hit: redelivered, recognised, skipped)' : '  (no kill landed between commit and delete this time)'),
    ),
    row(
      'dead letters',
      `${result.deadLettered} during the run` + (result.redriven > 0 ? `, ${result.redriven} re-driven at the end` : '') + `; ${a.deadLettersLeft} left`,
    ),
    ...(result.serverErrors > 0 ? [row('server errors', must0(result.serverErrors))] : []),
    row('client retries', `${result.clientRetries}` + c.gray('  (no answer or 503: sent again with the same Idempotency-Key)')),
  ];
  for (const problem of a.stockMismatches) lines.push(c.red(`  - ${problem}`));
  lines.push(
    result.ok
      ? c.green.bold('✓ nothing lost, nothing applied twice, stock matches every confirmed order')
      : c.red.bold('✗ an invariant did not hold: repeat this exact run with the same --seed'),
  );
  return lines.join('\n');
}
