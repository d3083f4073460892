// 6: what one old snapshot costs. The same drain as the relay's, with and without a
// REPEATABLE READ transaction (a forgotten psql session, a pg_dump, a replica with
// hot_standby_feedback) that took its snapshot just before the drain and stays open until it
// has ended. While it is open no row version deleted or updated after it can be pruned: the
// claim steps over every drained event's dead versions, and each product's stock row and each
// worker's consumer_counts row grows a chain of versions that every update walks.
//
// At the end of each drain, with the snapshot still open, a few new orders are placed and two
// costs measured: the claim (EXPLAIN ANALYZE, BUFFERS, rolled back) and the consumer's
// transaction, delivered as Worker-1 (whose counter row carries the whole drain's versions)
// and as a deliverer with a brand-new counter row; the difference is the counter's share.
import pg from 'pg';
import type { Config } from '../config/config.ts';
import { closePool, createPool } from '../db/pool.ts';
import { createInventoryConsumer } from '../inventory/consumer.ts';
import { createSilentLogger } from '../log/logger.ts';
import { outboxDeadTuples, profileClaim } from '../outbox/outbox.ts';
import type { BenchDatabases, FreshDatabase } from './databases.ts';
import { percentile } from '../stress/stress.ts';
import { drainOutbox, seedOrders, toDelivery } from './relay-throughput.ts';

/** Orders placed after the drain to measure the claim and the consumer's transaction on. */
const PROBE_ORDERS = 60;
const CLAIM_PROFILES = 3;
/** The drain's first worker: its consumer_counts row was updated by a fifth of the drain. */
const DRAIN_WORKER = 'Worker-1';
const FRESH_DELIVERER = 'Probe';

export interface SnapshotRun {
  held: boolean;
  eventsPerSecond: number;
  /** The claim at the end of the drain (median of a few, each rolled back). */
  claimMs: number;
  claimBuffers: number;
  /** Of those, its scan of outbox_available_idx: what an old snapshot makes grow. */
  claimScanBuffers: number;
  /** Median consumer transaction at the end of the drain, as Worker-1 and as a new deliverer. */
  consumerMs: number;
  consumerFreshCounterMs: number;
  /** The outbox's dead row versions after the drain (pg_stat_user_tables, an estimate). */
  outboxDeadTuples: number;
}

export interface SnapshotSide {
  /** Best of the rounds, as for the relay. */
  eventsPerSecond: number;
  /** Medians of the rounds. */
  claimMs: number;
  claimBuffers: number;
  claimScanBuffers: number;
  consumerMs: number;
  consumerFreshCounterMs: number;
}

export interface SnapshotResult {
  events: number;
  rounds: number;
  workers: number;
  runs: SnapshotRun[];
  without: SnapshotSide;
  held: SnapshotSide;
  /** held ÷ without, for each number. */
  ratios: { eventsPerSecond: number; claimMs: number; claimBuffers: number; claimScanBuffers: number; consumerMs: number };
}

export async function measureOldSnapshot(
  databases: BenchDatabases,
  config: Config,
  options: { events: number; rounds: number },
): Promise<SnapshotResult> {
  const settings: Config = { ...config, consumerMode: 'per-message', pollIntervalMs: 1_000 };
  const runs: SnapshotRun[] = [];
  // Alternating, the order swapped every round, so drift on a shared machine hits both sides.
  for (let round = 0; round < options.rounds; round++) {
    for (const held of round % 2 === 0 ? [false, true] : [true, false]) {
      runs.push(await snapshotRun(databases, settings, options.events, held));
    }
  }
  const without = summarize(runs.filter((r) => !r.held));
  const heldSide = summarize(runs.filter((r) => r.held));
  return {
    events: options.events,
    rounds: options.rounds,
    workers: config.workers,
    runs,
    without,
    held: heldSide,
    ratios: {
      eventsPerSecond: heldSide.eventsPerSecond / without.eventsPerSecond,
      claimMs: heldSide.claimMs / without.claimMs,
      claimBuffers: heldSide.claimBuffers / Math.max(1, without.claimBuffers),
      claimScanBuffers: heldSide.claimScanBuffers / Math.max(1, without.claimScanBuffers),
      consumerMs: heldSide.consumerMs / without.consumerMs,
    },
  };
}

async function snapshotRun(databases: BenchDatabases, config: Config, events: number, held: boolean): Promise<SnapshotRun> {
  const db = await databases.fresh(held ? 'snapshot_held' : 'snapshot_none');
  const holder = new pg.Client({ connectionString: db.url, application_name: 'outbox-bench:old-snapshot' });
  try {
    await holder.connect();
    const eventsPerSecond = await drainOutbox(db, config, events, async () => {
      // REPEATABLE READ takes its snapshot at the first statement and keeps it to the end.
      if (held) await holder.query('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1');
    });
    const probe = await probeCosts(db, config);
    if (held) {
      // The snapshot really was there the whole time (not ended by a timeout).
      const { rows } = await holder.query<{ xmin: string | null }>('SELECT backend_xmin AS xmin FROM pg_stat_activity WHERE pid = pg_backend_pid()');
      if (rows[0]?.xmin == null) throw new Error('the old snapshot was not held through the drain');
      await holder.query('ROLLBACK');
    }
    return { held, eventsPerSecond, ...probe };
  } finally {
    await holder.end().catch(() => undefined);
    await db.drop();
  }
}

async function probeCosts(db: FreshDatabase, config: Config) {
  const probes = (await seedOrders(db.pool, PROBE_ORDERS)).map(toDelivery);
  const claims = [];
  for (let i = 0; i < CLAIM_PROFILES; i++) claims.push(await profileClaim(db.pool, config.batchSize));
  // One connection, one transaction at a time: the transaction's own cost, not a queue's.
  const pool = createPool({ url: db.url, applicationName: 'outbox-bench:probe', max: 1, connectionTimeoutMs: 10_000 }, createSilentLogger());
  const drainWorker: number[] = [];
  const fresh: number[] = [];
  try {
    const consumer = createInventoryConsumer({ pool, logger: createSilentLogger() });
    for (const [i, delivery] of probes.entries()) {
      const asDrainWorker = i % 2 === 0;
      const started = performance.now();
      await consumer.handle(delivery, asDrainWorker ? DRAIN_WORKER : FRESH_DELIVERER);
      (asDrainWorker ? drainWorker : fresh).push(performance.now() - started);
    }
  } finally {
    await closePool(pool);
  }
  return {
    claimMs: median(claims.map((c) => c.ms)),
    claimBuffers: median(claims.map((c) => c.buffers)),
    claimScanBuffers: median(claims.map((c) => c.scanBuffers)),
    consumerMs: median(drainWorker),
    consumerFreshCounterMs: median(fresh),
    outboxDeadTuples: await outboxDeadTuples(db.pool),
  };
}

function summarize(runs: SnapshotRun[]): SnapshotSide {
  return {
    eventsPerSecond: Math.max(...runs.map((r) => r.eventsPerSecond)),
    claimMs: median(runs.map((r) => r.claimMs)),
    claimBuffers: median(runs.map((r) => r.claimBuffers)),
    claimScanBuffers: median(runs.map((r) => r.claimScanBuffers)),
    consumerMs: median(runs.map((r) => r.consumerMs)),
    consumerFreshCounterMs: median(runs.map((r) => r.consumerFreshCounterMs)),
  };
}

function median(values: number[]): number {
  return percentile([...values].sort((a, b) => a - b), 50);
}
