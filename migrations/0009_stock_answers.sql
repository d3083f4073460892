-- TRANSPORT=nats: the inventory service's answer to each order, one row per order, kept for as
-- long as orders are. In-process, a message that comes back after the janitor pruned its inbox
-- record is stopped by the order no longer being PENDING; the inventory service cannot see the
-- order (another database), so it remembers its own answers: a second OrderCreated for an
-- order it already answered rolls back, stock included, and becomes a dead letter.
CREATE TABLE stock_answers (
  order_id     uuid PRIMARY KEY,
  outcome      text NOT NULL CHECK (outcome IN ('reserved', 'rejected')),
  message_id   uuid NOT NULL,
  answered_at  timestamptz NOT NULL DEFAULT now()
);
