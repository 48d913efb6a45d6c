-- Core schema: organisations, people, sign-in, workspaces and every key the dashboard manages.
-- Times are Unix milliseconds (BIGINT); ids are UUIDv7 text. Kept identical to
-- ../postgres/0001_core.sql except for types that differ between the two databases.

CREATE TABLE organisations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- One user belongs to one organisation; emails are stored lower-cased.
CREATE TABLE users (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organisations(id),
    email            TEXT NOT NULL UNIQUE,
    role             TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at       BIGINT NOT NULL,
    last_sign_in_at  BIGINT
);
CREATE INDEX users_by_org ON users(org_id);

-- A session is looked up by the SHA-256 of its cookie value; the value itself is never stored.
CREATE TABLE sessions (
    token_digest  TEXT PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    revoked_at    BIGINT,
    ip            TEXT,
    user_agent    TEXT
);
CREATE INDEX sessions_by_user ON sessions(user_id);

-- One-time password challenges (sign-in and step-up). Only a keyed hash of the code is kept.
CREATE TABLE otp_challenges (
    id           TEXT PRIMARY KEY,
    purpose      TEXT NOT NULL,
    email        TEXT NOT NULL,
    user_id      TEXT,
    subject      TEXT NOT NULL DEFAULT '',
    code_hash    TEXT NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    consumed_at  BIGINT,
    ip           TEXT
);
CREATE INDEX otp_by_email_time ON otp_challenges(email, created_at);

CREATE TABLE workspaces (
    id                             TEXT PRIMARY KEY,
    org_id                         TEXT NOT NULL REFERENCES organisations(id),
    name                           TEXT NOT NULL,
    environment                    TEXT NOT NULL DEFAULT 'live' CHECK (environment IN ('live', 'test')),
    default_key_prefix             TEXT,
    default_allowed_ips            TEXT NOT NULL DEFAULT '[]',
    default_rate_limit_per_second  BIGINT,
    default_expiration             BIGINT,
    -- The module/functionality catalogue blacklist rules pick from: {"modules": [...]}.
    catalogue                      TEXT NOT NULL DEFAULT '{"modules":[]}',
    -- Publishable-key settings shared by the current key and its successors.
    allowed_origins                TEXT NOT NULL DEFAULT '[]',
    origin_url                     TEXT,
    created_at                     BIGINT NOT NULL,
    updated_at                     BIGINT NOT NULL
);
CREATE INDEX workspaces_by_org ON workspaces(org_id, created_at);

-- Publishable keys are not secret (frontends ship them), so the value is kept to show it at
-- once; the digest is what the edge and lookups use. At most one live key per workspace:
-- the partial unique index makes two concurrent revokes produce exactly one successor.
CREATE TABLE publishable_keys (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    key_value     TEXT NOT NULL,
    key_digest    TEXT NOT NULL UNIQUE,
    created_at    BIGINT NOT NULL,
    revoked_at    BIGINT,
    replaced_by   TEXT
);
CREATE UNIQUE INDEX publishable_keys_one_live ON publishable_keys(workspace_id) WHERE revoked_at IS NULL;

-- Blacklist rules belong to the workspace's publishable key slot: a revoke keeps them.
CREATE TABLE blacklist_rules (
    id             TEXT PRIMARY KEY,
    workspace_id   TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    module         TEXT NOT NULL,
    functionality  TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    UNIQUE (workspace_id, module, functionality)
);

-- SDK keys: revealable, so stored encrypted (AES-256-GCM under the master key) plus a digest
-- for lookup. `workspace_id` NULL means global to the organisation. Each workspace has one
-- "SDK access key" (is_access_key) at a time.
CREATE TABLE sdk_keys (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES organisations(id),
    workspace_id   TEXT REFERENCES workspaces(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    scopes         TEXT NOT NULL,
    key_digest     TEXT NOT NULL UNIQUE,
    key_sealed     TEXT NOT NULL,
    key_prefix     TEXT NOT NULL,
    key_last4      TEXT NOT NULL,
    is_access_key  BOOLEAN NOT NULL DEFAULT FALSE,
    created_by     TEXT,
    created_at     BIGINT NOT NULL,
    last_used_at   BIGINT,
    revoked_at     BIGINT
);
CREATE INDEX sdk_keys_by_org ON sdk_keys(org_id, created_at);
CREATE UNIQUE INDEX sdk_keys_one_access_key ON sdk_keys(workspace_id) WHERE is_access_key AND revoked_at IS NULL;

-- Workspace tokens and secrets: shown once, stored only as a digest.
CREATE TABLE workspace_tokens (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind IN ('token', 'secret')),
    name          TEXT NOT NULL,
    key_digest    TEXT NOT NULL UNIQUE,
    key_prefix    TEXT NOT NULL,
    key_last4     TEXT NOT NULL,
    created_by    TEXT,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    last_used_at  BIGINT,
    revoked_at    BIGINT
);
CREATE INDEX workspace_tokens_by_workspace ON workspace_tokens(workspace_id, created_at);

CREATE TABLE audit_events (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL,
    workspace_id  TEXT,
    actor_id      TEXT,
    actor         TEXT NOT NULL,
    action        TEXT NOT NULL,
    target        TEXT,
    outcome       TEXT NOT NULL DEFAULT 'success',
    ip            TEXT,
    user_agent    TEXT,
    detail        TEXT NOT NULL DEFAULT '{}',
    created_at    BIGINT NOT NULL
);
CREATE INDEX audit_by_org_time ON audit_events(org_id, created_at);
CREATE INDEX audit_by_workspace_time ON audit_events(workspace_id, created_at);

-- Everything the edge must learn, written in the same transaction as the change. The row id
-- is the record's version at the edge, so delivery order and staleness are decided by it.
CREATE TABLE edge_outbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id     TEXT NOT NULL,
    key_digest       TEXT NOT NULL,
    record           TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    delivered_at     BIGINT,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL DEFAULT 0,
    last_error       TEXT
);
CREATE INDEX edge_outbox_pending ON edge_outbox(delivered_at, id);
