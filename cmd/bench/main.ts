// npm run bench: measure the pipeline on a fresh database and print the Performance table.
import { Command, InvalidArgumentError } from 'commander';
import { intAtLeast, positiveInt } from '../../internal/cli/args.ts';
import { describeFailure, orExit } from '../../internal/cli/exit.ts';
import { BENCH_DEFAULTS, BENCH_PARTS, runBenchmark, type BenchPart } from '../../internal/bench/bench.ts';
import { formatBenchReport } from '../../internal/bench/report.ts';
import { colorEnabled, loadConfig } from '../../internal/config/config.ts';
import { createConsoleLogger } from '../../internal/log/logger.ts';

const d = BENCH_DEFAULTS;
const options = new Command('bench')
  .description('relay throughput vs its ceiling, wake-up latency, API throughput vs direct, server memory, an old snapshot, stats readers, in-process vs NATS')
  .option('--events <n>', 'pre-filled events the relay drains, per mode', positiveInt, d.events)
  .option('--rounds <n>', 'relay and ceiling runs per mode, alternating; best of each', positiveInt, d.rounds)
  .option('--workers <n>', 'relay workers (and ceiling connections)', positiveInt, d.workers)
  .option('--batch-size <n>', 'claim size in per-message mode (and for the API server)', positiveInt, d.batchSize)
  .option('--batched-batch-size <n>', 'claim size in batched mode', positiveInt, d.batchedBatchSize)
  .option('--rate <n>', 'offered load for the latency runs, orders/s', positiveInt, d.rate)
  .option('--high-rate <n>', 'the busier offered load for the wake-up latency runs, orders/s', positiveInt, d.highRate)
  .option('--latency-seconds <n>', 'duration of each latency run', positiveInt, d.latencyMs / 1000)
  .option('--latency-warmup-seconds <n>', 'load offered before each latency run, left out of its percentiles (its cold start is shown apart; 0: none)', intAtLeast(0), d.latencyWarmupMs / 1000)
  .option('--api-orders <n>', 'orders per API run (and for the direct run)', positiveInt, d.apiOrders)
  .option('--api-concurrency <n>', 'requests in flight', positiveInt, d.apiConcurrency)
  .option('--api-runs <n>', 'API runs (memory must not grow across them)', positiveInt, d.apiRuns)
  .option('--explain-rows <n>', 'events waiting when the claim is EXPLAINed', positiveInt, d.explainRows)
  .option('--snapshot-events <n>', 'events per drain with and without an old snapshot', positiveInt, d.snapshotEvents)
  .option('--reader-rows <n>', 'processed messages under the stats readers run', positiveInt, d.readerRows)
  .option('--readers <n>', 'clients looping on GET /stats', positiveInt, d.readers)
  .option('--reader-orders <n>', 'orders per readers run (alone and with readers, each round)', positiveInt, d.readerOrders)
  .option('--reader-concurrency <n>', 'orders in flight in the readers runs', positiveInt, d.readerConcurrency)
  .option('--nats-events <n>', 'orders per drain in the in-process vs NATS part, per mode', positiveInt, d.natsEvents)
  .option('--tracing-orders <n>', 'orders per tracing run (off, no exporter, in-memory exporter; each round)', positiveInt, d.tracingOrders)
  .option('--tracing-concurrency <n>', 'orders in flight in the tracing runs', positiveInt, d.tracingConcurrency)
  .option('--ordering-events <n>', 'events per drain in the per-aggregate order part (1, 2 and 5 events per aggregate)', positiveInt, d.orderingEvents)
  .option('--only <part...>', `only these parts (space- or comma-separated): ${BENCH_PARTS.join(', ')} (default: all)`, parts)
  .option('--json', 'print one JSON result object instead of the table')
  .parse()
  .opts<{
    events: number; rounds: number; workers: number; batchSize: number; batchedBatchSize: number; rate: number; highRate: number; latencySeconds: number; latencyWarmupSeconds: number;
    apiOrders: number; apiConcurrency: number; apiRuns: number; explainRows: number; snapshotEvents: number; readerRows: number;
    readers: number; readerOrders: number; readerConcurrency: number; natsEvents: number; tracingOrders: number; tracingConcurrency: number; orderingEvents: number; only?: BenchPart[]; json?: boolean;
  }>();

const config = orExit(() => loadConfig(), 'benchmark could not start');
const logger = createConsoleLogger({ level: 'warn', color: colorEnabled(process.stderr), stream: process.stderr });
try {
  const result = await runBenchmark(
    config,
    { ...options, latencyMs: options.latencySeconds * 1000, latencyWarmupMs: options.latencyWarmupSeconds * 1000, only: options.only ?? [] },
    { logger, onPhase: (message) => process.stderr.write(`… ${message}\n`) },
  );
  const color = !options.json && colorEnabled(process.stdout);
  process.stdout.write(`${options.json ? JSON.stringify(result, null, 2) : formatBenchReport(result, color)}\n`);
  process.exitCode = result.ok ? 0 : 1;
} catch (error) {
  // Exit 1 means "ran, and missed a target"; a benchmark that could not run is 2.
  process.stderr.write(`${describeFailure(error, 'benchmark failed').text}\n`);
  process.exitCode = 2;
}


/** `--only snapshot readers` or `--only snapshot,readers`. */
function parts(value: string, previous: BenchPart[] | undefined): BenchPart[] {
  const named = value.split(',').filter((name) => name !== '');
  for (const name of named) {
    if (!(BENCH_PARTS as readonly string[]).includes(name)) throw new InvalidArgumentError(`one of ${BENCH_PARTS.join(', ')}`);
  }
  return [...(previous ?? []), ...(named as BenchPart[])];
}
