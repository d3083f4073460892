-- W3C trace context travels with each event (issue 15). It is written in the same transaction
-- as the event, so it survives restarts, retries and the dead letters: a re-driven event still
-- belongs to the trace of the request that created it. String to string ({"traceparent": …}).
ALTER TABLE outbox ADD COLUMN headers jsonb NOT NULL DEFAULT '{}';
ALTER TABLE dead_letters ADD COLUMN headers jsonb NOT NULL DEFAULT '{}';
-- The inbox's replay copy keeps them too, so a replayed message shows up in its original trace.
ALTER TABLE processed_messages ADD COLUMN headers jsonb NOT NULL DEFAULT '{}';
-- GET /orders/:id answers with the trace id; the outbox row is gone once delivered, so the
-- order keeps it (null: placed before this migration, or in bulk without a request).
ALTER TABLE orders ADD COLUMN trace_id text;
