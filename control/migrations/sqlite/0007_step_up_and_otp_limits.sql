-- Security hardening: step-up windows on sessions, sign-in codes that several challenges may
-- share (so a second request never replaces a pending code), fixed-window rate counters for
-- code requests per client and per address, and a single row that makes founding the first
-- organisation a unique insert. Identical for SQLite and PostgreSQL.

-- Until when (Unix ms) a verified code keeps this session's step-up window open.
ALTER TABLE sessions ADD COLUMN step_up_until BIGINT;

-- A challenge checks typed codes against the code of challenge `code_id` (itself when NULL).
-- Requests absorbed by the per-address limits get their own challenge (and attempt counter)
-- on the code already in the mailbox, instead of a new email. `decoy`: an unknown address.
ALTER TABLE otp_challenges ADD COLUMN code_id TEXT;
ALTER TABLE otp_challenges ADD COLUMN decoy BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX otp_by_email_purpose_time ON otp_challenges(email, purpose, created_at);
CREATE INDEX otp_by_code ON otp_challenges(code_id);

-- Fixed-window counters: one row per (bucket, window start); bumped with one upsert.
CREATE TABLE rate_windows (
    bucket        TEXT NOT NULL,
    window_start  BIGINT NOT NULL,
    hits          BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    PRIMARY KEY (bucket, window_start)
);
CREATE INDEX rate_windows_by_expiry ON rate_windows(expires_at);

-- The organisation founded by the first sign-in on an empty instance. Its one possible row
-- makes two racing first sign-ins found one organisation, not two.
CREATE TABLE instance_founding (
    singleton  INTEGER PRIMARY KEY CHECK (singleton = 1),
    org_id     TEXT NOT NULL
);
INSERT INTO instance_founding (singleton, org_id)
    SELECT 1, id FROM organisations ORDER BY created_at, id LIMIT 1;
