// What the stress test shows a person: live progress while it fires, then a report.
import { Chalk } from 'chalk';
import type { StressResult } from './stress.ts';

export interface Progress {
  update(done: number, accepted: number, failed: number): void;
  /** Ends the live line so what follows starts on a fresh one. */
  finish(): void;
}

/**
 * On a terminal, one line redrawn in place (at most ~10 times a second); piped, a plain
 * line at every tenth of the way, so logs stay readable.
 */
export function createProgress(
  stream: NodeJS.WritableStream,
  options: { total: number; tty: boolean; color: boolean },
): Progress {
  const chalk = new Chalk({ level: options.color ? 2 : 0 });
  const step = Math.max(1, Math.ceil(options.total / 10));
  let lastDraw = 0;
  let lastLine = 0;
  let drawn = false;
  const line = (done: number, accepted: number, failed: number) => {
    const width = 30;
    const filled = Math.round((done / Math.max(1, options.total)) * width);
    const bar = chalk.green('█'.repeat(filled)) + chalk.gray('░'.repeat(width - filled));
    const failedText = failed > 0 ? chalk.red(`failed ${failed}`) : `failed ${failed}`;
    return `${bar} ${done}/${options.total} sent · ${chalk.green(`accepted ${accepted}`)} · ${failedText}`;
  };
  return {
    update(done, accepted, failed) {
      if (options.tty) {
        const now = Date.now();
        if (done < options.total && now - lastDraw < 100) return;
        lastDraw = now;
        drawn = true;
        stream.write(`\r\x1b[2K${line(done, accepted, failed)}`);
      } else if (done === options.total || done - lastLine >= step) {
        lastLine = done;
        stream.write(`${line(done, accepted, failed)}\n`);
      }
    },
    finish() {
      if (options.tty && drawn) stream.write('\n');
      drawn = false;
    },
  };
}

export function formatStressReport(result: StressResult, color: boolean): string {
  const c = new Chalk({ level: color ? 2 : 0 });
  const ok = c.green('✓');
  const bad = c.red('✗');
  const ms = (n: number) => `${Math.round(n)} ms`;
  const lines: string[] = [];
  const label = (text: string) => c.bold(text.padEnd(12));

  lines.push(c.bold(`Stress test: ${result.requested} orders, ${result.concurrency} at a time → ${result.url}`));
  const failures = Object.entries(result.failedByStatus).map(([status, n]) => `${n} × ${status}`).join(', ');
  lines.push(
    `${label('requests')}${result.accepted === result.requested ? ok : bad} ${result.accepted}/${result.requested} accepted` +
      (result.failed > 0 ? c.red(`, ${result.failed} failed (${failures})`) : ', 0 failed') +
      (result.sent < result.requested ? c.yellow(`, ${result.requested - result.sent} never sent (interrupted)`) : ''),
  );
  lines.push(
    `${label('speed')}${result.requestsPerSecond.toFixed(0)} orders/s over ${ms(result.durationMs)}; ` +
      `latency p50 ${ms(result.latencyMs.p50)} · p95 ${ms(result.latencyMs.p95)} · max ${ms(result.latencyMs.max)}`,
  );

  if (!result.drain.waited) {
    lines.push(c.gray('(not waiting for the relay: run without --no-wait to check the invariant)'));
    return lines.join('\n');
  }

  const d = result.drain;
  lines.push(
    `${label('drain')}${d.drained ? ok : bad} ` +
      (d.drained
        ? `outbox empty and every order settled ${ms(d.msAfterLastAccept ?? 0)} after the last accept`
        : `not drained: ${d.unsettled} order(s) unsettled, ${d.outboxLeft} event(s) in the outbox`) +
      ` (${d.confirmed} CONFIRMED, ${d.rejected} REJECTED${d.cancelled > 0 ? `, ${d.cancelled} CANCELLED` : ''})`,
  );
  const k = result.cancellations;
  if (k.requested > 0) {
    lines.push(
      `${label('cancels')}${k.failed === 0 ? ok : bad} ${k.early + k.afterSettling}/${k.requested} cancelled ` +
        `(${k.early} right after placing, ${k.afterSettling} once settled)` +
        (k.notCancellable > 0 ? `, ${k.notCancellable} refused (409: the order was REJECTED)` : '') +
        (k.failed > 0 ? c.red(`, ${k.failed} failed`) : ''),
    );
  }

  if (result.transport === 'nats') {
    lines.push(`${label('workers')}both services shared the work, NATS JetStream between them:`);
    lines.push(...workerBars(c, 'order service relay workers published', result.publishedByWorker, 'event'));
    lines.push(...workerBars(c, 'inventory service handlers took', result.deliveriesByWorker, 'message'));
  } else {
    const workers = Object.entries(result.deliveriesByWorker);
    lines.push(`${label('workers')}${workers.length} shared the ${workers.reduce((s, [, n]) => s + n, 0)} deliveries`);
    lines.push(...workerBars(c, '', result.deliveriesByWorker, ''));
  }
  lines.push(
    `${label('duplicates')}${result.duplicatesSkipped} skipped` +
      c.gray(result.duplicatesSkipped === 0 ? ' (a clean run redelivers nothing)' : ' (redeliveries recognised and ignored)'),
  );

  lines.push(c.bold(result.stockSource === 'inventory-database' ? "stock (the inventory service's database)" : 'stock'));
  for (const s of result.stock.filter((x) => x.before !== x.after || x.confirmedQuantity > 0)) {
    lines.push(
      `${' '.repeat(12)}${s.holds ? ok : bad} ${s.productId.padEnd(10)} ${s.before} → ${s.after}` +
        ` (−${s.before - s.after}; confirmed orders took ${s.confirmedQuantity}${result.cancellations.requested > 0 ? ', cancelled ones gave theirs back' : ''})`,
    );
  }

  if (result.invariant.holds) {
    lines.push(`${label('invariant')}${ok} ${c.green('stock moved exactly by the confirmed orders; no accepted order lost; outbox empty')}`);
  } else {
    lines.push(`${label('invariant')}${bad} ${c.red('does not hold:')}`);
    for (const problem of result.invariant.problems) lines.push(`${' '.repeat(12)}${c.red(`- ${problem}`)}`);
  }
  return lines.join('\n');
}

/** One bar per worker, under a heading when given (the NATS report has two groups). */
function workerBars(c: InstanceType<typeof Chalk>, heading: string, counts: Record<string, number>, unit: string): string[] {
  const workers = Object.entries(counts).sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }));
  const total = workers.reduce((s, [, n]) => s + n, 0);
  const lines = heading ? [`${' '.repeat(12)}${heading} ${total} ${unit}${total === 1 ? '' : 's'} (${workers.length} worker${workers.length === 1 ? '' : 's'}):`] : [];
  const most = Math.max(1, ...workers.map(([, n]) => n));
  for (const [worker, count] of workers) {
    const bar = '█'.repeat(Math.max(1, Math.round((count / most) * 24)));
    lines.push(`${' '.repeat(heading ? 14 : 12)}${worker.padEnd(heading ? 12 : 10)} ${c.cyan(bar)} ${count}`);
  }
  return lines;
}
