// What every number here is bounded by: how many durable commits PostgreSQL makes per second
// on this disk. `SELECT txid_current()` takes a transaction id, so its commit must be flushed
// to the WAL like any write's; nothing else is written.
import { closePool, createPool } from '../db/pool.ts';
import { createSilentLogger } from '../log/logger.ts';
import type { BenchDatabases } from './databases.ts';
import { closedLoop, perSecond } from './load.ts';

export interface CommitRate {
  connections: number;
  commitsPerSecond: number;
}

export async function measureCommitRate(databases: BenchDatabases, connections: number, commits = 2_000): Promise<CommitRate> {
  const db = await databases.fresh(`commits_${connections}`);
  const pool = createPool({ url: db.url, applicationName: 'outbox-bench:commits', max: connections, connectionTimeoutMs: 10_000 }, createSilentLogger());
  try {
    const ms = await closedLoop(commits, connections, () => pool.query('SELECT txid_current()'));
    return { connections, commitsPerSecond: perSecond(commits, ms) };
  } finally {
    await closePool(pool);
    await db.drop();
  }
}
