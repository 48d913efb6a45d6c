-- One email address may belong to several organisations: a `users` row is one membership
-- (organisation, email, role), unique per organisation instead of across the instance.
-- Kept identical in meaning to ../postgres/0008_memberships.sql. SQLite cannot drop a column
-- constraint, so `users` is rebuilt; `sessions` (the one table referencing it) is set aside
-- and restored around it so that no session is lost to ON DELETE CASCADE.
CREATE TABLE sessions_keep AS SELECT * FROM sessions;
DROP TABLE sessions;
CREATE TABLE users_keep AS SELECT * FROM users;
DROP TABLE users;

CREATE TABLE users (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organisations(id),
    email            TEXT NOT NULL,
    role             TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at       BIGINT NOT NULL,
    last_sign_in_at  BIGINT
);
INSERT INTO users (id, org_id, email, role, created_at, last_sign_in_at)
    SELECT id, org_id, email, role, created_at, last_sign_in_at FROM users_keep;
DROP TABLE users_keep;
CREATE INDEX users_by_org ON users(org_id);
CREATE UNIQUE INDEX users_one_membership ON users(org_id, email);
CREATE INDEX users_by_email ON users(email);

CREATE TABLE sessions (
    token_digest   TEXT PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    revoked_at     BIGINT,
    ip             TEXT,
    user_agent     TEXT,
    step_up_until  BIGINT
);
INSERT INTO sessions (token_digest, id, user_id, created_at, expires_at, revoked_at, ip, user_agent, step_up_until)
    SELECT token_digest, id, user_id, created_at, expires_at, revoked_at, ip, user_agent, step_up_until FROM sessions_keep;
DROP TABLE sessions_keep;
CREATE INDEX sessions_by_user ON sessions(user_id);
