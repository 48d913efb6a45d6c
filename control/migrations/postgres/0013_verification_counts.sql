-- Verifications per UTC day by outcome (issue 12). Identical for SQLite and PostgreSQL.

-- Counts per (workspace, API key, UTC day, outcome), added to by every replica's verify
-- statistics flush as `n = n + excluded.n` (exact across replicas). `api_key_id` is '' for
-- a verify of an unknown key by an SDK key bound to the workspace (outcome INVALID).
-- Swept after 400 days by the retention job.
CREATE TABLE verification_counts (
    org_id        TEXT NOT NULL REFERENCES organisations(id),
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    api_key_id    TEXT NOT NULL,
    day           BIGINT NOT NULL,
    outcome       TEXT NOT NULL,
    n             BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, api_key_id, day, outcome)
);
CREATE INDEX verification_counts_by_day ON verification_counts(day);
