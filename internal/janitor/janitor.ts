// The janitor: keeps the consumer's memory (processed_messages, skipped_duplicates) and the
// idempotency keys from growing forever. Every server and relay process runs the loop; an
// advisory lock elects one of them per pass, so one database has one janitor at a time.
//
// The lock is a session lock (pg_try_advisory_lock) on a connection held for the whole pass,
// not a transaction lock: a pass is many short transactions (one per batch, autocommit) with
// pauses between them, so no delete holds row locks or an old snapshot for longer than one
// batch. If the process dies mid-pass its connection closes and PostgreSQL frees the lock.
//
// What is old enough is decided by now() in SQL (the database clock), never by this process.
// The SQL lives with the tables' owners (inventory/processed.ts, orders/idempotency.ts).
import type { Client, Pool } from '../db/pool.ts';
import { dropReplayCopies, inboxRetentionLagSeconds, pruneProcessedMessages, pruneSkippedDuplicates } from '../inventory/processed.ts';
import type { Logger } from '../log/logger.ts';
import { idempotencyKeyLagSeconds, pruneExpiredIdempotencyKeys } from '../orders/idempotency.ts';
import { repairParking } from '../outbox/dead-letters.ts';
import { Waker } from '../relay/waker.ts';

/** Chosen once, different from the migrations' lock (4_242_001). */
export const JANITOR_LOCK_KEY = 4_242_002;

export const PRUNED_TABLES = ['processed_messages', 'skipped_duplicates', 'idempotency_keys'] as const;
export type PrunedTable = (typeof PRUNED_TABLES)[number];

export interface JanitorSettings {
  intervalMs: number;
  inboxRetentionMs: number;
  replayCopyRetentionMs: number;
  idempotencyKeyTtlMs: number;
  /** Rows one statement may touch (default 2,000): short statements, short row locks. */
  batchSize?: number;
  /** Pause between two batches (default 50 ms), so claims and orders get the disk and the CPU. */
  pauseMs?: number;
  /** Wait before the first pass (default: the interval, at most 10 s). */
  firstPassDelayMs?: number;
}

export interface JanitorPass {
  /** Rows deleted, per table. */
  pruned: Record<PrunedTable, number>;
  /** processed_messages rows whose replay copy (type, payload) was dropped; the rows stay. */
  copiesDropped: number;
  /**
   * The parking repair (dead-letters.ts repairParking): outbox events parked behind a dead
   * letter of their aggregate that were not yet, and parked ones whose dead letter is gone.
   */
  parking: { parked: number; unparked: number };
  /** Statements that removed something. */
  batches: number;
  ms: number;
}

/** `elected: false`: another process held the janitor lock, so this one pruned nothing. */
export type PassResult = ({ elected: true } & JanitorPass) | { elected: false };

export interface JanitorObserver {
  /** Before each pass, elected or not: how long the oldest row due for removal has waited (s). */
  onLag(seconds: number): void;
  /** A pass this process ran as the elected janitor. */
  onPass(pass: JanitorPass): void;
  /** A pass skipped because another process held the lock. */
  onNotElected(): void;
  /** A pass that failed (database unreachable, statement timeout): the next one tries again. */
  onFailed(): void;
}

export interface JanitorHooks {
  /** After each batch statement (tests hold a pass open here). */
  afterBatch?(table: PrunedTable | 'replay_copies', rows: number): void | Promise<void>;
}

export interface JanitorDeps {
  /** Its own small pool: a pass holds one connection for as long as it runs. */
  pool: Pool;
  logger: Logger;
  observer?: JanitorObserver;
  hooks?: JanitorHooks;
}

const DEFAULT_BATCH_SIZE = 2_000;
const DEFAULT_PAUSE_MS = 50;

export class Janitor {
  private stopping = false;
  private loopDone: Promise<void> | undefined;
  private readonly waker = new Waker();
  private readonly log: Logger;

  constructor(
    private readonly deps: JanitorDeps,
    private readonly settings: JanitorSettings,
  ) {
    this.log = deps.logger.child('Janitor');
  }

  start(): void {
    this.stopping = false;
    this.loopDone ??= this.loop();
  }

  /** Ends the loop; a pass in progress stops after its current statement. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.waker.wake();
    await this.loopDone;
    this.loopDone = undefined;
  }

  /** One pass, if this process wins the lock. For the loop, tests and tools. */
  async runOnce(): Promise<PassResult> {
    const client = await this.deps.pool.connect();
    let broken: Error | undefined;
    try {
      this.deps.observer?.onLag(await this.lagSeconds(client));
      const { rows } = await client.query<{ elected: boolean }>('SELECT pg_try_advisory_lock($1) AS elected', [JANITOR_LOCK_KEY]);
      if (!rows[0]!.elected) {
        this.log.debug('another process is the janitor for this pass');
        this.deps.observer?.onNotElected();
        return { elected: false };
      }
      try {
        const pass = await this.prune(client);
        this.report(pass);
        return { elected: true, ...pass };
      } finally {
        await client.query('SELECT pg_advisory_unlock($1)', [JANITOR_LOCK_KEY]);
      }
    } catch (error) {
      // A connection in an unknown state may still hold the lock: destroy it rather than reuse it.
      broken = error as Error;
      throw error;
    } finally {
      client.release(broken);
    }
  }

