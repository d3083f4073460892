-- Events that could not be delivered: moved here from the outbox in one statement when they
-- used up MAX_ATTEMPTS or can never succeed (a poison message). They wait for a person to fix
-- the cause and re-drive them (npm run replay -- --dead-letters).
CREATE TABLE dead_letters (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  message_id    uuid NOT NULL UNIQUE,
  event_type    text NOT NULL,
  aggregate_id  uuid NOT NULL,
  payload       jsonb NOT NULL,
  attempts      integer NOT NULL,
  last_error    text,
  -- When the event first entered the outbox, and when it gave up.
  created_at    timestamptz NOT NULL,
  dead_at       timestamptz NOT NULL DEFAULT now()
);

-- POST /orders with an Idempotency-Key: the first request with a key creates the order, a
-- retry with the same key and body gets that same order back, a different body is refused.
-- Inserted in the order's own transaction, so a key exists exactly when its order does.
CREATE TABLE idempotency_keys (
  key           text PRIMARY KEY,
  request_hash  text NOT NULL,
  order_id      uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
  created_at    timestamptz NOT NULL DEFAULT now()
);
