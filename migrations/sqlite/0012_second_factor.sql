-- A second factor: TOTP with recovery codes (issue 26); the MySQL migration
-- of the same name explains each column.
ALTER TABLE users ADD COLUMN totp_sealed TEXT;
ALTER TABLE users ADD COLUMN totp_kek_id TEXT;
ALTER TABLE users ADD COLUMN mfa_enabled_at INTEGER;
ALTER TABLE users ADD COLUMN totp_last_step INTEGER;

CREATE TABLE totp_enrolments (
    user_id    TEXT    NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    sealed     TEXT    NOT NULL,
    kek_id     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE TABLE mfa_recovery_codes (
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    used_at    INTEGER,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE mfa_challenges (
    token_hash          TEXT    NOT NULL PRIMARY KEY,
    user_id             TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id           TEXT    NOT NULL,
    client_confidential INTEGER NOT NULL,
    scope               TEXT    NOT NULL,
    auth_time           INTEGER NOT NULL,
    user_epoch          INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    expires_at          INTEGER NOT NULL,
    failures            INTEGER NOT NULL DEFAULT 0,
    used_at             INTEGER
);
CREATE INDEX mfa_challenges_expires ON mfa_challenges (expires_at);

ALTER TABLE browser_sessions ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd';
ALTER TABLE authorization_codes ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd';
