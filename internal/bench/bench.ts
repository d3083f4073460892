// `npm run bench`: every number of the Performance section, measured in one run on fresh
// databases, each next to the ceiling it is judged against. Timing belongs here, not in tests.
import os from 'node:os';
import type { Config } from '../config/config.ts';
import type { Logger } from '../log/logger.ts';
import { natsServerBinary } from '../nats/server.ts';
import { createOutboxStore, explainClaim } from '../outbox/outbox.ts';
import { measureAggregateOrder, type AggregateOrderResult } from './aggregate-order.ts';
import { measureApi, type ApiResult } from './api.ts';
import { measureCommitRate, type CommitRate } from './commit-rate.ts';
import { openBenchDatabases } from './databases.ts';
import { measureLatency, type LatencyResult } from './latency.ts';
import { measureNatsMode, type NatsModeResult } from './nats-mode.ts';
import { measureOldSnapshot, type SnapshotResult } from './old-snapshot.ts';
import { measureStatsReaders, type ReadersResult } from './stats-readers.ts';
import { measureOrderWrite, type OrderWriteResult } from './order-write.ts';
import { measureThroughput, seedOrders, type ThroughputResult } from './relay-throughput.ts';
import { measureTracing, type TracingResult } from './tracing.ts';
import { evaluateTargets, type TargetCheck } from './targets.ts';

export interface BenchOptions {
  events: number;
  /** Relay and ceiling runs per mode, alternating; the best of each counts. */
  rounds: number;
  workers: number;
  /** Claim size in per-message mode (the server's default) and in batched mode. */
  batchSize: number;
  batchedBatchSize: number;
  rate: number;
  /** The second, busier offered load of the wake-up latency runs. */
  highRate: number;
  latencyMs: number;
  /** Load offered before each latency window and left out of it (its cold start is shown apart). */
  latencyWarmupMs: number;
  apiOrders: number;
  apiConcurrency: number;
  apiRuns: number;
  /** Rows in the outbox when the claim is EXPLAINed. */
  explainRows: number;
  /** Events each drain of the old-snapshot scenario pushes through (with and without the snapshot). */
  snapshotEvents: number;
  /** processed_messages rows (history) under the stats readers scenario. */
  readerRows: number;
  /** Clients looping on GET /stats. */
  readers: number;
  /** Orders per run of the readers scenario (alone, then with readers, each round), and how many in flight. */
  readerOrders: number;
  readerConcurrency: number;
  /** Orders per drain of the in-process vs NATS part (each mode, each round). */
  natsEvents: number;
  /** Orders per run of the tracing part (off, no exporter, in memory; each round), and how many in flight. */
  tracingOrders: number;
  tracingConcurrency: number;
  /** Events per drain of the per-aggregate order part (as single-event aggregates, and k per aggregate). */
  orderingEvents: number;
  /** Only these parts (all when empty): quick runs while tuning one of them. */
  only: BenchPart[];
}

const EXPLAIN_DEAD_LETTERS = 1_000;

export const BENCH_PARTS = ['relay', 'latency', 'api', 'order-write', 'explain', 'ordering', 'snapshot', 'readers', 'nats', 'tracing'] as const;
export type BenchPart = (typeof BENCH_PARTS)[number];

export const BENCH_DEFAULTS: BenchOptions = {
  events: 20_000,
  rounds: 2,
  workers: 5,
  batchSize: 10,
  batchedBatchSize: 100,
  rate: 200,
  highRate: 600,
  latencyMs: 10_000,
  latencyWarmupMs: 2_000,
  apiOrders: 10_000,
  apiConcurrency: 64,
  apiRuns: 3,
  explainRows: 50_000,
  snapshotEvents: 20_000,
  readerRows: 1_000_000,
  readers: 40,
  readerOrders: 2_000,
  readerConcurrency: 8,
  natsEvents: 5_000,
  tracingOrders: 3_000,
  tracingConcurrency: 16,
  orderingEvents: 10_000,
  only: [],
};

