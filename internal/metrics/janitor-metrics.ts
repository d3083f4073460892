// The janitor's metrics: what this process's janitor pruned, when it last ran, how far behind
// it is. Observed in memory, like the relay's; kept in their own file so the janitor only
// needs the small JanitorObserver interface.
import { Counter, Gauge, type Registry } from 'prom-client';
import { PRUNED_TABLES, type JanitorObserver } from '../janitor/janitor.ts';

export function createJanitorMetrics(registers: Registry[]): JanitorObserver {
  const pruned = new Counter({
    name: 'janitor_rows_pruned_total',
    help: "Rows this process's janitor deleted because they outlived their retention, by table.",
    labelNames: ['table'],
    registers,
  });
  for (const table of PRUNED_TABLES) pruned.inc({ table }, 0); // every table present from the start, at 0
  const copies = new Counter({
    name: 'janitor_replay_copies_dropped_total',
    help: 'Processed messages whose replay copy (type, payload) was dropped after REPLAY_COPY_RETENTION; the rows stay.',
    registers,
  });
  const passes = new Counter({
    name: 'janitor_passes_total',
    help: "This process's janitor passes, by result: elected (it pruned), not_elected (another process held the lock), failed.",
    labelNames: ['result'],
    registers,
  });
  const lastRun = new Gauge({
    name: 'janitor_last_run_timestamp_seconds',
    help: 'When this process last finished a janitor pass as the elected janitor (Unix time).',
    registers,
  });
  const lag = new Gauge({
    name: 'janitor_lag_seconds',
    help: 'At the start of the latest pass: how long the oldest row due for removal had already waited (database clock). Stays below JANITOR_INTERVAL when some janitor keeps up.',
    registers,
  });
  return {
    onLag: (seconds) => lag.set(seconds),
    onPass(pass) {
      for (const table of PRUNED_TABLES) pruned.inc({ table }, pass.pruned[table]);
      copies.inc(pass.copiesDropped);
      passes.inc({ result: 'elected' });
      lastRun.setToCurrentTime();
    },
    onNotElected: () => passes.inc({ result: 'not_elected' }),
    onFailed: () => passes.inc({ result: 'failed' }),
  };
}
