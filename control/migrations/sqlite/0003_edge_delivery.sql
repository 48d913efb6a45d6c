-- Edge delivery that no key can stall and whose versions never go backwards.
-- Kept identical in ../sqlite and ../postgres.

-- The hybrid logical clock (keygate_shared::clock): one row, the last version issued.
-- Advanced with one conditional UPDATE in the same transaction as each outbox row:
--   UPDATE edge_clock SET last = CASE WHEN $now > last THEN $now ELSE last + 1 END
-- Starts above every row-id version issued before this migration.
CREATE TABLE edge_clock (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    last  BIGINT NOT NULL
);
INSERT INTO edge_clock (id, last) SELECT 1, COALESCE(MAX(id), 0) FROM edge_outbox;

-- Each row's version, fixed when the row is written (rows written before: their id, as
-- they were delivered with).
ALTER TABLE edge_outbox ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
UPDATE edge_outbox SET version = id;

-- Dead letters: a record the edge refused is set aside (dead_at, dead_reason) until an
-- operator retries it or a newer record of the same key is delivered.
ALTER TABLE edge_outbox ADD COLUMN dead_at BIGINT;
ALTER TABLE edge_outbox ADD COLUMN dead_reason TEXT;

-- The deliverer claims each key's newest pending row.
CREATE INDEX edge_outbox_pending_by_key ON edge_outbox(key_digest, version)
    WHERE delivered_at IS NULL;
CREATE INDEX edge_outbox_dead ON edge_outbox(dead_at) WHERE dead_at IS NOT NULL;
