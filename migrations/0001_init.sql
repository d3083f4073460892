-- The four tables of the pattern. Runtime SQL lives in the module that owns each table:
-- products/processed_messages in internal/inventory, orders in internal/orders,
-- outbox in internal/outbox.

CREATE TABLE products (
  id          text PRIMARY KEY,
  name        text NOT NULL,
  -- The last line of defence against overselling: no code path can push stock below zero.
  stock       integer NOT NULL CHECK (stock >= 0),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE orders (
  id             uuid PRIMARY KEY,
  product_id     text NOT NULL REFERENCES products (id),
  quantity       integer NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
  user_id        text,
  status         text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'CONFIRMED', 'REJECTED')),
  reject_reason  text,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_status_idx ON orders (status);

-- Events waiting to be delivered. A row lives here only until its delivery succeeded.
CREATE TABLE outbox (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  message_id    uuid NOT NULL UNIQUE,
  event_type    text NOT NULL,
  aggregate_id  uuid NOT NULL,
  payload       jsonb NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  -- Not before this time: pushed into the future after a failed delivery (backoff).
  available_at  timestamptz NOT NULL DEFAULT now(),
  -- Counted when claimed, before delivery, so a delivery that kills the process still counts.
  attempts      integer NOT NULL DEFAULT 0,
  -- The lease: who holds the event and until when. An expired lease may be taken over.
  locked_by     text,
  lock_token    uuid,
  locked_until  timestamptz,
  last_error    text
);
-- Claim order: the oldest available event first.
CREATE INDEX outbox_available_idx ON outbox (available_at, id);

-- The consumer's memory: a message id is inserted here in the same transaction as its effect.
CREATE TABLE processed_messages (
  message_id    uuid PRIMARY KEY,
  outcome       text NOT NULL CHECK (outcome IN ('applied', 'rejected')),
  handled_by    text NOT NULL,
  processed_at  timestamptz NOT NULL DEFAULT now()
);

-- Every duplicate the consumer skipped: proof that redelivery happened and did no harm.
CREATE TABLE skipped_duplicates (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  message_id  uuid NOT NULL,
  handled_by  text NOT NULL,
  skipped_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO products (id, name, stock) VALUES
  ('widget', 'Widget', 100000),
  ('gadget', 'Gadget', 100000),
  ('gizmo', 'Gizmo', 100000),
  ('doohickey', 'Doohickey', 100000);
