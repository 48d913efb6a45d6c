-- One email address may belong to several organisations: a `users` row is one membership
-- (organisation, email, role), unique per organisation instead of across the instance.
-- Kept identical in meaning to ../sqlite/0008_memberships.sql (SQLite rebuilds the table).
ALTER TABLE users DROP CONSTRAINT users_email_key;
CREATE UNIQUE INDEX users_one_membership ON users(org_id, email);
CREATE INDEX users_by_email ON users(email);
