-- Customer API keys (Oneloop-compatible backend API): workspace scopes, keys, their values
-- and per-second rate-limit windows. Times are Unix milliseconds (BIGINT); ids are UUIDv7
-- text. Kept identical to ../sqlite/0002_api_keys.sql except for types that differ.

-- The scopes a workspace defines; API keys grant rights on them by `representation`.
CREATE TABLE workspace_scopes (
    id              TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    representation  TEXT NOT NULL,
    description     TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    CONSTRAINT workspace_scopes_unique_representation UNIQUE (workspace_id, representation)
);

-- One row per customer API key. The key's values (current and retired) live in
-- api_key_values, as digests only. `org_id` repeats the workspace's organisation so that
-- verify checks the tenant boundary without a join. `usage_left` is decremented atomically
-- (`... WHERE usage_left > 0 RETURNING usage_left`) when `limit_usage`; `usage_count` and
-- `last_used_at` of unlimited keys are written in batches (at most ~1 s behind).
CREATE TABLE api_keys (
    id                      TEXT PRIMARY KEY,
    org_id                  TEXT NOT NULL REFERENCES organisations(id),
    workspace_id            TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name                    TEXT NOT NULL,
    prefix                  TEXT NOT NULL,
    key_last4               TEXT NOT NULL,
    customer_id             TEXT,
    -- JSON array of {representation, create, read, update, del}.
    scopes                  TEXT NOT NULL DEFAULT '[]',
    enabled                 BOOLEAN NOT NULL DEFAULT TRUE,
    deleted                 BOOLEAN NOT NULL DEFAULT FALSE,
    expires_at              BIGINT,
    limit_usage             BOOLEAN NOT NULL DEFAULT FALSE,
    usage_left              BIGINT,
    usage_count             BIGINT NOT NULL DEFAULT 0,
    -- keygate's extension: how long a rotated-out value keeps verifying, by default.
    rotation_grace_ms       BIGINT NOT NULL DEFAULT 0,
    last_used_at            BIGINT,
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL,
    deleted_at              BIGINT,
    CONSTRAINT api_keys_usage_left_not_negative CHECK (usage_left IS NULL OR usage_left >= 0)
);
CREATE INDEX api_keys_by_workspace ON api_keys(workspace_id, created_at);

-- Every value a key has had, by SHA-256 digest (the value itself is never stored). The
-- current value has retired_at NULL; a rotated-out one verifies until retired_until.
CREATE TABLE api_key_values (
    key_digest     TEXT PRIMARY KEY,
    api_key_id     TEXT NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
    created_at     BIGINT NOT NULL,
    retired_at     BIGINT,
    retired_until  BIGINT
);
CREATE INDEX api_key_values_by_key ON api_key_values(api_key_id);
CREATE UNIQUE INDEX api_key_values_one_current ON api_key_values(api_key_id) WHERE retired_at IS NULL;

-- Fixed one-second windows for verify's rateLimitConfig {id, limit}, counted by the
-- database (`INSERT ... ON CONFLICT DO UPDATE SET count = count + 1 RETURNING count`) so the
-- limit holds across replicas. Old windows are deleted as new ones open.
CREATE TABLE api_key_rate_windows (
    api_key_id    TEXT NOT NULL,
    limit_id      TEXT NOT NULL,
    window_start  BIGINT NOT NULL,
    count         BIGINT NOT NULL,
    PRIMARY KEY (api_key_id, limit_id, window_start)
);
