-- The consumer keeps a copy of each message it processed (type and payload), so the replay
-- tool can deliver exactly that message again and show it being skipped as a duplicate.
-- Rows processed before this migration have no copy and cannot be replayed.
ALTER TABLE processed_messages
  ADD COLUMN event_type text,
  ADD COLUMN payload jsonb;

-- "The most recent processed messages", for replay.
CREATE INDEX processed_messages_recent_idx ON processed_messages (processed_at DESC);
