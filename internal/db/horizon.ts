// The xmin horizon: the oldest snapshot anything still holds on this database. Row versions
// deleted after it cannot be removed by vacuum nor skipped cheaply by index scans, so while an
// old transaction stays open (a forgotten psql session, a long pg_dump, a replica with
// hot_standby_feedback, a stale replication slot) every claim of the outbox steps over all
// the events delivered since. Read from the catalog: cheap, no table is scanned.
import type { Queryable } from './pool.ts';

export interface Horizon {
  /** Seconds since the oldest open transaction on this database began; 0 when none (ours excluded). */
  oldestTransactionAgeSeconds: number;
  /** Transactions (xids) between the horizon and now: how far behind vacuum is held. */
  xminAgeXids: number;
  /** Who holds it, e.g. "psql (idle in transaction, pid 4242)"; undefined when nothing old. */
  heldBy: string | undefined;
}

export async function readHorizon(db: Queryable): Promise<Horizon> {
  const { rows } = await db.query<{ age: number | null; holder: string | null; xids: number | null }>(
    `WITH held AS (
       -- Sessions of this database, and WAL senders (a standby's hot_standby_feedback).
       SELECT extract(epoch FROM now() - coalesce(xact_start, backend_start))::float8 AS age,
              coalesce(nullif(application_name, ''), backend_type) || ' (' || coalesce(state, '?') || ', pid ' || pid || ')' AS holder,
              greatest(age(backend_xmin), age(backend_xid)) AS xids
         FROM pg_stat_activity
        WHERE (datname = current_database() OR backend_type = 'walsender')
          AND (backend_xmin IS NOT NULL OR backend_xid IS NOT NULL)
          AND pid <> pg_backend_pid()
       UNION ALL
       SELECT extract(epoch FROM now() - prepared)::float8, 'prepared transaction ' || gid, age(transaction)
         FROM pg_prepared_xacts WHERE database = current_database()
       UNION ALL
       SELECT NULL, 'replication slot ' || slot_name, greatest(age(xmin), age(catalog_xmin))
         FROM pg_replication_slots WHERE xmin IS NOT NULL OR catalog_xmin IS NOT NULL
     )
     SELECT (SELECT max(age) FROM held) AS age,
            (SELECT holder FROM held ORDER BY age DESC NULLS LAST LIMIT 1) AS holder,
            (SELECT max(xids) FROM held) AS xids`,
  );
  const row = rows[0]!;
  return {
    oldestTransactionAgeSeconds: Math.max(0, row.age ?? 0),
    xminAgeXids: row.xids ?? 0,
    heldBy: row.holder ?? undefined,
  };
}