export interface BenchResult {
  machine: { cpus: number; cpuModel: string; memoryGb: number; node: string; database: string };
  options: BenchOptions;
  /** Durable commits per second from 1 and from `workers` connections: the floor under everything. */
  commitRates: CommitRate[];
  throughput: ThroughputResult[];
  latency: LatencyResult[];
  api: ApiResult | undefined;
  /** The order transaction with no notification, notifying inside it, and with the after-commit wake-up. */
  orderWrite: OrderWriteResult | undefined;
  claimPlan: { rows: number; deadLetters: number; plan: string } | undefined;
  /** The same drain as single-event aggregates and as aggregates of 2 and 5 events: the cost of keeping their order. */
  aggregateOrder: AggregateOrderResult | undefined;
  /** The same drain with and without an old snapshot held open: a number to show, no target. */
  oldSnapshot: SnapshotResult | undefined;
  /** POST /orders with and without clients looping on GET /stats, over a long history. */
  statsReaders: ReadersResult | undefined;
  /** The same drain and latency in-process and over NATS JetStream: numbers to show, no target. */
  transports: NatsModeResult | undefined;
  /** The whole journey with tracing off, on without an exporter, on with an in-memory one. */
  tracing: TracingResult | undefined;
  targets: TargetCheck[];
  ok: boolean;
  durationMs: number;
}

export async function runBenchmark(
  config: Config,
  options: BenchOptions,
  deps: { logger: Logger; onPhase: (message: string) => void },
): Promise<BenchResult> {
  const started = performance.now();
  const phase = deps.onPhase;
  const settings: Config = { ...config, workers: options.workers, logLevel: 'silent' };
  const wanted = (part: BenchPart) => options.only.length === 0 || options.only.includes(part);
  phase('starting a fresh PostgreSQL');
  const databases = await openBenchDatabases(config.databaseUrl, deps.logger.child('DB'));
  try {
    phase('durable commits per second on this disk');
    const commitRates = [await measureCommitRate(databases, 1), await measureCommitRate(databases, options.workers)];

    const throughput: ThroughputResult[] = [];
    for (const [mode, batchSize] of [['per-message', options.batchSize], ['batch', options.batchedBatchSize]] as const) {
      if (!wanted('relay')) break;
      phase(`relay, ${mode} consumer: drain ${options.events} events with ${options.workers} workers, then the ceiling`);
      throughput.push(await measureThroughput(databases, settings, { events: options.events, mode, batchSize, rounds: options.rounds }));
    }

    const latency: LatencyResult[] = [];
    for (const run of latencyRuns(options)) {
      if (!wanted('latency')) break;
      phase(`latency, wake-up ${run.wakeup}, ${run.consumerMode} consumer: ${run.rate} orders/s for ${options.latencyWarmupMs / 1000} s (warm-up) + ${options.latencyMs / 1000} s, poll every 1 s`);
      latency.push(await measureLatency(databases, settings, { ...run, durationMs: options.latencyMs, pollIntervalMs: 1_000, warmupMs: options.latencyWarmupMs }));
    }

    let api: ApiResult | undefined;
    if (wanted('api')) {
      phase(`order API: ${options.apiRuns} runs of ${options.apiOrders} orders over HTTP, and the same transaction directly`);
      api = await measureApi(
        databases,
        { ...settings, batchSize: options.batchSize },
        { orders: options.apiOrders, concurrency: options.apiConcurrency, runs: options.apiRuns },
        phase,
      );
    }

    let orderWrite: OrderWriteResult | undefined;
    if (wanted('order-write')) {
      phase(`order transaction directly: ${options.apiOrders} orders × (no NOTIFY, NOTIFY in the transaction, wake-up after commit) × ${options.rounds} rounds`);
      orderWrite = await measureOrderWrite(databases, { orders: options.apiOrders, concurrency: options.apiConcurrency, connections: 10, rounds: options.rounds });
    }

    let claimPlan: BenchResult['claimPlan'];
    if (wanted('explain')) {
      phase(`claim plan with ${options.explainRows} events waiting`);
      claimPlan = await planWithBacklog(databases, options);
    }

    let aggregateOrder: AggregateOrderResult | undefined;
    if (wanted('ordering')) {
      phase(`per-aggregate order: drain ${options.orderingEvents} events as 1, 2 and 5 events per aggregate, ${options.rounds} alternating round(s)`);
      aggregateOrder = await measureAggregateOrder(databases, { ...settings, batchSize: options.batchSize }, {
        events: options.orderingEvents, eventsPerAggregate: [2, 5], rounds: options.rounds,
      });
    }

    let oldSnapshot: SnapshotResult | undefined;
    if (wanted('snapshot')) {
      phase(
        `old snapshot: drain ${options.snapshotEvents} events (per-message, ${options.workers} workers) with and without ` +
          `a REPEATABLE READ transaction held open, ${options.rounds} round(s)`,
      );
      oldSnapshot = await measureOldSnapshot(databases, { ...settings, batchSize: options.batchSize }, { events: options.snapshotEvents, rounds: options.rounds });
    }

    let statsReaders: ReadersResult | undefined;
    if (wanted('readers')) {
      phase(`stats readers: ${options.readers} clients on GET /stats over ${options.readerRows} processed messages, against POST /orders`);
      statsReaders = await measureStatsReaders(
        databases,
        { ...settings, batchSize: options.batchSize },
        { historyRows: options.readerRows, readers: options.readers, orders: options.readerOrders, concurrency: options.readerConcurrency, rounds: options.rounds },
        phase,
      );
    }

    let transports: NatsModeResult | undefined;
    // Part of "all" only where nats-server is installed; asked for by name, it must run.
    const natsPossible = options.only.includes('nats') || (await natsServerBinary()) !== undefined;
    if (wanted('nats') && !natsPossible) phase('in-process vs NATS: skipped, nats-server not installed (apt-get install nats-server)');
    if (wanted('nats') && natsPossible) {
      phase(
        `in-process vs NATS: drain ${options.natsEvents} orders to settled, then ${options.rate} orders/s for ${options.latencyMs / 1000} s, ` +
          `${options.rounds} alternating round(s), a local nats-server`,
      );
      transports = await measureNatsMode(databases, settings, { events: options.natsEvents, rate: options.rate, durationMs: options.latencyMs, rounds: options.rounds }, deps.logger);
    }

    let tracing: TracingResult | undefined;
    if (wanted('tracing')) {
      const rounds = Math.max(3, options.rounds);
      phase(`tracing: ${options.tracingOrders} orders over HTTP to settled × (off, no exporter, in-memory exporter) × ${rounds} rounds`);
      tracing = await measureTracing(
        databases, { ...settings, batchSize: options.batchSize },
        { orders: options.tracingOrders, concurrency: options.tracingConcurrency, rounds }, phase,
      );
    }

    const targets = evaluateTargets({ throughput, latency, api, orderWrite, statsReaders });
    return {
      machine: {
        cpus: os.availableParallelism(),
        cpuModel: os.cpus()[0]?.model ?? 'unknown',
        memoryGb: Math.round(os.totalmem() / 2 ** 30),
        node: process.version,
        database: databases.description,
      },
      options,
      commitRates,
      throughput,
      latency,
      api,
      orderWrite,
      claimPlan,
      aggregateOrder,
      oldSnapshot,
      statsReaders,
      transports,
      tracing,
      targets,
      ok: targets.every((t) => t.met),
      durationMs: performance.now() - started,
    };
  } finally {
    await databases.close();
  }
}

