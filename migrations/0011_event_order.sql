-- Issue 16: an order gets a second event (OrderCancelled), so the events of one order must be
-- applied in the order they were written, with any number of workers and over a broker.

-- Orders can be cancelled (POST /orders/:id/cancel), while PENDING or once CONFIRMED.
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check CHECK (status IN ('PENDING', 'CONFIRMED', 'REJECTED', 'CANCELLED'));
ALTER TABLE orders ADD COLUMN cancelled_at timestamptz;
-- The position of the order's latest event: OrderCreated is 1, each later event takes the
-- next number in the transaction that writes it (the order row's lock serialises them).
ALTER TABLE orders ADD COLUMN event_seq integer NOT NULL DEFAULT 1;

-- Every event carries its position within its aggregate (1 for rows written before this).
ALTER TABLE outbox ADD COLUMN aggregate_seq integer NOT NULL DEFAULT 1 CHECK (aggregate_seq >= 1);
-- The claim asks "is an earlier event of this aggregate still here?" once per candidate: an
-- index probe, so the claim stays index scans however large the backlog.
CREATE INDEX outbox_aggregate_idx ON outbox (aggregate_id, aggregate_seq);
-- A dead-lettered event parks the later events of its aggregate until it is re-driven.
ALTER TABLE dead_letters ADD COLUMN aggregate_seq integer NOT NULL DEFAULT 1;
CREATE INDEX dead_letters_aggregate_idx ON dead_letters (aggregate_id, aggregate_seq);
-- The inbox's replay copy keeps the position too, so a replayed copy is the same message.
ALTER TABLE processed_messages ADD COLUMN aggregate_id uuid;
ALTER TABLE processed_messages ADD COLUMN aggregate_seq integer;

-- The consumer's side of the rule: per aggregate, the position of the last event it applied.
-- An event is applied only when it is the next one (last_seq + 1); an early one is deferred
-- and comes again. Kept for as long as the aggregates are, never pruned with the inbox: a
-- cancellation may come weeks after its order's inbox record is gone.
CREATE TABLE inbox_positions (
  aggregate_id  uuid PRIMARY KEY,
  last_seq      integer NOT NULL CHECK (last_seq >= 1),
  updated_at    timestamptz NOT NULL DEFAULT now()
);

-- The inventory remembers, per order, what it did with the stock (both transports now): a
-- cancellation gives back exactly what the order's reservation took, once.
ALTER TABLE stock_answers ADD COLUMN product_id text;
ALTER TABLE stock_answers ADD COLUMN quantity integer;
ALTER TABLE stock_answers ADD COLUMN released_at timestamptz;

-- A cancellation is neither a confirmation nor a rejection: the inbox and its counters record an
-- applied OrderCancelled as 'cancelled', so /stats and the metrics do not count it as a
-- CONFIRMED order. (Over NATS, a reply that finds its order already cancelled keeps the
-- inventory's answer, 'applied' or 'rejected': that is what the inventory did.)
ALTER TABLE processed_messages DROP CONSTRAINT processed_messages_outcome_check;
ALTER TABLE processed_messages ADD CONSTRAINT processed_messages_outcome_check CHECK (outcome IN ('applied', 'rejected', 'cancelled'));
ALTER TABLE consumer_counts DROP CONSTRAINT consumer_counts_outcome_check;
ALTER TABLE consumer_counts ADD CONSTRAINT consumer_counts_outcome_check CHECK (outcome IN ('applied', 'rejected', 'duplicate', 'cancelled'));

-- Orders answered before this migration had their OrderCreated (position 1) applied, but no
-- position was kept: without one, their cancellation would wait for it forever. The same
-- migrations run on every database, so each backfills what it holds: in-process (and the order
-- service) the settled orders, the inventory service's database its answers.
INSERT INTO inbox_positions (aggregate_id, last_seq)
SELECT id, 1 FROM orders WHERE status IN ('CONFIRMED', 'REJECTED')
UNION
SELECT order_id, 1 FROM stock_answers
ON CONFLICT (aggregate_id) DO NOTHING;
-- In-process the consumer kept no answers before: the settled orders say what it did. (The
-- OrderCreated message id is gone with its outbox row; the column only needs to be unique
-- enough to tell answers apart, so a fresh id stands in.) On the order service's database
-- these rows are never read.
INSERT INTO stock_answers (order_id, outcome, message_id, product_id, quantity)
SELECT id, CASE status WHEN 'CONFIRMED' THEN 'reserved' ELSE 'rejected' END, gen_random_uuid(), product_id, quantity
  FROM orders WHERE status IN ('CONFIRMED', 'REJECTED')
ON CONFLICT (order_id) DO NOTHING;
