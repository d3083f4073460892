// Wiring for `npm run replay`: open the same database the server uses (attaching to a running
// embedded PostgreSQL), find out whether a server is relaying it, run the replay, close.
import { createApiClient } from '../client/api-client.ts';
import type { Config } from '../config/config.ts';
import type { Pool } from '../db/pool.ts';
import { createInventoryConsumer, type InventoryConsumer } from '../inventory/consumer.ts';
import type { Logger } from '../log/logger.ts';
import { purgeOldDeadLetters, type PurgeResult } from '../replay/purge.ts';
import { redriveAndDeliver, type RedriveResult } from '../replay/redrive.ts';
import { runReplay, type ReplayOptions, type ReplayResult } from '../replay/replay.ts';
import { connectDatabase } from './wiring.ts';

/** `--dead-letters`: re-drive dead letters into the outbox and wait for their delivery. */
export function redriveDeadLettersAndWait(
  config: Config,
  options: { messageIds: string[]; waitTimeoutMs: number; serverUrl: string },
  logger: Logger,
): Promise<RedriveResult> {
  return withReplayDeps(config, options.serverUrl, logger, (deps) =>
    redriveAndDeliver(options.messageIds, options.waitTimeoutMs, { ...deps, maxAttempts: config.maxAttempts }),
  );
}

/** `--dead-letters --purge --older-than <duration>`: delete old dead letters, report each. */
export async function purgeDeadLettersOlderThan(config: Config, olderThanMs: number, logger: Logger): Promise<PurgeResult> {
  const db = await connectDatabase(config, logger, 'replay', 1);
  try {
    return await purgeOldDeadLetters(db.pool, olderThanMs, logger);
  } finally {
    await db.close();
  }
}

export function replayDuplicates(config: Config, options: ReplayOptions & { serverUrl: string }, logger: Logger): Promise<ReplayResult> {
  return withReplayDeps(config, options.serverUrl, logger, (deps) => runReplay(options, deps));
}

/** The same database as the server, a consumer on it, and whether a server relays it. */
async function withReplayDeps<T>(
  config: Config,
  serverUrl: string,
  logger: Logger,
  work: (deps: { pool: Pool; consumer: InventoryConsumer; logger: Logger; serverRunning: boolean; leaseMs: number }) => Promise<T>,
): Promise<T> {
  const serverRunning = await createApiClient(serverUrl).health();
  const db = await connectDatabase(config, logger, 'replay', 4);
  try {
    const consumer = createInventoryConsumer({ pool: db.pool, logger });
    return await work({ pool: db.pool, consumer, logger, serverRunning, leaseMs: config.leaseMs });
  } finally {
    await db.close();
  }
}
