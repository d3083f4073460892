// The janitor of a server or relay process: its own one-connection pool (a pass holds that
// connection, and the advisory lock on it, while it works) and the loop. Every such process
// starts one; the lock makes sure only one of them prunes at a time.
import { longestRetryPathMs, type Config } from '../config/config.ts';
import { formatDuration } from '../config/duration.ts';
import { closePool, createPool } from '../db/pool.ts';
import { Janitor, type JanitorObserver } from '../janitor/janitor.ts';
import type { Logger } from '../log/logger.ts';

export interface RunningJanitor {
  janitor: Janitor;
  /** Stops the loop (a pass in progress ends after its current statement) and closes its pool. */
  close(): Promise<void>;
}

export function startJanitor(config: Config, logger: Logger, options: { url: string; observer?: JanitorObserver }): RunningJanitor {
  const pool = createPool(
    {
      url: options.url, applicationName: 'outbox-demo:janitor', max: 1,
      connectionTimeoutMs: config.connectionTimeoutMs, statementTimeoutMs: config.statementTimeoutMs,
    },
    logger,
  );
  const janitor = new Janitor(
    { pool, logger, observer: options.observer },
    {
      intervalMs: config.janitorIntervalMs,
      inboxRetentionMs: config.inboxRetentionMs,
      replayCopyRetentionMs: config.replayCopyRetentionMs,
      idempotencyKeyTtlMs: config.idempotencyKeyTtlMs,
    },
  );
  janitor.start();
  const retryPath = longestRetryPathMs(config);
  if (config.inboxRetentionMs <= retryPath) {
    logger.child('Janitor').warn(
      `INBOX_RETENTION ${formatDuration(config.inboxRetentionMs)} is shorter than one event's longest retry path ` +
        `(~${Math.ceil(retryPath / 1000)} s: every lease and backoff); keep it far longer (default 7d)`,
    );
  }
  logger.child('Janitor').info(
    `every ${formatDuration(config.janitorIntervalMs)} (one process at a time): processed messages kept ${formatDuration(config.inboxRetentionMs)} ` +
      `(replay copies ${formatDuration(config.replayCopyRetentionMs)}), Idempotency-Keys ${formatDuration(config.idempotencyKeyTtlMs)}; ` +
      'dead letters until re-driven or purged',
  );
  let closing: Promise<void> | undefined;
  return {
    janitor,
    close() {
      closing ??= janitor.stop().then(() => closePool(pool));
      return closing;
    },
  };
}
