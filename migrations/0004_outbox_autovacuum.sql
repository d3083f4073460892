-- The outbox is a queue: every row is inserted, updated once or twice (the lease) and deleted
-- within milliseconds, so at a few thousand events a second it produces dead tuples far
-- faster than the default autovacuum settings (20% of the table, throttled) clean them up.
-- Dead index entries make the claim's index scan step over corpses before it finds a live
-- row. Vacuum this table after a fixed number of dead rows instead of a fraction of a table
-- that is usually almost empty, and do not throttle it: the table is small, vacuuming it is cheap.
ALTER TABLE outbox SET (
  autovacuum_vacuum_scale_factor = 0,
  autovacuum_vacuum_threshold = 1000,
  autovacuum_vacuum_insert_scale_factor = 0,
  autovacuum_vacuum_insert_threshold = 1000,
  autovacuum_analyze_scale_factor = 0,
  autovacuum_analyze_threshold = 1000,
  autovacuum_vacuum_cost_delay = 0
);
