// The benchmark's table: what was measured, then each target with ✓ or ✗.
import { Chalk, type ChalkInstance } from 'chalk';
import type { ApiResult } from './api.ts';
import type { BenchResult } from './bench.ts';
import type { NatsModeResult } from './nats-mode.ts';
import type { SnapshotResult } from './old-snapshot.ts';
import type { ReadersResult } from './stats-readers.ts';
import type { OrderWriteResult } from './order-write.ts';
import type { TracingResult } from './tracing.ts';
import { ms, rate } from './targets.ts';

export function formatBenchReport(result: BenchResult, color: boolean): string {
  const c = new Chalk({ level: color ? 2 : 0 });
  const { machine: m, options: o } = result;
  const lines: string[] = [];
  lines.push(c.bold(`outbox-demo benchmark: ${m.cpus} CPUs (${m.cpuModel}), ${m.memoryGb} GB, Node ${m.node}, ${m.database}`));
  lines.push('');
  const rows: Array<[string, string]> = [];
  rows.push([
    'PostgreSQL durable commits (the floor)',
    result.commitRates.map((r) => `${rate(r.commitsPerSecond)}/s from ${r.connections} connection${r.connections === 1 ? '' : 's'}`).join(' · '),
  ]);
  for (const t of result.throughput) {
    const label = t.mode === 'per-message' ? 'per-message' : 'batched';
    rows.push([
      `relay, ${label} (claims of ${t.batchSize}, ${o.workers} workers, best of ${t.rounds})`,
      `${rate(t.relayPerSecond)} events/s · ceiling ${rate(t.ceilingPerSecond)} · ratio ${t.ratio.toFixed(2)}`,
    ]);
  }
  for (const l of result.latency) {
    const label =
      l.wakeup === 'notify' ? `wake-up after commit, ${l.consumerMode}`
      : l.wakeup === 'notify-in-transaction' ? `wake-up, NOTIFY in the transaction, ${l.consumerMode}`
      : `polling only (every ${l.pollIntervalMs / 1000} s)`;
    const missing = l.missing > 0 ? c.red(` · ${l.missing} not seen`) : '';
    const cold = l.coldStart.count > 0
      ? c.gray(` · cold start (first ${l.warmupMs / 1000} s, not counted): p50 ${ms(l.coldStart.p50)} · p99 ${ms(l.coldStart.p99)}`)
      : '';
    rows.push([
      `latency, ${label}, ${l.rate} orders/s`,
      `p50 ${ms(l.p50)} · p95 ${ms(l.p95)} · p99 ${ms(l.p99)} (${l.count} orders)${missing}${cold}`,
    ]);
  }
  if (result.api) rows.push(...apiRows(result.api, o.apiOrders, c));
  if (result.oldSnapshot) rows.push(...snapshotRows(result.oldSnapshot));
  if (result.statsReaders) rows.push(...readersRows(result.statsReaders, c));
  if (result.orderWrite) rows.push(orderWriteRow(result.orderWrite));
  if (result.transports) rows.push(...transportRows(result.transports, c));
  if (result.tracing) rows.push(...tracingRows(result.tracing));
  const width = Math.max(...rows.map(([k]) => k.length));
  lines.push(c.bold('Measured'));
  for (const [k, v] of rows) lines.push(`  ${k.padEnd(width)}  ${v}`);

  lines.push('');
  lines.push(c.bold('Targets'));
  const nameWidth = Math.max(...result.targets.map((t) => t.name.length));
  const targetWidth = Math.max(...result.targets.map((t) => t.target.length));
  for (const t of result.targets) {
    const mark = t.met ? c.green('✓') : c.red('✗');
    lines.push(`  ${mark} ${t.name.padEnd(nameWidth)}  ${t.target.padEnd(targetWidth)}  ${t.measured}`);
  }

  if (result.claimPlan) {
    lines.push('');
    lines.push(
      c.bold(`Claim plan with ${rate(result.claimPlan.rows)} events waiting and ${rate(result.claimPlan.deadLetters)} dead letters`) +
        ' (EXPLAIN: index scans only, stopping after LIMIT rows; one probe per aggregate index per row walked)',
    );
    for (const line of result.claimPlan.plan.split('\n')) lines.push(`  ${line}`);
  }
  if (result.aggregateOrder) {
    const o = result.aggregateOrder;
    lines.push('');
    lines.push(c.bold(`Per-aggregate order: ${rate(o.events)} events drained`) + ` (best of ${o.rounds}; one event per aggregate at a time, stand-in consumer)`);
    for (const run of o.runs) {
      const shape = run.eventsPerAggregate === 1 ? 'single-event aggregates' : `${run.eventsPerAggregate} events per aggregate`;
      lines.push(`  ${shape.padEnd(24)} ${rate(run.aggregates).padStart(7)} aggregates  ${rate(run.perSecond).padStart(7)} events/s  (${(run.ratioToSingle * 100).toFixed(0)} % of single)`);
    }
  }
  lines.push('');
  const verdict = result.ok ? c.green('✓ every target met') : c.red(`✗ ${result.targets.filter((t) => !t.met).length} target(s) missed`);
  lines.push(`${verdict} · ${(result.durationMs / 1000).toFixed(0)} s in all`);
  return lines.join('\n');
}

