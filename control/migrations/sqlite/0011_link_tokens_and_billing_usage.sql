-- Oneloop's link tokens and billing usage (issue 12). Identical for SQLite and PostgreSQL.

-- Short-lived tokens bound to one (workspace, customer); only the SHA-256 of the token is
-- kept (keygate_shared::link_token).
CREATE TABLE link_tokens (
    digest        TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES organisations(id),
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    customer_id   TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX link_tokens_by_expiry ON link_tokens(expires_at);

-- Billing usage per (workspace, billing id, UTC day): verify adds `billing.usage` to it for
-- VALID answers, in batches, as `total = total + n` (exact across replicas).
CREATE TABLE billing_usage (
    org_id        TEXT NOT NULL REFERENCES organisations(id),
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    billing_id    TEXT NOT NULL,
    day           BIGINT NOT NULL,
    total         BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, billing_id, day)
);
CREATE INDEX billing_usage_by_org ON billing_usage(org_id, billing_id, day);
