// Wiring for `npm run replay`: open the same database the server uses (attaching to a running
// embedded PostgreSQL), find out whether a server is relaying it, run the replay, close.
import { createApiClient } from '../client/api-client.ts';
import type { Config } from '../config/config.ts';
import { createInventoryConsumer } from '../inventory/consumer.ts';
import type { Logger } from '../log/logger.ts';
import { redriveAndDeliver, type RedriveResult } from '../replay/redrive.ts';
import { runReplay, type ReplayOptions, type ReplayResult } from '../replay/replay.ts';
import { connectDatabase } from './wiring.ts';

/** `--dead-letters`: re-drive dead letters into the outbox and wait for their delivery. */
export async function redriveDeadLetters(
  config: Config,
  options: { messageIds: string[]; waitTimeoutMs: number; serverUrl: string },
  logger: Logger,
): Promise<RedriveResult> {
  const serverRunning = await createApiClient(options.serverUrl).health();
  const db = await connectDatabase(config, logger, 'replay', 4);
  try {
    const consumer = createInventoryConsumer({ pool: db.pool, logger });
    return await redriveAndDeliver(options.messageIds, options.waitTimeoutMs, {
      pool: db.pool,
      consumer,
      logger,
      serverRunning,
      leaseMs: config.leaseMs,
      maxAttempts: config.maxAttempts,
    });
  } finally {
    await db.close();
  }
}

export async function replayDuplicates(
  config: Config,
  options: ReplayOptions & { serverUrl: string },
  logger: Logger,
): Promise<ReplayResult> {
  const serverRunning = await createApiClient(options.serverUrl).health();
  const db = await connectDatabase(config, logger, 'replay', 4);
  try {
    const consumer = createInventoryConsumer({ pool: db.pool, logger });
    return await runReplay(options, { pool: db.pool, consumer, logger, serverRunning, leaseMs: config.leaseMs });
  } finally {
    await db.close();
  }
}
