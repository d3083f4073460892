// `npm run replay -- --dead-letters --purge --older-than 30d`: removes dead letters that were
// given up on long ago, on purpose, without re-driving them. Asks nothing (it is meant for
// scripts and cron); reports every message it removed, so the record of what was given up on
// survives in the output even though the rows do not.
import type { Queryable } from '../db/pool.ts';
import type { Logger } from '../log/logger.ts';
import { purgeDeadLetters, type PurgedDeadLetter } from '../outbox/dead-letters.ts';

export interface PurgeResult {
  olderThanMs: number;
  purged: PurgedDeadLetter[];
}

const BATCH = 1_000;

export async function purgeOldDeadLetters(db: Queryable, olderThanMs: number, logger: Logger): Promise<PurgeResult> {
  const purged: PurgedDeadLetter[] = [];
  // Batches, so a large purge never holds thousands of row locks in one statement.
  for (;;) {
    const batch = await purgeDeadLetters(db, olderThanMs, BATCH);
    purged.push(...batch);
    if (batch.filter((p) => !p.behind).length < BATCH) break;
  }
  const behind = purged.filter((p) => p.behind).length;
  logger.child('Replay').info(`purged ${purged.length - behind} dead letter(s)${behind > 0 ? ` and ${behind} event(s) parked behind them` : ''}`);
  return { olderThanMs, purged };
}