  private async loop(): Promise<void> {
    let wait = this.settings.firstPassDelayMs ?? Math.min(this.settings.intervalMs, 10_000);
    while (!this.stopping) {
      await this.waker.sleep(wait);
      wait = this.settings.intervalMs;
      if (this.stopping) break;
      try {
        await this.runOnce();
      } catch (error) {
        this.deps.observer?.onFailed();
        this.log.warn(`pass failed (${(error as Error).message}); trying again in ${Math.round(wait / 1000)} s`);
      }
    }
  }

  private async prune(client: Client): Promise<JanitorPass> {
    const started = performance.now();
    const { inboxRetentionMs, replayCopyRetentionMs, idempotencyKeyTtlMs } = this.settings;
    const pass: JanitorPass = {
      pruned: { processed_messages: 0, skipped_duplicates: 0, idempotency_keys: 0 }, copiesDropped: 0, parking: { parked: 0, unparked: 0 }, batches: 0, ms: 0,
    };
    // First, so no event waits behind a dead letter that is gone for longer than one interval.
    if (!this.stopping) pass.parking = await repairParking(client, this.settings.batchSize ?? DEFAULT_BATCH_SIZE);
    pass.pruned.processed_messages = await this.inBatches(pass, 'processed_messages', (n) => pruneProcessedMessages(client, inboxRetentionMs, n));
    pass.copiesDropped = await this.inBatches(pass, 'replay_copies', (n) => dropReplayCopies(client, replayCopyRetentionMs, n));
    pass.pruned.skipped_duplicates = await this.inBatches(pass, 'skipped_duplicates', (n) => pruneSkippedDuplicates(client, inboxRetentionMs, n));
    pass.pruned.idempotency_keys = await this.inBatches(pass, 'idempotency_keys', (n) => pruneExpiredIdempotencyKeys(client, idempotencyKeyTtlMs, n));
    pass.ms = performance.now() - started;
    return pass;
  }

  /** Runs `batch` until it removes less than a full batch (or the janitor stops); returns the total. */
  private async inBatches(pass: JanitorPass, table: PrunedTable | 'replay_copies', batch: (limit: number) => Promise<number>): Promise<number> {
    const limit = this.settings.batchSize ?? DEFAULT_BATCH_SIZE;
    let total = 0;
    while (!this.stopping) {
      const rows = await batch(limit);
      total += rows;
      if (rows > 0) pass.batches += 1;
      await this.deps.hooks?.afterBatch?.(table, rows);
      if (rows < limit || this.stopping) break;
      await this.waker.sleep(this.settings.pauseMs ?? DEFAULT_PAUSE_MS);
    }
    return total;
  }

  private async lagSeconds(client: Client): Promise<number> {
    const { inboxRetentionMs, replayCopyRetentionMs, idempotencyKeyTtlMs } = this.settings;
    const inbox = await inboxRetentionLagSeconds(client, inboxRetentionMs, replayCopyRetentionMs);
    const keys = await idempotencyKeyLagSeconds(client, idempotencyKeyTtlMs);
    return Math.max(inbox, keys);
  }

  private report(pass: JanitorPass): void {
    this.deps.observer?.onPass(pass);
    const removed = pass.copiesDropped + PRUNED_TABLES.reduce((sum, table) => sum + pass.pruned[table], 0);
    const n = (value: number) => value.toLocaleString('en-US');
    const line =
      `pruned ${PRUNED_TABLES.map((table) => `${n(pass.pruned[table])} ${table}`).join(', ')}, ` +
      `dropped ${n(pass.copiesDropped)} replay copies (${pass.batches} batch${pass.batches === 1 ? '' : 'es'}, ${Math.round(pass.ms)} ms)`;
    if (removed > 0) this.log.info(line);
    else this.log.debug(line);
    const { parked, unparked } = pass.parking;
    // Parking normally happens with the dead-lettering and the re-drive; the repair only
    // catches what came between (an event written after its predecessor was dead-lettered).
    if (parked > 0) this.log.info(`parked ${n(parked)} outbox event${parked === 1 ? '' : 's'}: an earlier event of their order waits to be re-driven`);
    if (unparked > 0) this.log.info(`un-parked ${n(unparked)} outbox event${unparked === 1 ? '' : 's'}: nothing earlier of their order waits to be re-driven any more`);
  }
}
