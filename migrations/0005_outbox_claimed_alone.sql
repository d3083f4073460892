-- Whether the current lease holds this event alone. A claim takes up to BATCH_SIZE events;
-- when its worker dies, all of them come back, but only the one being delivered can have
-- caused the crash. So a crash counts as an attempt only against an event that was claimed
-- alone, and events that come back from a crash are claimed one at a time (see CLAIM_SQL).
ALTER TABLE outbox ADD COLUMN claimed_alone boolean NOT NULL DEFAULT false;
