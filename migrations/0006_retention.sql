-- Retention: the janitor (internal/janitor) deletes old rows in small batches, oldest first.
-- Each batch must find its rows through an index, never by scanning a table that holds a
-- week of history, so every table it prunes gets an index on the time it ages by.
-- (processed_messages already has one on processed_at: processed_messages_recent_idx.)

CREATE INDEX skipped_duplicates_skipped_at_idx ON skipped_duplicates (skipped_at);
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
-- The purge (npm run replay -- --dead-letters --purge --older-than 30d) and "oldest first".
CREATE INDEX dead_letters_dead_at_idx ON dead_letters (dead_at);

-- The replay copy (event_type, payload) is dropped after REPLAY_COPY_RETENTION while the row
-- stays. Only rows that still have a copy are in this index, so the janitor never steps over
-- the days of rows whose copy is already gone.
CREATE INDEX processed_messages_copy_idx ON processed_messages (processed_at) WHERE event_type IS NOT NULL;
