-- TRANSPORT=nats: a service also dead-letters messages it RECEIVED from the broker (poison, or
-- past MAX_ATTEMPTS deliveries). Those never came from this database's outbox, so a re-drive
-- must not put them into it (they would be published to the wrong stream): it republishes them
-- to the stream they came from instead. NULL: an event of this service's own outbox.
ALTER TABLE dead_letters ADD COLUMN received_from text;
