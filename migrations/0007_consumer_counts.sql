-- Running totals of what the consumer did, so GET /stats, /metrics and the dashboard never
-- count processed_messages or skipped_duplicates (tables that grow with history) per request.
-- One row per (deliverer, outcome): a worker's transaction touches only its own rows, so the
-- workers never wait on each other's counter (a single shared row would serialize them).
-- Kept by statement-level triggers, so every writer is counted in its own transaction: the
-- consumer, the batch consumer, replay. Deleting rows (retention) does not lower them: they
-- are "since the last demo reset", which is what the pipeline's totals mean.
CREATE TABLE consumer_counts (
  handled_by  text NOT NULL,
  outcome     text NOT NULL CHECK (outcome IN ('applied', 'rejected', 'duplicate')),
  n           bigint NOT NULL,
  PRIMARY KEY (handled_by, outcome)
);

INSERT INTO consumer_counts (handled_by, outcome, n)
SELECT handled_by, outcome, count(*) FROM processed_messages GROUP BY handled_by, outcome
UNION ALL
SELECT handled_by, 'duplicate', count(*) FROM skipped_duplicates GROUP BY handled_by;

-- Rows are always locked in (handled_by, outcome) order, so two transactions of one
-- deliverer wait for each other instead of deadlocking.
CREATE FUNCTION count_processed_messages() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO consumer_counts (handled_by, outcome, n)
    SELECT handled_by, outcome, count(*) FROM new_rows GROUP BY handled_by, outcome ORDER BY 1, 2
    ON CONFLICT (handled_by, outcome) DO UPDATE SET n = consumer_counts.n + excluded.n;
  ELSE
    -- An outcome changed (applied → rejected in the consumer's transaction); other updates
    -- (dropping a replay copy) leave every total as it is and touch no counter.
    INSERT INTO consumer_counts (handled_by, outcome, n)
    SELECT handled_by, outcome, sum(d) FROM (
      SELECT handled_by, outcome, 1 AS d FROM new_rows
      UNION ALL
      SELECT handled_by, outcome, -1 FROM old_rows
    ) delta GROUP BY handled_by, outcome HAVING sum(d) <> 0 ORDER BY 1, 2
    ON CONFLICT (handled_by, outcome) DO UPDATE SET n = consumer_counts.n + excluded.n;
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER processed_messages_counted_insert AFTER INSERT ON processed_messages
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION count_processed_messages();
CREATE TRIGGER processed_messages_counted_update AFTER UPDATE ON processed_messages
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION count_processed_messages();

CREATE FUNCTION count_skipped_duplicates() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO consumer_counts (handled_by, outcome, n)
  SELECT handled_by, 'duplicate', count(*) FROM new_rows GROUP BY handled_by ORDER BY 1
  ON CONFLICT (handled_by, outcome) DO UPDATE SET n = consumer_counts.n + excluded.n;
  RETURN NULL;
END $$;

CREATE TRIGGER skipped_duplicates_counted AFTER INSERT ON skipped_duplicates
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION count_skipped_duplicates();

-- GET /stats reads PENDING orders (bounded by the backlog) through orders_status_idx; the age
-- of the oldest one needs created_at too.
CREATE INDEX orders_pending_idx ON orders (created_at) WHERE status = 'PENDING';
