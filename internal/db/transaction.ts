import type { Client, Pool } from './pool.ts';

/**
 * Runs `work` inside BEGIN … COMMIT on one client from `pool`; any throw rolls back and is
 * rethrown. The one transaction helper: every multi-statement write goes through it.
 */
export async function withTransaction<T>(pool: Pool, work: (client: Client) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    try {
      await client.query('ROLLBACK');
    } catch {
      // The connection itself is gone; do not hand it back to the pool.
      broken = true;
    }
    throw error;
  } finally {
    client.release(broken);
  }
}
