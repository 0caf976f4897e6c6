-- The security review (issue 20). Refresh reuse detection a thief cannot share:
-- successor_hash: the hash of the token this one was rotated into, moved
-- when that successor is reissued; NULL before this migration.
-- reissues: how many times this token's successor has been reissued; it
-- goes into the successor's derivation, so each reissue gives a new one.
-- superseded_at: set on an unused successor that was replaced by a
-- reissue: whoever presents it later lost a race to the parent's holder.
ALTER TABLE refresh_tokens ADD COLUMN successor_hash TEXT;
ALTER TABLE refresh_tokens ADD COLUMN reissues INTEGER NOT NULL DEFAULT 0;
ALTER TABLE refresh_tokens ADD COLUMN superseded_at INTEGER;
-- Which key-encryption key sealed a secret; NULL for one kept in the clear
-- (only the legacy refresh_successor_v1, removed once nothing needs it).
ALTER TABLE server_secrets ADD COLUMN kek_id TEXT;
-- Bumped by whatever must end every session (a password change, disabling
-- the account): a login inserts its session only if the epoch is still
-- the one it read with the password hash, so one racing it cannot survive.
ALTER TABLE users ADD COLUMN session_epoch BIGINT NOT NULL DEFAULT 0;
-- The audit trail is kept for --audit-retention: pruned by time.
CREATE INDEX audit_events_occurred_at ON audit_events (occurred_at);
-- How the session's user authenticated (RFC 8176 amr values, space-separated),
-- carried by every access token of the session, refreshes included.
ALTER TABLE sessions ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd';
