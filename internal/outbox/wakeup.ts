// How a process that writes events tells the workers to look now (WAKEUP):
//
//   notify (default)        after the commit: this process's own workers are nudged in memory
//                           at once, and other processes hear one pg_notify, coalesced (at most
//                           one per COALESCE_MS) and sent from a connection of its own.
//   notify-in-transaction   the event's INSERT issues pg_notify inside the transaction (simple,
//                           but PostgreSQL serialises the commits of notifying transactions:
//                           measured ~1,650 orders/s with it against ~2,400/s without).
//   poll                    nobody is told; the workers find the event at their next poll.
//
// A wake-up only says "look now". Polling stays the source of truth, so a notification lost in
// a crash between the commit and the after-commit pg_notify costs at most one poll interval.
import type { WakeupMode } from '../config/config.ts';
import { closePool, createPool, type Pool } from '../db/pool.ts';
import type { Logger } from '../log/logger.ts';
import { announceOutbox, OUTBOX_CHANNEL } from './outbox.ts';

export const NOTIFIER_APPLICATION_NAME = 'outbox-demo:notifier';
/** At most one after-commit notification per this many ms: a burst of orders costs one or two. */
export const COALESCE_MS = 5;

export interface Wakeup {
  readonly mode: WakeupMode;
  /** Whether the event's own INSERT must announce it (inside the transaction). */
  readonly notifyInTransaction: boolean;
  /** To be called once a transaction that wrote events has committed. Cheap, never throws. */
  committed(): void;
  /** How many after-commit notifications were sent so far (the tests, the bench). */
  readonly sent: number;
  close(): Promise<void>;
}

export interface WakeupOptions {
  mode: WakeupMode;
  /** The database the notifier connects to (used by mode "notify" only). */
  url: string;
  logger: Logger;
  /** Wakes this process's own idle workers (none in a process without workers). */
  nudgeLocal?: () => void;
  /**
   * The wake-up id of the workers `nudgeLocal` wakes (Workers.wakeupOrigin). It is sent as the
   * notification's payload, and their own listener ignores a notification that carries it:
   * they were woken already, and hearing their own process's notification a moment later
   * would only wake a second worker into an empty claim (one per order at a steady trickle).
   */
  origin?: string;
  /** The channel the after-commit notification goes to; tests point it elsewhere. */
  channel?: string;
  coalesceMs?: number;
}

export function createWakeup(options: WakeupOptions): Wakeup {
  const nudgeLocal = options.nudgeLocal ?? (() => {});
  if (options.mode === 'poll') {
    return { mode: 'poll', notifyInTransaction: false, committed() {}, sent: 0, close: async () => {} };
  }
  if (options.mode === 'notify-in-transaction') {
    return { mode: 'notify-in-transaction', notifyInTransaction: true, committed: nudgeLocal, sent: 0, close: async () => {} };
  }
  return new AfterCommitWakeup(options, nudgeLocal);
}

class AfterCommitWakeup implements Wakeup {
  readonly mode = 'notify' as const;
  readonly notifyInTransaction = false;
  private readonly log: Logger;
  private pool: Pool | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastSentAt = -Infinity;
  private sending: Promise<void> = Promise.resolve();
  private sentCount = 0;
  private closed = false;

  constructor(
    private readonly options: WakeupOptions,
    private readonly nudgeLocal: () => void,
  ) {
    this.log = options.logger.child('Wakeup');
  }

  get sent(): number {
    return this.sentCount;
  }

  committed(): void {
    this.nudgeLocal();
    if (this.timer !== undefined || this.closed) return; // one is already on its way: it covers this commit too
    // Leading edge: the first commit after a quiet spell is announced at once; commits in the
    // next few ms ride on one trailing notification, sent after them.
    const wait = Math.max(0, this.lastSentAt + (this.options.coalesceMs ?? COALESCE_MS) - performance.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.lastSentAt = performance.now();
      this.sending = this.sending.then(() => this.send());
    }, wait);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.sending;
    if (this.pool) await closePool(this.pool);
    this.pool = undefined;
  }

  private async send(): Promise<void> {
    if (this.closed) return;
    // One connection of its own (not the API's pool: a busy pool would delay the wake-up, and
    // the wake-up must not take a connection an order is waiting for). It reconnects by itself.
    this.pool ??= createPool(
      { url: this.options.url, applicationName: NOTIFIER_APPLICATION_NAME, max: 1, connectionTimeoutMs: 5_000, statementTimeoutMs: 5_000, asyncCommit: true },
      this.log,
    );
    try {
      await announceOutbox(this.pool, this.options.channel ?? OUTBOX_CHANNEL, this.options.origin ?? '');
      this.sentCount += 1;
    } catch (error) {
      this.log.debug(`could not send the wake-up (${(error as Error).message}); the workers' polling finds the events`);
    }
  }
}
