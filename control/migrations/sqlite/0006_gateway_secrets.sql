-- The gateway: per-workspace signing secrets and the cookie opt-in. Identical on SQLite and
-- PostgreSQL (this file exists in both folders).

-- Whether the edge passes `Cookie` to the workspace's origin and `Set-Cookie` back.
ALTER TABLE workspaces ADD COLUMN forward_cookies BOOLEAN NOT NULL DEFAULT FALSE;

-- A workspace's gateway signing secrets: the current one (retires_at NULL) and, during a
-- rotation's overlap, the previous ones until retires_at (Unix ms). The secret is stored
-- twice, never in plaintext: `sealed` under the master key (shown to owners and admins),
-- `edge_sealed` under a key derived from the edge secret (copied into edge records; NULL
-- while no edge secret is configured).
CREATE TABLE gateway_secrets (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    kid           TEXT NOT NULL UNIQUE,
    sealed        TEXT NOT NULL,
    edge_sealed   TEXT,
    created_at    BIGINT NOT NULL,
    retires_at    BIGINT
);
CREATE INDEX gateway_secrets_by_workspace ON gateway_secrets(workspace_id, created_at);
-- At most one current secret per workspace: two concurrent first reads make one secret.
CREATE UNIQUE INDEX gateway_secrets_one_current ON gateway_secrets(workspace_id) WHERE retires_at IS NULL;
