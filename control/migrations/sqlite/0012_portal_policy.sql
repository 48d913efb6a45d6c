-- The customer self-serve portal (issue 12). Identical for SQLite and PostgreSQL.

-- Per-workspace portal policy: what a customer may create through the portal
-- (keygate_shared::portal::PortalPolicy). No row: the default policy.
CREATE TABLE portal_policies (
    workspace_id   TEXT PRIMARY KEY REFERENCES workspaces(id),
    org_id         TEXT NOT NULL REFERENCES organisations(id),
    allowed_scopes TEXT NOT NULL,
    max_expiry_ms  BIGINT,
    max_usage      BIGINT,
    max_live_keys  BIGINT NOT NULL,
    updated_by     TEXT NOT NULL,
    updated_at     BIGINT NOT NULL
);

-- Changes a link token has made through the portal, spent with one conditional UPDATE
-- (at most keygate_shared::portal::MAX_WRITES_PER_TOKEN).
ALTER TABLE link_tokens ADD COLUMN portal_writes BIGINT NOT NULL DEFAULT 0;

-- The portal lists one customer's keys in one workspace.
CREATE INDEX api_keys_by_customer ON api_keys(workspace_id, customer_id);
