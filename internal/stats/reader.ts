// The one way GET /stats, GET /metrics and the dashboard read the numbers: on their own small
// pool (so readers can never take a connection an order needs), one read in flight at a time
// (concurrent callers wait for the same result) and a short cache, so forty dashboards and a
// scraper cost the database one read per `cacheMs` at most.
import type { Queryable } from '../db/pool.ts';
import { readStats, type ReadStatsOptions, type Stats } from './stats.ts';

export interface StatsReader {
  /**
   * The latest numbers, read at most `cacheMs` ago. `freshFrom` (epoch ms) asks for a read
   * that started at or after that moment instead, e.g. after the dashboard saw new steps.
   */
  read(freshFrom?: number): Promise<Stats>;
}

export interface StatsReaderOptions extends ReadStatsOptions {
  /** How long one read answers every caller (default 500 ms; at most 1 s is sensible). */
  cacheMs?: number;
  /** For tests: the clock. */
  now?: () => number;
}

interface Read {
  startedAt: number;
  result: Promise<Stats>;
}

export function createStatsReader(db: Queryable, options: StatsReaderOptions = {}): StatsReader {
  const cacheMs = options.cacheMs ?? 500;
  const now = options.now ?? Date.now;
  let latest: Read | undefined;

  function start(): Read {
    const read: Read = { startedAt: now(), result: readStats(db, options) };
    latest = read;
    // A failed read is not cached: the next caller tries again.
    read.result.catch(() => {
      if (latest === read) latest = undefined;
    });
    return read;
  }

  return {
    async read(freshFrom) {
      const oldest = freshFrom ?? now() - cacheMs;
      const current = latest;
      if (current && current.startedAt >= oldest) return current.result;
      // One read at a time: a caller that needs a newer one waits for the running one first.
      if (current) await current.result.catch(() => undefined);
      const after = latest;
      if (after && after.startedAt >= oldest) return after.result;
      return start().result;
    },
  };
}