function transportRows(t: NatsModeResult, c: ChalkInstance): Array<[string, string]> {
  const rows: Array<[string, string]> = [];
  for (const side of t.sides) {
    const label = side.mode === 'nats' ? 'NATS JetStream (two services)' : 'in-process';
    const missing = side.latency.missing > 0 ? c.red(` · ${side.latency.missing} not settled`) : '';
    rows.push([`${label}, drain of ${rate(t.events)} orders (best of ${t.rounds})`, `${rate(side.drainPerSecond)} orders settled/s`]);
    rows.push([
      `${label}, commit → settled, ${t.rate} orders/s`,
      `p50 ${ms(side.latency.p50)} · p95 ${ms(side.latency.p95)} · p99 ${ms(side.latency.p99)} (${side.latency.count} orders)${missing}`,
    ]);
  }
  rows.push(['  NATS / in-process drain', `ratio ${t.drainRatio.toFixed(2)}`]);
  return rows;
}

function snapshotRows(s: SnapshotResult): Array<[string, string]> {
  const { without: a, held: b, ratios: r } = s;
  const label = `old snapshot, drain of ${rate(s.events)} (per-message, ${s.workers} workers)`;
  return [
    [label, `${rate(b.eventsPerSecond)} events/s held open vs ${rate(a.eventsPerSecond)} without · ratio ${r.eventsPerSecond.toFixed(2)} (best of ${s.rounds})`],
    [
      '  claim at the end of the drain',
      `${ms(b.claimMs)} vs ${ms(a.claimMs)} (×${r.claimMs.toFixed(1)}) · index scan ${rate(b.claimScanBuffers)} buffers vs ${rate(a.claimScanBuffers)} ` +
        `(×${r.claimScanBuffers.toFixed(0)}; whole claim ${rate(b.claimBuffers)} vs ${rate(a.claimBuffers)})`,
    ],
    [
      '  consumer transaction at the end',
      `${ms(b.consumerMs)} vs ${ms(a.consumerMs)} · ratio ${r.consumerMs.toFixed(2)} (with a new counter row: ${ms(b.consumerFreshCounterMs)} vs ${ms(a.consumerFreshCounterMs)})`,
    ],
  ];
}

function readersRows(r: ReadersResult, c: ChalkInstance): Array<[string, string]> {
  const side = (x: ReadersResult['alone']) => `p50 ${ms(x.p50)} · p99 ${ms(x.p99)}`;
  const failed = r.alone.non201 + r.withReaders.non201;
  return [
    [
      `POST /orders, ${r.concurrency} in flight, ${rate(r.historyRows)} processed messages`,
      `alone ${side(r.alone)} · with ${r.withReaders.readers} GET /stats loops ${side(r.withReaders)} · p99 ratio ${r.p99Ratio.toFixed(2)}`,
    ],
    [
      '  orders not 201 · stats reads',
      `${failed > 0 ? c.red(String(failed)) : '0'} of ${rate(r.alone.count + r.withReaders.count)} · ${rate(r.withReaders.readsPerSecond)} GET /stats/s answered` +
        (r.withReaders.readFailures > 0 ? c.red(` (${r.withReaders.readFailures} failed)`) : ''),
    ],
  ];
}

function orderWriteRow(w: OrderWriteResult): [string, string] {
  const runs = (mode: keyof OrderWriteResult['runs']) => w.runs[mode].map(rate).join(', ');
  return [
    `order transaction directly, ${w.concurrency} callers on ${w.connections} connections (best of ${w.rounds})`,
    `no NOTIFY ${rate(w.perSecond['no-notify'])}/s (${runs('no-notify')}) · NOTIFY in the transaction ${rate(w.perSecond['in-transaction'])}/s (${runs('in-transaction')}) · wake-up after commit ${rate(w.perSecond['after-commit'])}/s (${runs('after-commit')})`,
  ];
}

function apiRows(api: ApiResult, orders: number, c: ChalkInstance): Array<[string, string]> {
  const rows: Array<[string, string]> = [
    [
      `order API over HTTP, ${api.concurrency} in flight`,
      `${rate(api.apiPerSecond)} orders/s (runs ${api.runs.map((r) => rate(r.ordersPerSecond)).join(', ')}) · direct ${rate(api.directPerSecond)} · ratio ${api.ratio.toFixed(2)}`,
    ],
  ];
  const failed = api.runs.reduce((sum, r) => sum + r.failed, 0);
  if (failed > 0) rows.push(['failed HTTP requests', c.red(String(failed))]);
  rows.push([
    `server RSS after each run of ${rate(orders)} orders`,
    api.runs.map((r) => (r.rssMb === undefined ? 'n/a' : `${r.rssMb.toFixed(0)} MB`)).join(' → ') + ` (${rate(api.ordersServed)} orders in all)`,
  ]);
  return rows;
}

function tracingRows(t: TracingResult): Array<[string, string]> {
  const label = `tracing, ${rate(t.orders)} orders over HTTP, ${t.concurrency} in flight (best of ${t.rounds})`;
  // Every round's writes/s too: on a busy machine the spread says how far "within noise" reaches.
  const line = (mode: keyof TracingResult['best']) =>
    `${rate(t.best[mode].writesPerSecond)} writes/s · ${rate(t.best[mode].endToEndPerSecond)} settled/s ` +
    `(rounds ${t.runs[mode].map((r) => rate(r.writesPerSecond)).join(' / ')})`;
  return [
    [label, `off ${line('off')} · rounds of "off" within ${((1 - t.offSpread) * 100).toFixed(0)}% of each other`],
    ['  on, no exporter (OTEL endpoint unset)', `${line('no-exporter')} · ratio to off ${t.ratio.writes.toFixed(2)} writes, ${t.ratio.endToEnd.toFixed(2)} settled`],
    ['  on, in-memory exporter (every span kept)', `${line('in-memory')} · ${rate(t.runs['in-memory'][0]?.spans ?? 0)} spans per run`],
  ];
}
