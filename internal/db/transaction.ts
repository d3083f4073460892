import { isQueryTimeout, type Client, type Pool } from './pool.ts';

/**
 * Runs `work` inside BEGIN … COMMIT on one client from `pool`; any throw rolls back and is
 * rethrown. The one transaction helper: every multi-statement write goes through it.
 */
export async function withTransaction<T>(pool: Pool, work: (client: Client) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  // A checked-out client has no error listener of the pool's: if the server drops the
  // connection between two statements (restart, pg_terminate_backend), the 'error' event
  // would crash the process. Note it instead; the next query fails and we roll back.
  let lost: unknown;
  const onError = (error: unknown) => {
    lost = error;
  };
  client.on('error', onError);
  let broken = false;
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    try {
      if (lost === undefined && !isQueryTimeout(error)) await client.query('ROLLBACK');
      else broken = true;
    } catch {
      // The connection itself is gone; do not hand it back to the pool.
      broken = true;
    }
    throw error;
  } finally {
    client.off('error', onError);
    client.release(broken || lost !== undefined);
  }
}