/** Wake-up at the offered load and at the busier one, per consumer; then the old way and polling, for comparison. */
function latencyRuns(options: BenchOptions) {
  const runs: Array<{ wakeup: 'notify' | 'notify-in-transaction' | 'poll'; consumerMode: 'per-message' | 'batch'; rate: number }> = [];
  for (const rate of [options.rate, options.highRate]) {
    for (const consumerMode of ['per-message', 'batch'] as const) runs.push({ wakeup: 'notify', consumerMode, rate });
  }
  runs.push({ wakeup: 'notify-in-transaction', consumerMode: 'per-message', rate: options.rate });
  runs.push({ wakeup: 'poll', consumerMode: 'per-message', rate: options.rate });
  return runs;
}

async function planWithBacklog(databases: Awaited<ReturnType<typeof openBenchDatabases>>, options: BenchOptions) {
  const db = await databases.fresh('explain');
  try {
    await seedOrders(db.pool, options.explainRows);
    // Some dead letters, as a system that has run for a while has: with none (an empty table of
    // zero pages) PostgreSQL rightly reads the table instead of probing its index.
    const store = createOutboxStore(db.pool, { batchSize: 100, leaseMs: 60_000 });
    const deadLetters = Math.min(EXPLAIN_DEAD_LETTERS, Math.floor(options.explainRows / 10));
    for (let moved = 0; moved < deadLetters;) {
      const claim = await store.claim('bench');
      for (const event of claim.events.slice(0, deadLetters - moved)) if (await store.deadLetter(event, claim.token, 'bench')) moved += 1;
      await store.release(claim.events.map((e) => e.id), claim.token);
    }
    await db.pool.query('ANALYZE');
    return { rows: options.explainRows - deadLetters, deadLetters, plan: await explainClaim(db.pool, options.batchSize) };
  } finally {
    await db.drop();
  }
}
